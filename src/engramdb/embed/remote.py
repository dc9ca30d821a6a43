"""OpenAI-compatible `/v1/embeddings` endpoints: OpenAI, Ollama, vLLM, llama.cpp server, LM Studio."""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import numpy as np

from ..errors import ConfigError, EngramError
from .base import Embedder


class OpenAIEmbedder(Embedder):
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 60.0,
        batch_size: int = 128,
    ) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        self.base_url = (base_url or os.environ.get("ENGRAMDB_EMBED_BASE_URL") or "https://api.openai.com/v1").rstrip(
            "/"
        )
        key = api_key or os.environ.get("ENGRAMDB_EMBED_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        # Probe once for the dimension unless told, so the store can record it.
        self.dim = dim or int(self._embed_batch(["dimension probe"]).shape[1])

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        try:
            resp = self._client.post("/embeddings", json={"model": self.model, "input": list(texts)})
        except httpx.HTTPError as exc:
            raise EngramError(f"embedding endpoint {self.base_url} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise EngramError(f"embedding endpoint {self.base_url} answered {resp.status_code}: {resp.text[:300]}")
        try:
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            return np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EngramError(f"embedding endpoint {self.base_url} returned an unexpected body") from exc


def parse_embedder_spec(spec: str) -> tuple[str, str]:
    """'openai:text-embedding-3-small' -> ('openai', model); anything else is sentence-transformers."""
    if spec.startswith("openai:"):
        model = spec.split(":", 1)[1]
        if not model:
            raise ConfigError("openai embedder spec needs a model name, e.g. openai:text-embedding-3-small")
        return "openai", model
    return "local", spec
