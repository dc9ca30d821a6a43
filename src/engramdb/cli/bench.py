"""`engramdb bench ...`: benchmark commands. Each benchmark lives in engramdb.bench.<name>;
this module only wires them into the CLI."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks: LoCoMo, LongMemEval, scale, ANN.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
