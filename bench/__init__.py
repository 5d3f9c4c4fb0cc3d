"""Benchmarks: each prints its figures as one JSON line and can set them beside a baseline run."""
