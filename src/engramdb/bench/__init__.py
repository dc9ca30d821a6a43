"""Benchmark harnesses. They use only the public API (`Memory`) to ingest and search,
and never read answers or evidence while ingesting or searching."""
