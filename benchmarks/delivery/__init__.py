"""End-to-end delivery throughput: our worker against Celery and a pgbench ceiling.

``python -m benchmarks.delivery`` (see benchmarks/delivery/README.md).  Kept free of imports
so that the Celery worker can import ``benchmarks.delivery.celery_app`` cheaply.
"""
