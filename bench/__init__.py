"""Benchmarks and synthetic corpora (run on demand; see bench/RESULTS.md)."""
