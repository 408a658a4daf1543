"""Benchmarks for flowd: tools that measure a running server from the outside.

`python -m flowd bench` (flowd/bench/cli.py) runs every scenario against flowd servers it starts
itself and prints the figures beside their targets; `flowd.bench.loadgen` is the event-ingest
load generator (`python -m flowd.bench.loadgen`). Nothing here is imported by the server itself.
"""
