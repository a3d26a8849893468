"""``python -m benchmarks.lanes``: fair per-system lanes under slow, mixed and held load."""
