"""Benchmark: accepting invoices (single, batch) against a baseline and pgbench floors."""
