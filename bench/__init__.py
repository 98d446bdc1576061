"""Benchmarks and the scenario harness (not installed: runtime packages never import this)."""
