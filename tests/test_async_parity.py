"""AsyncMemory is Memory's twin: the same public methods with the same parameters, as coroutines."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from engramdb import AsyncMemory, Memory

ROOT = Path(__file__).resolve().parents[1]


def _public(cls: type) -> dict[str, object]:
    return {n: m for n, m in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_every_public_method_has_a_typed_coroutine_twin():
    sync, twin = _public(Memory), _public(AsyncMemory)
    assert set(sync) - {"close"} <= set(twin), sorted(set(sync) - set(twin))
    for name, fn in sync.items():
        assert inspect.iscoroutinefunction(twin[name]), name
        a, b = inspect.signature(fn), inspect.signature(twin[name])
        assert list(a.parameters) == list(b.parameters), name
        for p in a.parameters.values():
            q = b.parameters[p.name]
            assert (p.kind, p.default, p.annotation) == (q.kind, q.default, q.annotation), (name, p.name)
        assert a.return_annotation in (b.return_annotation, inspect.Signature.empty) or name == "close", name


def test_generated_file_is_up_to_date():
    out = subprocess.run([sys.executable, str(ROOT / "tools/gen_async.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
