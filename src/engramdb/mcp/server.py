"""The MCP server: EngramDB's memory as tools an agent can call.

Two transports:
- stdio (`engramdb mcp --db agent.db`): one store, no keys — the client owns the process;
- streamable HTTP (`engramdb mcp --transport http`, or `/mcp` on `engramdb serve`): every
  HTTP request must carry an API key (`Authorization: Bearer edb_...`), checked before
  the MCP layer sees it; each tool call then resolves the key's tenant again and opens
  only that tenant's store, so tools can never cross tenants either. That transport, with
  the keys, lives in server/mcp_http.py: this module knows `Memory` only.

Tool descriptions are written for the model that decides when to call them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from pydantic import Field

from ..api import params as P
from ..api.memory import Memory
from ..errors import EngramError, ForbiddenError, RateLimited

try:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    from ..errors import ConfigError

    raise ConfigError("the MCP server needs the 'mcp' package: pip install '.[server]'") from exc

# (ctx, permission) -> the caller's Memory; raises EngramError when the caller may not.
Resolver = Callable[[Context | None, str], Memory]

INSTRUCTIONS = (
    "EngramDB gives you long-term memory across conversations. Use `recall` (or `get_context`) before answering "
    "anything that may depend on what you were told earlier; use `remember` to save durable facts, preferences, "
    "decisions and events as short self-contained statements; fix stale memories with `update_memory` instead of "
    "adding contradictions; `forget` what the user asks you to forget. Pass the same user_id every time for the "
    "same person."
)

UserId = Annotated[
    str | None,
    Field(description="Who the memory is about or belongs to (stable id of the end user). Reuse the same value."),
]
AgentId = Annotated[str | None, Field(description="Optional: which agent the memory belongs to.")]
SessionId = Annotated[str | None, Field(description="Optional: the conversation/session it came from.")]
MemId = Annotated[str, Field(description="A memory id, as returned by recall or remember.", min_length=1)]
# The limits and types of every parameter are the operations' own (api/params.py), as over REST and the CLI.


class _Scope(TypedDict):
    user_id: str | None
    agent_id: str | None
    session_id: str | None


def _brief(rec: Any) -> dict[str, Any]:
    return {
        "id": rec.id,
        "text": rec.text,
        "kind": rec.kind,
        "speaker": rec.speaker,
        "occurred_at": rec.occurred_at.isoformat() if rec.occurred_at else None,
        "user_id": rec.user_id,
        "version": rec.version,
    }


def build_server(resolve: Resolver, *, default_scope: dict[str, str | None] | None = None,
                 audience: str | None = None,
                 audience_of: Callable[[Context | None], str | None] | None = None) -> MCPServer:
    """An MCPServer whose tools act on the Memory that `resolve` returns for each call. `audience` (default:
    $ENGRAMDB_AUDIENCE): the agent or purpose this server answers; recall and get_context then serve only what
    the disclosure policies let it see (docs/privacy.md). The model cannot change it. `audience_of`: the audience
    of each call's caller (over HTTP, the one its API key is bound to), which wins over `audience`. While an
    audience is in force, the tools that would return memories past the policies (history, facts, update) are
    refused."""
    defaults = {k: v for k, v in (default_scope or {}).items() if v}
    audience = audience or os.environ.get("ENGRAMDB_AUDIENCE") or None
    # WARNING: the SDK installs a root log handler at this level; INFO would echo every HTTP call.
    mcp = MCPServer("engramdb", instructions=INSTRUCTIONS, version="0.1.0", log_level="WARNING")

    def scoped(user_id: str | None, agent_id: str | None, session_id: str | None) -> _Scope:
        given = _Scope(user_id=user_id, agent_id=agent_id, session_id=session_id)
        if not any(given.values()):
            given.update(defaults)  # type: ignore[typeddict-item]  # keys of default_scope are scope fields
        return given

    def audience_for(ctx: Context | None) -> str | None:
        return (audience_of(ctx) if audience_of is not None else None) or audience

    def call(ctx: Context | None, permission: str, fn: Callable[[Memory], Any], *, unfiltered: bool = False) -> Any:
        # Expected errors become tool errors the model can read and act on (not protocol failures).
        try:
            mem = resolve(ctx, permission)
            if unfiltered and audience_for(ctx):
                raise ForbiddenError("this tool is not open to an audience (its answer would bypass the disclosure "
                                     "policies); use recall or get_context")
            return fn(mem)
        except EngramError as exc:
            raise ToolError(str(exc)) from exc
        except RateLimited as exc:
            raise ToolError(str(exc)) from exc

    @mcp.tool(
        annotations=ToolAnnotations(title="Remember", read_only_hint=False, destructive_hint=False),
        description=(
            "Save something to long-term memory so it can be recalled in future conversations. Call this when you "
            "learn a durable fact, preference, plan, decision or event (e.g. 'Alice is vegetarian', 'Bob's flight to "
            "Lisbon is on 3 June'). Write one short, self-contained statement per call, naming who it is about; "
            "skip small talk and anything already remembered (recall first if unsure). Returns the stored ids."
        ),
    )
    def remember(
        text: Annotated[str, P.schema_field(P.AddRequest, "messages", "The statement to remember, self-contained.")],
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        speaker: Annotated[str | None, Field(description="Who said it, if it was said (e.g. 'user').")] = None,
        timestamp: Annotated[
            str | None,
            P.schema_field(P.AddOptions, "timestamp", "When it happened, ISO-8601 with a time zone (default: now)."),
        ] = None,
        kind: Annotated[
            str,
            P.schema_field(P.AddOptions, "kind", "episode (something said/done), fact, profile, summary or procedure."),
        ] = "episode",
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Optional tags, e.g. {'topic': 'travel'}.")
        ] = None,
        expires_at: Annotated[
            str | None,
            P.schema_field(P.AddOptions, "expires_at", "Forget it at this time, ISO-8601 (default: never), for "
                                                       "what only matters for a while (a code, a booking)."),
        ] = None,
    ) -> dict[str, Any]:
        message: Any = {"text": text, "speaker": speaker} if speaker else text
        recs = call(
            ctx,
            "write",
            lambda m: m.add(
                message, **scoped(user_id, agent_id, session_id), timestamp=timestamp, kind=kind, metadata=metadata,
                expires_at=expires_at,
            ),
        )
        return {"stored": [_brief(r) for r in recs]}

    @mcp.tool(
        annotations=ToolAnnotations(title="Recall", read_only_hint=True),
        description=(
            "Search long-term memory. Call this before answering anything that may depend on earlier conversations "
            "(the user's preferences, personal facts, past decisions, what happened when) and before `remember`, "
            "to avoid duplicates. Phrase the query as the question you need answered. Returns the best matches, "
            "best first, with ids (for update_memory / forget / memory_history), dates and relevance scores. "
            "`current: false` marks a memory that is no longer true (a newer one, `superseded_by`, replaced it); "
            "questions about the present get what is true now first."
        ),
    )
    def recall(
        query: Annotated[str, P.schema_field(P.SearchQuery, "query", "What you want to know, in natural language.")],
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        limit: Annotated[int, P.schema_field(P.SearchQuery, "limit")] = 5,
        since: Annotated[str | None, P.schema_field(P.SearchQuery, "since")] = None,
        until: Annotated[str | None, P.schema_field(P.SearchQuery, "until")] = None,
        as_of: Annotated[str | None, P.schema_field(P.SearchQuery, "as_of")] = None,
        order: Annotated[str, P.schema_field(P.SearchQuery, "order")] = "relevance",
        threshold: Annotated[float | None, P.schema_field(P.SearchQuery, "threshold")] = None,
    ) -> dict[str, Any]:
        results = call(
            ctx,
            "read",
            lambda m: m.search(query, **scoped(user_id, agent_id, session_id), limit=limit, since=since, until=until,
                               as_of=as_of, order=order, threshold=threshold,
                               audience=audience_for(ctx)),
        )
        return {"results": [{**_brief(r.memory), "score": round(r.score, 4), "current": r.current,
                             **({"superseded_by": r.superseded_by} if r.superseded_by else {})} for r in results]}

    @mcp.tool(
        annotations=ToolAnnotations(title="Get memory context", read_only_hint=True),
        description=(
            "Get a ready-to-use block of the memories most relevant to a query: oldest first, with dates and "
            "speakers, trimmed to a token budget. Prefer this over `recall` when you want to read memory straight "
            "into your reasoning (e.g. at the start of a conversation or before a personalised answer) rather "
            "than inspect or edit individual memories."
        ),
    )
    def get_context(
        query: Annotated[str, P.schema_field(P.ContextQuery, "query", "The topic or question the context is for.")],
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        max_tokens: Annotated[int, P.schema_field(P.ContextQuery, "max_tokens")] = 800,
        as_of: Annotated[str | None, P.schema_field(P.ContextQuery, "as_of")] = None,
        threshold: Annotated[float | None, P.schema_field(P.ContextQuery, "threshold")] = None,
    ) -> str:
        block = call(
            ctx,
            "read",
            lambda m: m.context(query, **scoped(user_id, agent_id, session_id), max_tokens=max_tokens, as_of=as_of,
                                threshold=threshold, audience=audience_for(ctx)),
        )
        return block.text or "(no relevant memories)"

    @mcp.tool(
        annotations=ToolAnnotations(title="Forget", read_only_hint=False, destructive_hint=True, idempotent_hint=True),
        description=(
            "Forget one memory by id (get the id from `recall`). Call this when the user asks you to forget "
            "something, or a memory is wrong and must no longer be used. It disappears from recall and context, "
            "and so do the facts derived from it alone (a value it had replaced becomes current again); "
            "its history is kept for audit. To correct a memory rather than drop it, use `update_memory`."
        ),
    )
    def forget(memory_id: MemId, ctx: Context) -> dict[str, Any]:
        call(ctx, "write", lambda m: m.delete(memory_id))
        return {"forgotten": memory_id}

    @mcp.tool(
        annotations=ToolAnnotations(title="Update memory", read_only_hint=False, destructive_hint=False),
        description=(
            "Correct or refine an existing memory by id when new information changes it (the user moved, a plan "
            "changed, a preference was wrong). The previous version is kept and shown by `memory_history`. Prefer "
            "this over remembering a new statement that contradicts an old one. Give at least one of text, "
            "metadata, importance, expires_at or clear."
        ),
    )
    def update_memory(
        memory_id: MemId,
        ctx: Context,
        text: Annotated[
            str | None, P.schema_field(P.UpdateRequest, "text", "The corrected statement (replaces the old text).")
        ] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Replacement metadata object.")] = None,
        importance: Annotated[float | None, P.schema_field(P.UpdateRequest, "importance")] = None,
        expires_at: Annotated[str | None, P.schema_field(P.UpdateRequest, "expires_at")] = None,
        clear: Annotated[list[str] | None, P.schema_field(P.UpdateRequest, "clear")] = None,
    ) -> dict[str, Any]:
        rec = call(ctx, "write", lambda m: m.update(memory_id, text=text, metadata=metadata, importance=importance,
                                                    expires_at=expires_at, clear=clear), unfiltered=True)
        return {"updated": _brief(rec)}

    @mcp.tool(
        annotations=ToolAnnotations(title="Memory history", read_only_hint=True),
        description=(
            "Show the versions of one memory: what it said before, what changed, and when (add, update, delete), "
            "the newest `limit` of them, oldest first; `more_before` says older ones exist. "
            "Use it when asked how or when something you remember changed, or to check a memory before relying on it."
        ),
    )
    def memory_history(
        memory_id: MemId,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=P.MAX_PAGE, description="How many of the newest versions.")] = 20,
    ) -> dict[str, Any]:
        # one more than asked says whether older versions exist (a tip changes on every use: thousands)
        entries = call(ctx, "read", lambda m: m.history(memory_id, limit=min(limit + 1, P.MAX_PAGE)),
                       unfiltered=True)
        more = len(entries) > limit
        entries = entries[len(entries) - limit:] if more else entries
        return {
            "memory_id": memory_id,
            "more_before": more,
            "versions": [
                {
                    "version": h.version,
                    "action": h.action,
                    "at": h.at.isoformat(),
                    "text_before": (h.before or {}).get("text"),
                    "text_after": (h.after or {}).get("text"),
                }
                for h in entries
            ],
        }

    @mcp.tool(
        annotations=ToolAnnotations(title="Facts", read_only_hint=True),
        description=(
            "List the structured facts known about someone (where they live, work, what they prefer...), each "
            "with its subject, attribute, value and since when it holds. Current facts by default; `as_of` gives "
            "the facts that held at a past date, `include_history` every value a fact went through."
        ),
    )
    def facts(
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        subject: Annotated[str | None, P.schema_field(P.FactsQuery, "subject")] = None,
        attribute: Annotated[str | None, P.schema_field(P.FactsQuery, "attribute")] = None,
        as_of: Annotated[str | None, P.schema_field(P.FactsQuery, "as_of")] = None,
        include_history: Annotated[bool, P.schema_field(P.FactsQuery, "include_history")] = False,
        limit: Annotated[int, P.schema_field(P.FactsQuery, "limit")] = 100,
    ) -> dict[str, Any]:
        scope = scoped(user_id, agent_id, None)
        recs = call(
            ctx,
            "read",
            lambda m: m.facts(user_id=scope["user_id"], agent_id=scope["agent_id"], subject=subject,
                              attribute=attribute, as_of=as_of, include_history=include_history, limit=limit),
            unfiltered=True,
        )
        return {
            "facts": [
                {
                    **_brief(r),
                    "subject": r.metadata.get("subject"),
                    "attribute": r.metadata.get("attribute"),
                    "value": r.metadata.get("value"),
                    "valid_from": r.valid_from.isoformat() if r.valid_from else None,
                    "valid_to": r.valid_to.isoformat() if r.valid_to else None,
                }
                for r in recs
            ]
        }

    @mcp.tool(
        annotations=ToolAnnotations(title="Tips", read_only_hint=False, destructive_hint=False),
        description=(
            "Before starting a task, get tips learnt from earlier runs of similar tasks: strategies that worked, "
            "recoveries from errors, warnings. Pass the tools you have and any errors you are seeing. Returns a "
            "prompt-ready block and the tip ids; after the task, call `report_outcome` with those ids."
        ),
    )
    def tips(
        task_description: Annotated[str, P.schema_field(P.TipsQuery, "task_description")],
        ctx: Context,
        user_id: UserId = None,
        agent_id: AgentId = None,
        session_id: SessionId = None,
        tools: Annotated[list[str] | None, P.schema_field(P.TipsQuery, "tools")] = None,
        errors: Annotated[list[str] | None, P.schema_field(P.TipsQuery, "errors")] = None,
        limit: Annotated[int, P.schema_field(P.TipsQuery, "limit")] = 5,
    ) -> dict[str, Any]:
        g = call(
            ctx,
            "write",  # serving a tip counts it (its utility is learnt from the outcomes reported)
            lambda m: m.tips(task_description, **scoped(user_id, agent_id, session_id), tools=tools, errors=errors,
                             limit=limit),
        )
        return {"text": g.text or "(no tips yet)", "tip_ids": g.tip_ids}

    @mcp.tool(
        annotations=ToolAnnotations(title="Report outcome", read_only_hint=False, destructive_hint=False),
        description=(
            "After a task for which you got tips, report how it went: success, failure or partial, with the "
            "tip ids `tips` returned. Tips that keep failing are retired; ones that work are served first."
        ),
    )
    def report_outcome(
        tip_ids: Annotated[list[str], P.schema_field(P.OutcomeRequest, "tip_ids", "The tip ids `tips` returned.")],
        outcome: Annotated[str, P.schema_field(P.OutcomeRequest, "outcome", "success, failure or partial.")],
        ctx: Context,
    ) -> dict[str, Any]:
        updated = call(ctx, "write", lambda m: m.report_outcome(tip_ids, outcome))
        return {"updated": [{"id": t.id, "text": t.text, "status": t.status} for t in updated]}

    return mcp


def stdio_server(
    mem: Memory, *, read_only: bool = False, default_scope: dict[str, str | None] | None = None,
    audience: str | None = None,
) -> MCPServer:
    """A server over one store, for `engramdb mcp` on stdio (the client owns the process)."""

    def resolve(_ctx: Context | None, permission: str) -> Memory:
        if read_only and permission != "read":
            raise ForbiddenError("this MCP server was started read-only (--read-only)")
        return mem

    return build_server(resolve, default_scope=default_scope, audience=audience)
