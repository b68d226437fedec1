"""Benchmarks (``make bench``: ``python -m bench.telemetry``); see bench/README.md."""
