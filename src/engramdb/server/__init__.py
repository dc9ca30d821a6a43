"""The REST server (FastAPI): API keys, one store per tenant, edge limits. See docs/server.md."""
