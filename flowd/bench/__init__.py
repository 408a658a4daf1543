"""Benchmarks for flowd: tools that measure a running server from the outside.

`flowd.bench.loadgen` is the event-ingest load generator (`python -m flowd.bench.loadgen`).
Nothing here is imported by the server itself.
"""
