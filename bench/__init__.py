"""Benchmarks: `python -m bench.<name>` from the project root."""
