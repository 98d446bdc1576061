"""Seeded synthetic regions and allocation problems, for tests and benchmarks."""
