"""Evaluation harness: grids of task × strategy × latency × seed, two engines, one report."""
