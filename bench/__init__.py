"""Benchmarks for the native Backpack core; run ``python bench/run.py`` (see docs/benchmarks.md)."""
