"""Indexes over the store: keyword (FTS5 / tsvector, inside the store) and vector (here)."""
