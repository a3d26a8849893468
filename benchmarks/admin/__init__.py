"""``python -m benchmarks.admin [--quick]``: the admin lists, cause groups and bulk resend at scale.

See benchmarks/admin/README.md.
"""
