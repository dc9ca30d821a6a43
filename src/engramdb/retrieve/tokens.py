"""Token counting for context budgets, with a real tokenizer.

Default: the WordPiece tokenizer of all-MiniLM-L6-v2 (BERT uncased vocabulary),
read from the offline model pack with the `tokenizers` library. For OpenAI-style
budgets pass `tokenizer="tiktoken:cl100k_base"` when tiktoken's files are cached.
"""

from __future__ import annotations

import functools

from ..errors import ConfigError


class TokenCounter:
    def __init__(self, name: str, encode) -> None:  # a callable str -> list
        self.name = name
        self._encode = encode

    def count(self, text: str) -> int:
        return len(self._encode(text))


@functools.lru_cache(maxsize=4)
def get_counter(spec: str = "minilm") -> TokenCounter:
    if spec == "minilm":
        from tokenizers import Tokenizer

        from ..embed.local import minilm_pack_dir

        tok = Tokenizer.from_file(str(minilm_pack_dir() / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return TokenCounter(
            "all-MiniLM-L6-v2 WordPiece (bert-base-uncased vocab)",
            lambda t: tok.encode(t, add_special_tokens=False).ids,
        )
    if spec.startswith("tiktoken:"):
        try:
            import tiktoken

            enc = tiktoken.get_encoding(spec.split(":", 1)[1])
        except Exception as exc:
            raise ConfigError(f"tokenizer {spec!r} unavailable offline: {exc}") from exc
        return TokenCounter(spec, lambda t: enc.encode(t, disallowed_special=()))
    raise ConfigError(f"unknown tokenizer {spec!r}; use 'minilm' or 'tiktoken:<encoding>'")
