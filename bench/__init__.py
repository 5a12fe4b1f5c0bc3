"""Benchmarks (not tests): each writes its numbers into docs/PERFORMANCE.md."""
