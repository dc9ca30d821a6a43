"""CLI commands of the memory lifecycle: extract, facts, chain, consolidate, expire, forget, purge."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ValidationError
from .app import AgentOpt, DbOpt, JsonOpt, SessionOpt, UrlOpt, UserOpt, open_memory, parse_json_opt, progress_bar
from .output import console, emit_json, err_console


def register(app: typer.Typer) -> None:
    @app.command()
    def extract(
        episode: Annotated[list[str] | None, typer.Option("--episode", help="Re-extract these episode ids.")] = None,
        extractor: Annotated[str | None, typer.Option(help="rules or llm (default: the configured one).")] = None,
        db: DbOpt = None,
        url: UrlOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Extract facts from episodes not yet processed (or --episode ids) and apply knowledge updates."""
        with open_memory(db, url) as mem:
            with progress_bar("extracting", enabled=not as_json) as bar:
                task = bar.add_task("extract", total=None)
                rep = mem.extract(
                    episode_ids=episode,
                    extractor=extractor,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        if as_json:
            emit_json(rep)
            return
        console.print(
            f"{rep.extractor}: {rep.episodes} episodes, {rep.facts_found} facts found; added {len(rep.added)}, "
            f"merged {len(rep.merged)}, superseded {len(rep.superseded)}, pending {rep.pending}"
        )
        for e in rep.errors:
            err_console.print(f"[red]failed:[/red] {e}", highlight=False)

    @app.command()
    def facts(
        user: UserOpt = None,
        agent: AgentOpt = None,
        subject: Annotated[str | None, typer.Option(help="Only facts about this subject.")] = None,
        attribute: Annotated[str | None, typer.Option(help="Only this attribute (lives_in, works_at, ...).")] = None,
        as_of: Annotated[str | None, typer.Option("--as-of", help="What was true then (ISO-8601).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Include superseded facts.")] = False,
        db: DbOpt = None,
        url: UrlOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Structured facts: current by default, --as-of for a past date, --all for the full history."""
        with open_memory(db, url) as mem:
            recs = mem.facts(
                user_id=user, agent_id=agent, subject=subject, attribute=attribute, as_of=as_of, include_history=all_
            )
        if as_json:
            emit_json(recs)
            return
        from rich.table import Table

        table = Table(title=f"{len(recs)} fact(s)")
        for col in ("id", "subject", "attribute", "value", "valid from", "valid to", "sources"):
            table.add_column(col)
        for r in recs:
            m = r.metadata
            table.add_row(
                r.id,
                str(m.get("subject", "")),
                str(m.get("attribute", "")),
                str(m.get("value", r.text)),
                f"{r.valid_from:%Y-%m-%d}" if r.valid_from else "",
                f"{r.valid_to:%Y-%m-%d}" if r.valid_to else "now",
                str(len(r.source_ids)),
            )
        console.print(table)

    @app.command()
    def chain(fact_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
        """The chain of values of a fact, oldest first (supersedes links)."""
        with open_memory(db, url) as mem:
            recs = mem.fact_history(fact_id)
        if as_json:
            emit_json(recs)
            return
        for r in recs:
            until = f"{r.valid_to:%Y-%m-%d}" if r.valid_to else "now"
            since = f"{r.valid_from:%Y-%m-%d}" if r.valid_from else "?"
            console.print(f"{since} .. {until}  {r.text}  [dim]{r.id}[/dim]", highlight=False)

    @app.command()
    def consolidate(db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
        """Sleep-time consolidation: session summaries, topics, merges, related links (incremental, idempotent)."""
        with open_memory(db, url) as mem:
            with progress_bar("consolidating", enabled=not as_json) as bar:
                task = bar.add_task("consolidate", total=None)
                rep = mem.consolidate(
                    progress=lambda what, done, total: bar.update(task, completed=done, total=total, description=what)
                )
        if as_json:
            emit_json(rep)
            return
        console.print(
            f"expired {rep.expired}, session summaries {rep.sessions_summarized} "
            f"(superseded {rep.summaries_superseded}), topics +{rep.topics_created}/-{rep.topics_retired}, "
            f"merged {rep.merged}, related links {rep.links_added}"
        )
        for f in rep.failures:
            err_console.print(f"[yellow]skipped (retried next run):[/yellow] {f}", highlight=False)

    @app.command()
    def expire(db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
        """Soft-delete memories whose expires_at has passed."""
        with open_memory(db, url) as mem:
            n = mem.expire()
        if as_json:
            emit_json({"expired": n})
        else:
            console.print(f"expired {n} memories")

    @app.command()
    def decay(
        user: UserOpt = None,
        agent: AgentOpt = None,
        limit: Annotated[int, typer.Option("--limit", "-n", help="How many, lowest first.")] = 50,
        db: DbOpt = None,
        url: UrlOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Decay scores of the memories the decay policy covers, lowest (fading soonest) first."""
        with open_memory(db, url) as mem:
            scores = mem.decay_scores(user_id=user, agent_id=agent, limit=limit)
        if as_json:
            emit_json([{"id": i, "score": s} for i, s in scores])
        else:
            for i, s in scores:
                console.print(f"{s:.3f}  {i}", highlight=False)

    @app.command()
    def archive(db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
        """Soft-delete the memories under the decay policy's archive_below (nothing when decay is off)."""
        with open_memory(db, url) as mem:
            n = mem.archive_decayed()
        if as_json:
            emit_json({"archived": n})
        else:
            console.print(f"archived {n} memories")

    @app.command()
    def forget(
        memory_id: Annotated[str | None, typer.Argument(help="A memory id (or use filters).")] = None,
        user: UserOpt = None,
        agent: AgentOpt = None,
        session: SessionOpt = None,
        kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
        before: Annotated[str | None, typer.Option(help="Only memories that occurred before this time.")] = None,
        where: Annotated[str | None, typer.Option(help="Metadata equality filter as JSON.")] = None,
        no_cascade: Annotated[
            bool, typer.Option("--no-cascade", help="Keep memories derived from the forgotten ones.")
        ] = False,
        db: DbOpt = None,
        url: UrlOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Soft-delete by id or by filters (history keeps it). For erasure use `purge`."""
        with open_memory(db, url) as mem:
            rep = mem.forget(
                memory_id,
                user_id=user,
                agent_id=agent,
                session_id=session,
                kinds=kind,
                before=before,
                filters=parse_json_opt(where, "--where"),
                cascade=not no_cascade,
            )
        if as_json:
            emit_json(rep)
        else:
            console.print(f"forgot {len(rep.forgotten)} memories ({rep.cascaded} derived)")

    @app.command()
    def purge(
        user: UserOpt = None,
        agent: AgentOpt = None,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
        db: DbOpt = None,
        url: UrlOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Erase EVERY trace of a user or agent (rows, indexes, vectors, history, derived memories), then VACUUM."""
        if not user and not agent:
            raise ValidationError("purge needs --user or --agent")
        if not yes:
            if as_json:
                raise ValidationError("purge is irreversible: pass --yes with --json")
            typer.confirm(f"Erase everything of {'user ' + user if user else 'agent ' + str(agent)}?", abort=True)
        with open_memory(db, url) as mem:
            rep = mem.purge(user_id=user, agent_id=agent)
        if as_json:
            emit_json(rep)
        else:
            console.print(
                f"purged {rep.memories} memories ({rep.derived_elsewhere} derived in other scopes); "
                f"database {rep.bytes_before} -> {rep.bytes_after} bytes"
            )
