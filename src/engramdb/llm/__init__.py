"""Optional LLM client: any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, llama.cpp, LM Studio).

EngramDB never needs an LLM; this is used only when one is configured (config file or environment).

    from engramdb.llm import LLMClient, LLMConfig
    client = LLMClient(LLMConfig(base_url="http://localhost:11434/v1", model="qwen2.5:3b"))
    facts = client.complete_json(prompt, schema=MyModel, op="extract")   # -> MyModel instance
"""

from __future__ import annotations

from .client import LLMClient, LLMError, LLMUsage, load_llm_config
from .config import LLMConfig

__all__ = ["LLMClient", "LLMConfig", "LLMError", "LLMUsage", "load_llm_config"]
