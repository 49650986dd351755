"""Benchmarks of the core (they print numbers; nothing here asserts on time)."""
