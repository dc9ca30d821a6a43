"""`engramdb bench ...`: benchmark commands. Each benchmark lives in engramdb.bench.<name>;
this module only wires them into the CLI."""

from __future__ import annotations

import sys
from typing import Any

import typer

bench_app = typer.Typer(help="Benchmarks: LoCoMo, LongMemEval, scale, ANN, privacy.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def publish(module: Any, report: dict[str, Any], out: str, as_json: bool) -> None:
    """Save a benchmark's JSON + markdown under `out`, then print the JSON or the markdown."""
    from .output import emit_json, err_console

    jpath, mpath = module.save(report, out)
    if as_json:
        emit_json(report)
    else:
        sys.stdout.write(module.markdown(report))  # plain: a markdown table must not be wrapped to the terminal
        err_console.print(f"[dim]wrote {jpath} and {mpath}[/dim]")


# -- engine benchmarks: ANN library choice and scale ----------------------------------
@bench_app.command("ann")
def bench_ann(
    n: int = typer.Option(100_000, help="Vectors to index."),
    dim: int = typer.Option(384, help="Dimensions (MiniLM: 384)."),
    queries: int = typer.Option(300, help="Single queries to time."),
    data: str = typer.Option("lowrank", help="random | clustered | lowrank (sentence-embedding-like)."),
    libraries: str = typer.Option(
        "numpy,usearch,usearch-i8,hnswlib,faiss,sqlite-vec", help="Comma list (usearch-i8: the engine's setup)."
    ),
    seed: int = typer.Option(7),
    out: str = typer.Option("bench-results", help="Directory for the JSON and markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Compare ANN libraries (build, latency, recall@10 vs exact, memory, save/load) on seeded vectors."""
    from ..bench import ann
    from ..errors import ValidationError
    from .output import err_console

    libs = tuple(x.strip() for x in libraries.split(",") if x.strip())
    unknown = set(libs) - set(ann.LIBRARIES)
    if unknown or data not in ("random", "clustered", "lowrank") or n < 100 or dim < 2 or queries < 1:
        raise ValidationError(
            f"bench ann: libraries from {', '.join(ann.LIBRARIES)}; data random|clustered|lowrank; n >= 100"
        )
    report = ann.run(
        n=n,
        dim=dim,
        n_queries=queries,
        seed=seed,
        data=data,
        libraries=libs,
        progress=None if as_json else lambda name: err_console.print(f"[dim]measuring {name}...[/dim]"),
    )
    publish(ann, report, out, as_json)


@bench_app.command("ingest")
def bench_ingest(
    path: str = typer.Argument(..., help="LoCoMo JSON (e.g. locomo10.json): its turns are what gets ingested."),
    turns: int = typer.Option(1024, help="Turns to ingest (whole sessions, in file order)."),
    model: str = typer.Option("all-MiniLM-L6-v2", help="A local sentence-transformers model."),
    batch_size: int = typer.Option(64, help="Encode batch size (raw and EngramDB alike)."),
    repeat: int = typer.Option(2, help="Interleaved runs per step; the best counts."),
    variants: bool = typer.Option(True, "--variants/--no-variants", help="Also ONNX batches and int8."),
    context_modes: bool = typer.Option(True, "--context-modes/--no-context-modes",
                                       help="Also add with every context pair embedded, and every pair composed."),
    recall: str | None = typer.Option(None, help="Also LoCoMo recall@10 of the default, of the other two context "
                                      "modes and of the int8 model on these conversations (comma list of sample "
                                      "ids or indexes; 'all')."),
    out: str = typer.Option("bench_results", help="Directory for the JSON and markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Ingest against the model: raw encode, EngramDB embed and add, ONNX and int8, as a ratio table."""
    from ..bench import ingest
    from .output import err_console

    convs = None if recall is None else [] if recall == "all" else [c.strip() for c in recall.split(",") if c.strip()]
    report = ingest.run(path, turns=turns, model=model, batch_size=batch_size, repeat=repeat, variants=variants,
                        context_modes=context_modes, recall_conversations=convs,
                        progress=None if as_json else lambda msg: err_console.print(f"[dim]{msg}...[/dim]"))
    publish(ingest, report, out, as_json)


# -- retrieval-quality benchmarks: LoCoMo and LongMemEval ----------------------------
EMBEDDER_HELP = "all-MiniLM-L6-v2 (default), all-mpnet-base-v2 (`engramdb models fetch` it first) or any model spec."


def _embedder(spec: str) -> object:
    from ..embed import make_embedder

    return make_embedder(spec)


@bench_app.command("locomo")
def bench_locomo(
    path: str = typer.Argument(..., help="LoCoMo JSON (e.g. locomo10.json)."),
    conversations: str | None = typer.Option(None, help="Comma list of sample ids (or indexes) to run; default all."),
    compare: bool = typer.Option(False, "--compare", help="Also run the baselines bm25, dense and rrf (plain keys)."),
    ablation: bool = typer.Option(False, "--ablation", help="Also run the default with each part removed."),
    max_sessions: int | None = typer.Option(None, help="Only the first N sessions of each conversation (a slice)."),
    limit: int = typer.Option(20, help="Results per question."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", help=EMBEDDER_HELP),
    out: str = typer.Option("bench_results", help="Directory for the JSON, markdown and SVG report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """LoCoMo retrieval: turn/session recall@k, MRR, NDCG@10, latency; overall and by category. No LLM."""
    from ..bench import locomo
    from ..bench.report import locomo_markdown, write_report
    from ..errors import ValidationError
    from .output import console, emit_json, err_console

    if not 1 <= limit <= 1000:
        raise ValidationError("--limit must be between 1 and 1000")
    if max_sessions is not None and max_sessions < 1:
        raise ValidationError("--max-sessions must be at least 1")
    convs = [c.strip() for c in conversations.split(",") if c.strip()] if conversations else None
    report = locomo.run_locomo(path, conversations=convs, compare=compare, ablation=ablation, limit=limit,
                               max_sessions=max_sessions, progress=not as_json, embedder=_embedder(embedder))
    paths = write_report(report, out, "locomo")
    if as_json:
        emit_json(report)
    else:
        console.print(locomo_markdown(report, chart_name=paths["chart"]), markup=False, highlight=False)
        err_console.print(f"[dim]wrote {paths['json']}, {paths['markdown']} and {paths['chart']}[/dim]")


@bench_app.command("train-ranker")
def bench_train_ranker(
    path: str = typer.Argument(..., help="LoCoMo-format JSON with questions and evidence."),
    out: str = typer.Option("ranker.json", help="Where to write the model (use it with retrieval.ranker_path)."),
    conversations: str | None = typer.Option(None, help="Comma list of sample ids (or indexes); default all."),
    ablation: bool = typer.Option(False, "--ablation", help="Also cross-validate with each feature group removed."),
    seeds: int = typer.Option(1, min=1, max=10, help="Average this many fits (steadier; each adds its trees to "
                                                      "every search)."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", help=EMBEDDER_HELP),
    late: bool = typer.Option(True, "--late/--no-late", help="With the late-interaction (MaxSim) features, where "
                              "the model gives token vectors; --no-late: the plain model, for stores without them."),
    report_dir: str = typer.Option("bench_results", "--report-dir", help="Directory for the JSON/markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Fit the learned ranker (needs engramdb[train]); prints leave-one-conversation-out recall first."""
    import json
    from pathlib import Path

    from ..bench import train_ranker
    from .output import err_console

    convs = [c.strip() for c in conversations.split(",") if c.strip()] if conversations else None
    model, report = train_ranker.train(path, conversations=convs, ablation=ablation, progress=not as_json,
                                       seeds=seeds, embedder=_embedder(embedder), late=late)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps(model, separators=(",", ":")) + "\n", encoding="utf-8")
    tmp.replace(target)  # a half-written model never replaces a good one
    report["model"] = str(target)
    publish(train_ranker, report, report_dir, as_json)
    if not as_json:
        err_console.print(f"[dim]wrote the model to {target}[/dim]")


@bench_app.command("calibration")
def bench_calibration(
    path: str = typer.Argument(..., help="LoCoMo-format JSON with questions and evidence."),
    conversations: str | None = typer.Option(None, help="Comma list of sample ids (or indexes); default all."),
    shipped_ranker: bool = typer.Option(False, "--shipped-ranker", help="Rank with the shipped learned ranker "
                                        "instead of one fitted without each conversation (no LightGBM needed; "
                                        "scores on the ranker's own training data are too confident)."),
    every: int = typer.Option(1, min=1, help="Search every n-th question only (2 halves the time); the fold "
                              "rankers still learn from all of them."),
    write_model: str | None = typer.Option(None, "--write-model", help="Also write the maps fitted on every "
                                           "conversation here (the shipped ones: retrieve/models/calibration.json)."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", help=EMBEDDER_HELP),
    report_dir: str = typer.Option("bench_results", "--report-dir", help="Directory for the JSON/markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Score calibration: out-of-fold table of score bucket -> observed precision, per pipeline."""
    import json
    from pathlib import Path

    from ..bench import calibration
    from .output import err_console

    convs = [c.strip() for c in conversations.split(",") if c.strip()] if conversations else None
    model, report = calibration.run(path, conversations=convs, embedder=_embedder(embedder),
                                    oof_ranker=not shipped_ranker, every=every, progress=not as_json)
    if write_model:
        target = Path(write_model)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        tmp.replace(target)
        report["model"] = str(target)
    publish(calibration, report, report_dir, as_json)
    if write_model and not as_json:
        err_console.print(f"[dim]wrote the calibration to {write_model}[/dim]")


@bench_app.command("longmemeval")
def bench_longmemeval(
    path: str = typer.Argument(..., help="LongMemEval JSON (e.g. longmemeval_s.json)."),
    compare: bool = typer.Option(False, "--compare", help="Also run the baselines bm25, dense and rrf."),
    all_roles: bool = typer.Option(False, "--all-roles", help="Index assistant turns too (LongMemEval: user only)."),
    max_questions: int | None = typer.Option(None, help="Only the first N questions (after skipping _abs)."),
    out: str = typer.Option("bench_results", help="Directory for the JSON, markdown and SVG report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """LongMemEval retrieval: session/turn recall_any, recall_all, ndcg_any @ 1,3,5,10,30,50 (its own definitions)."""
    from ..bench import longmemeval
    from ..bench.report import write_report
    from ..errors import ValidationError
    from .output import console, emit_json, err_console

    if max_questions is not None and max_questions < 1:
        raise ValidationError("--max-questions must be at least 1")
    report = longmemeval.run_longmemeval(
        path,
        methods=("default", "bm25", "dense", "rrf") if compare else ("default",),
        roles=("user", "assistant") if all_roles else ("user",),
        max_questions=max_questions,
        progress=not as_json,
    )
    paths = write_report(report, out, "longmemeval", markdown=longmemeval.longmemeval_markdown)
    if as_json:
        emit_json(report)
    else:
        console.print(longmemeval.longmemeval_markdown(report, chart_name=paths["chart"]), markup=False,
                      highlight=False)
        err_console.print(f"[dim]wrote {paths['json']}, {paths['markdown']} and {paths['chart']}[/dim]")


@bench_app.command("updates")
def bench_updates(
    people: int = typer.Option(40, help="Synthetic people (each changes 2-3 attributes over three sessions)."),
    seed: int = typer.Option(7, help="Generator seed."),
    split: str = typer.Option("test", help="Wording pool: test (report) or dev (tune)."),
    compare: bool = typer.Option(False, "--compare", help="Also run with lifecycle.current_truth off (before/after)."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", help=EMBEDDER_HELP + " hashing-384: engine only, fast."),
    out: str = typer.Option("bench_results", help="Directory for the JSON, markdown and SVG report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Knowledge updates: current-first@10, context names current@150, old shown as past, as_of; per attribute."""
    from ..bench import updates
    from ..errors import ValidationError
    from .output import emit_json, err_console

    if split not in updates.SPLITS:
        raise ValidationError("--split: dev or test")
    if not 1 <= people <= len(updates.NAMES):
        raise ValidationError(f"--people must be between 1 and {len(updates.NAMES)}")
    report = updates.run(people=people, seed=seed, split=split, compare=compare, embedder=_embedder(embedder),
                         progress=not as_json)
    paths = updates.write(report, out)
    if as_json:
        emit_json(report)
    else:
        sys.stdout.write(updates.markdown(report, chart_name=paths["chart"]))  # plain: tables must not wrap
        err_console.print(f"[dim]wrote {paths['json']}, {paths['markdown']} and {paths['chart']}[/dim]")


@bench_app.command("scale")
def bench_scale(
    sizes: str = typer.Option("10000,100000,1000000", help="Comma list of store sizes."),
    backends: str = typer.Option("sqlite,postgres", help="Comma list: sqlite, postgres."),
    queries: int = typer.Option(100, help="Search queries per size, scoped and unscoped each."),
    build: str = typer.Option("add", help="add: every store through Memory.add; replicate: sizes above 100k "
                                          "are copies of the 100k store under new ids (minutes, not hours)."),
    cache: str | None = typer.Option(None, help="Where built stores are kept and resumed "
                                                "(default ~/.cache/engramdb/scale)."),
    pg_url: str | None = typer.Option(None, help="PostgreSQL server (default: an embedded one, data in the cache)."),
    minilm_turns: int = typer.Option(0, help="Turns for a separate MiniLM ingest/query-embedding run (0: skip)."),
    append: int = typer.Option(0, help="Turns added to a copy of each SQLite store: engine-only ingest speed by "
                                       "store size (0: skip)."),
    rounds: int = typer.Option(3, help="Times each size is measured, the sizes taking turns, each round with its "
                                       "own queries and users; latencies are the rounds' medians."),
    seed: int = typer.Option(11),
    out: str = typer.Option("bench-results", help="Directory for the JSON, markdown and SVG report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Search latency (scoped and unscoped), RSS and disk per memory, by store size and backend; a chart."""
    from rich.progress import TaskID

    from ..bench import scale
    from ..errors import ValidationError
    from .app import progress_bar

    try:
        size_list = [int(s.replace("_", "")) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise ValidationError(f"--sizes: expected comma-separated integers, got {sizes!r}") from exc
    backend_list = tuple(b.strip() for b in backends.split(",") if b.strip())
    if not size_list or any(n < 100 for n in size_list) or queries < 1 or rounds < 1 or minilm_turns < 0 \
            or append < 0:
        raise ValidationError("--sizes: each size must be at least 100; --queries and --rounds at least 1; "
                              "--minilm-turns and --append >= 0")
    if not backend_list or set(backend_list) - {"sqlite", "postgres"} or build not in ("add", "replicate"):
        raise ValidationError("--backends: sqlite and/or postgres; --build: add or replicate")
    if build == "replicate" and any(n > scale.REPLICATE_BASE and n % scale.REPLICATE_BASE for n in size_list):
        raise ValidationError(f"--build replicate: sizes above {scale.REPLICATE_BASE:,} must be multiples of it")
    with progress_bar("scale", enabled=not as_json) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks.clear()
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total, description=stage)

        report = scale.run(
            size_list, backends=backend_list, minilm_turns=minilm_turns, n_queries=queries, seed=seed,
            cache_dir=cache, pg_url=pg_url, build=build, append=append, rounds=rounds, progress=progress,
        )
    publish(scale, report, out, as_json)


# -- procedural memory: held-out toy-shop tasks with and without tips ------------------
@bench_app.command("procedural")
def bench_procedural(
    curve: str = typer.Option("2,5,10,20,40,80,160", help="Comma list of past-trajectory counts (0 is always run)."),
    seeds: int = typer.Option(3, help="Independent seeds (training data, test tasks, exploration)."),
    test: int = typer.Option(50, help="Held-out test tasks per seed and point."),
    embedder: str = typer.Option("default", help="default (MiniLM) or hashing (fast, no model)."),
    out: str = typer.Option("bench_results", help="Directory for the JSON and markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Success rate and steps of a scripted agent on held-out tasks, with and without procedural memory."""
    from ..bench import procedural
    from ..errors import ValidationError
    from .app import progress_bar

    try:
        points = [int(x) for x in curve.split(",") if x.strip()]
    except ValueError as exc:
        raise ValidationError(f"--curve: expected comma-separated integers, got {curve!r}") from exc
    if not points or any(n < 0 or n > 5000 for n in points) or not 1 <= seeds <= 20 or not 1 <= test <= 1000:
        raise ValidationError("--curve counts 0..5000, --seeds 1..20, --test 1..1000")
    if embedder not in ("default", "hashing"):
        raise ValidationError("--embedder: default or hashing")
    emb = None
    if embedder == "hashing":
        from ..embed import HashingEmbedder

        emb = HashingEmbedder(64)
    with progress_bar("procedural", enabled=not as_json) as bar:
        task = bar.add_task("procedural", total=None)
        report = procedural.run(curve=points, seeds=seeds, n_test=test, embedder=emb,
                                progress=lambda d, t: bar.update(task, completed=d, total=t))
    publish(procedural, report, out, as_json)


# -- server load: REST on loopback, SQLite and PostgreSQL ------------------------------
@bench_app.command("load")
def bench_load(
    backends: str = typer.Option("sqlite,postgres", help="Comma list: sqlite, postgres."),
    pg_url: str | None = typer.Option(None, help="PostgreSQL URL (default: start an embedded PostgreSQL 18)."),
    clients: int = typer.Option(4, help="Concurrent clients."),
    seconds: float = typer.Option(10.0, help="Duration of each phase (search, add)."),
    seed_memories: int = typer.Option(1000, help="Memories stored before timing."),
    embedder: str = typer.Option("all-MiniLM-L6-v2", help="Embedding model of the server (hashing-64: no model)."),
    workers: int = typer.Option(1, help="Server worker processes."),
    out: str = typer.Option("bench_results", help="Directory for the JSON and markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Requests/s and latency p50/p95/p99 of search and add, N clients against `engramdb serve` on 127.0.0.1."""
    from ..bench import load
    from .output import err_console

    report = load.run(
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        pg_url=pg_url,
        clients=clients,
        seconds=seconds,
        seed_memories=seed_memories,
        embedder=embedder,
        workers=workers,
        progress=None if as_json else lambda msg: err_console.print(f"[dim]{msg}[/dim]"),
    )
    publish(load, report, out, as_json)


@bench_app.command("faults")
def bench_faults(
    kills: int = typer.Option(200, "--kills", min=1, help="workers to kill -9 (operations in turn)"),
    concurrency: bool = typer.Option(True, "--concurrency/--no-concurrency", help="also 4 writers + 2 searchers"),
    writes: int = typer.Option(1200, "--writes", min=1, help="memories per writer in the concurrency check"),
    workdir: str = typer.Option(None, "--dir", help="where the scratch store goes (default: a temporary folder)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Kill writers at random moments during add, batch add, consolidate, reindex and import, check the store
    after each kill (docs/reliability.md); exit 1 if anything was lost or torn."""
    import json

    from ..bench import faults

    report: dict[str, Any] = {"faults": faults.run(kills, workdir=workdir, seed=seed, progress=True)}
    if concurrency:
        report["concurrency"] = faults.concurrency(writes=writes)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    c = report.get("concurrency", {})
    if any(report["faults"]["problems"].values()) or c.get("lost") or c.get("duplicated") or c.get("search_errors"):
        raise typer.Exit(1)


@bench_app.command("privacy")
def bench_privacy(
    people: int = typer.Option(24, min=1, max=1000, help="Synthetic people (each with 11 attributes)."),
    seed: int = typer.Option(7, help="Which attribute values and wordings each person gets."),
    max_tokens: int = typer.Option(800, min=16, max=8000, help="The context budget of each task."),
    wording: str = typer.Option("main", help="main, fresh or unseen: other phrasings of the attributes "
                                              "(docs/privacy.md says which the classifier was adjusted to)."),
    embedder: str = typer.Option("default", help="default (the configured model) or hashing (no model: labels "
                                                 "from patterns only)."),
    out: str = typer.Option("bench_results", help="Directory for the JSON and markdown report."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Contextual integrity: forbidden attributes that reach an agent's context (violations) and needed ones
    that do (utility), with and without disclosure policies (docs/privacy.md)."""
    from ..bench import privacy
    from ..errors import ValidationError
    from .app import progress_bar

    if embedder not in ("default", "hashing"):
        raise ValidationError("--embedder: default or hashing")
    if wording not in ("main", "fresh", "unseen"):
        raise ValidationError("--wording: main, fresh or unseen")
    emb = None
    if embedder == "hashing":
        from ..embed import HashingEmbedder

        emb = HashingEmbedder(64)
    with progress_bar("privacy", enabled=not as_json) as bar:
        task = bar.add_task("privacy", total=None)
        report = privacy.run(people=people, seed=seed, embedder=emb, max_tokens=max_tokens,
                             labels="offline" if emb is None else "patterns", wording=wording,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))
    publish(privacy, report, out, as_json)
