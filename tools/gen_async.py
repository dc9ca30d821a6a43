"""Write src/engramdb/api/async_memory.py from `Memory`'s public methods: one typed coroutine per method, same
parameters, same defaults, same docstring, each running the sync method in a worker thread.

    python tools/gen_async.py          # rewrite the file
    python tools/gen_async.py --check  # exit 1 when the file is out of date (tests/test_async_parity.py)
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY = ROOT / "src/engramdb/api/memory.py"
OUT = ROOT / "src/engramdb/api/async_memory.py"
SKIP = {"close"}  # written by hand below: closes the sync instance, then the async context manager

HEAD = '''"""`AsyncMemory`: the async twin of `Memory`, over the same core.

Each call runs the sync implementation in a worker thread, so an event loop is never blocked by SQLite or the
embedding model. Signatures and docstrings mirror `Memory` exactly: this file is generated from it by
`python tools/gen_async.py` (a test fails when it is out of date).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .memory import Memory

if TYPE_CHECKING:
{imports}

T = TypeVar("T")


class AsyncMemory:
    """`Memory`, with every public method a coroutine."""

{init}

    @property
    def sync(self) -> Memory:
        """The underlying synchronous `Memory` (same store, same caches)."""
        return self._sync

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
'''

TAIL = '''
    async def close(self) -> None:
        await self._run(self._sync.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
'''


def _imports(tree: ast.Module, used: set[str]) -> list[str]:
    """memory.py's own imports of the names the signatures use, rewritten relative to engramdb.api; names
    memory.py defines itself (Page, Progress) come from it."""
    lines = []
    own = sorted(
        t.id if isinstance(t, ast.Name) else n.name
        for n in tree.body
        for t in ([*n.targets] if isinstance(n, ast.Assign) else [n])
        if isinstance(n, (ast.Assign, ast.ClassDef)) and isinstance(t, (ast.Name, ast.ClassDef))
        and (t.id if isinstance(t, ast.Name) else n.name) in used and (t.id if isinstance(t, ast.Name) else n.name)
        != "Memory"
    )
    if own:
        lines.append(f"    from .memory import {', '.join(own)}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = sorted(a.name for a in node.names if (a.asname or a.name) in used)
            if names:
                mod = "." * node.level + (node.module or "")
                lines.append(f"    from {mod} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if (a.asname or a.name) in used:
                    lines.append(f"    import {a.name}")
    return sorted(set(lines))


def _source_defs(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Memory")
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _default(d: ast.expr, src: str, runtime: object) -> str:
    """A default as written when it is a literal, else its value (EPISODE -> 'episode')."""
    seg = ast.get_source_segment(src, d) or ""
    return seg if isinstance(d, ast.Constant) or runtime is inspect.Parameter.empty else repr(runtime)


def _params(fn: ast.FunctionDef, src: str, sig: inspect.Signature) -> tuple[str, str]:
    """(the parameter list as written, the call's argument list)."""
    a = fn.args
    parts: list[str] = []
    call: list[str] = []
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    for p, d in zip(pos, defaults, strict=True):
        if p.arg == "self":
            parts.append("self")
            continue
        ann = f": {ast.get_source_segment(src, p.annotation)}" if p.annotation else ""
        dflt = f" = {_default(d, src, sig.parameters[p.arg].default)}" if d is not None else ""
        parts.append(f"{p.arg}{ann}{dflt}")
        call.append(p.arg)
    if a.vararg:
        parts.append(f"*{a.vararg.arg}")
        call.append(f"*{a.vararg.arg}")
    elif a.kwonlyargs:
        parts.append("*")
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        ann = f": {ast.get_source_segment(src, p.annotation)}" if p.annotation else ""
        dflt = f" = {_default(d, src, sig.parameters[p.arg].default)}" if d is not None else ""
        parts.append(f"{p.arg}{ann}{dflt}")
        call.append(f"{p.arg}={p.arg}")
    if a.kwarg:
        parts.append(f"**{a.kwarg.arg}")
        call.append(f"**{a.kwarg.arg}")
    return ", ".join(parts), ", ".join(call)


def render() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from engramdb.api.memory import Memory

    src = MEMORY.read_text()
    tree = ast.parse(src)
    defs = _source_defs(tree)
    methods = []
    used: set[str] = set()
    for name, member in inspect.getmembers(Memory):
        if name.startswith("_") or name in SKIP or not inspect.isfunction(member):
            continue
        fn = defs[name]
        params, call = _params(fn, src, inspect.signature(member))
        ret = ast.get_source_segment(src, fn.returns) if fn.returns else "Any"
        doc = ast.get_docstring(fn, clean=False)
        for node in [*(x.annotation for x in fn.args.args + fn.args.kwonlyargs if x.annotation), fn.returns]:
            if node is not None:
                used.update(re.findall(r"[A-Za-z_]\w*", ast.get_source_segment(src, node) or ""))
        body = f'        """{doc}"""\n' if doc else ""
        body += f"        return await self._run(self._sync.{name}{', ' + call if call else ''})\n"
        methods.append(f"    async def {name}({params}) -> {ret}:\n{body}")
    init = defs["__init__"]
    params, call = _params(init, src, inspect.signature(Memory.__init__))
    for x in init.args.args + init.args.kwonlyargs:
        if x.annotation is not None:
            used.update(re.findall(r"[A-Za-z_]\w*", ast.get_source_segment(src, x.annotation) or ""))
    used.discard("Memory")
    init_src = (f"    def __init__({params}) -> None:\n"
                f'        """Open a `Memory` (same arguments) to run in worker threads."""\n'
                f"        self._sync = Memory({call})")
    imports = "\n".join(_imports(tree, used)) or "    pass"
    return HEAD.format(imports=imports, init=init_src) + "\n" + "\n".join(methods) + TAIL


def _formatted(text: str) -> str:
    """The text as `ruff` leaves it (imports sorted, lines wrapped at the project's width)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "async_memory.py"
        path.write_text(text)
        ruff = [sys.executable, "-m", "ruff"]
        cfg = ["--config", str(ROOT / "pyproject.toml")]
        subprocess.run([*ruff, "check", "-q", "--fix", "--select", "I,F401", *cfg, str(path)], check=False)
        subprocess.run([*ruff, "format", "-q", *cfg, str(path)], check=True)
        return path.read_text()


def main() -> int:
    text = _formatted(render())
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print("src/engramdb/api/async_memory.py is out of date: run python tools/gen_async.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
