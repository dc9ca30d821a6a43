"""Fail when the package has an import cycle, or when an interface reaches past `Memory`'s public surface.

Every import counts: at module level, inside functions (lazy) and under TYPE_CHECKING, because each is a
dependency a reader has to follow. `make test` runs it.

    python tools/check_imports.py
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PKG = "engramdb"
# Interfaces call only public Memory methods: no `mem._x`, `memory._x` or `._res` from these, and no store call
# around Memory from the user-facing ones (benchmarks may read the store they measure).
INTERFACES = ("server", "mcp", "cli", "ui", "integrations", "bench")
USER_FACING = ("server", "mcp", "cli", "ui", "integrations")
PRIVATE = re.compile(r"\b(?:mem|memory|self\.mem|self\.memory|self\._mem|m)\._[a-z]\w*|\._res\b")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - node.level + 1]
                    mod = ".".join([*anchor, node.module] if node.module else anchor)
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith(PKG) and not name.startswith(t + "."):
                    out[name].add(t)  # a module importing its own package's __init__ is not a cycle
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def private_calls(modules: dict[str, Path]) -> list[str]:
    bad = []
    for name, path in modules.items():
        part = name.split(".")[1] if "." in name else ""
        if part in INTERFACES:
            for i, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if PRIVATE.search(code) or (part in USER_FACING and ".store." in code and "mem" in code):
                    bad.append(f"{path.relative_to(ROOT.parent)}:{i}: {line.strip()}")
    return bad


def main() -> int:
    modules = {module_name(p): p for p in (ROOT / PKG).rglob("*.py")}
    found = cycles(edges(modules))
    for comp in found:
        print("import cycle: " + " <-> ".join(comp))
    bad = private_calls(modules)
    for b in bad:
        print("interface reaches past Memory's public methods: " + b)
    if not found and not bad:
        print(f"{len(modules)} modules: no import cycles; interfaces use only public Memory methods")
    return 1 if found or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
