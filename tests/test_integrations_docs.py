"""The examples on docs/integrations/*.md parse, and every name they import from engramdb exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PAGES = sorted((Path(__file__).resolve().parents[1] / "docs" / "integrations").glob("*.md"))


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_every_adapter_has_a_page_with_an_example() -> None:
    names = {p.stem for p in PAGES}
    assert {"README", "langgraph", "langchain", "openai-agents", "llamaindex", "crewai"} <= names
    for page in PAGES:
        if page.stem != "README":
            assert _blocks(page), f"{page.name} has no example"
            assert "## Scope mapping" in page.read_text() and "cannot express" in page.read_text()


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "README"], ids=lambda p: p.stem)
def test_examples_parse_and_import_real_names(page: Path) -> None:
    for code in _blocks(page):
        assert len(code.strip().splitlines()) <= 12, f"{page.name}: keep the example about ten lines"
        tree = compile(code, page.name, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engramdb"):
                try:
                    module = importlib.import_module(node.module)
                except ImportError as exc:  # crewai's adapter outside its own venv
                    pytest.skip(f"{node.module}: {exc}")
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{page.name}: {node.module} has no {alias.name}"
