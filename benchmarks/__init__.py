"""`make bench`: measurements of the legacy aborted list against named baselines.

See benchmarks/README.md for what is measured and how; ``python -m benchmarks.run --help``.
"""
