"""Benchmark harness: a generated registry, scans against a request floor, page latency.

`python -m bench` (or `make bench`) runs everything once and writes
bench/results/. See bench/__main__.py for the steps and their order.
"""
