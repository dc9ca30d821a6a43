"""Procedural memory over a `Memory`: store trajectories, learn tips, serve them, close the loop.

Storage (all in the ordinary memory table, so export/import, history and search keep working):
- a trajectory is one header `episode` (metadata.procedural = "trajectory") plus one `episode` per step
  (metadata.procedural = "step", trajectory_id, index, and the structured step), whose source_ids point
  at the header;
- a tip is a `procedure` memory (metadata.procedural = "tip") whose `source_ids` are the exact step
  episodes it was drawn from: tip -> steps -> trajectory is the provenance chain.
Utility counters (served, outcomes after serving) live in the tip's metadata; every change is versioned.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from ..errors import ConfigError, NotFoundError, ValidationError
from ..model import EPISODE, PROCEDURE, MemoryRecord
from ..resources import ScopeDict
from ..store.base import Filters, Link
from ..timeutil import now, parse_time
from .learn import MAX_SOURCES, error_signature, mine, task_words
from .model import TIP_TYPES, Guidance, ServedTip, Tip, TipDraftList, Trajectory, normalize_outcome

if TYPE_CHECKING:
    from ..embed.base import Embedder
    from ..store.base import Store


class Memory(Protocol):
    """What the engine writes through (procedural.service.ProceduralHost): the store, the model, index keys,
    and the checked write methods of `Memory`."""

    store: Store

    @property
    def embedder(self) -> Embedder: ...

    def keys(self, records: list[MemoryRecord]) -> tuple[list[str], Any, list[Any]]: ...

    def add_records(self, records: list[MemoryRecord]) -> list[MemoryRecord]: ...

    def update(self, memory_id: str, *, text: str | None = None, metadata: dict[str, Any] | None = None
               ) -> MemoryRecord: ...

PROMPTS = Path(__file__).parent / "prompts"
_PAGE = 2_000
# Retrieval weights (multi-dimensional similarity): task meaning, tools at hand, errors being seen, the
# tip's own applicability words, and a small prior for well-supported, useful tips.
W_TASK, W_TOOLS, W_ERROR, W_KEYWORDS, W_PRIOR = 0.45, 0.2, 0.25, 0.1, 0.1


class LearnReport(BaseModel):
    trajectories: int
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    merged: list[str] = Field(default_factory=list)
    rejected: list[dict[str, str]] = Field(default_factory=list)
    tips: list[Tip] = Field(default_factory=list)


# -- ingestion ---------------------------------------------------------------------------------
def ingest(
    mem: Memory,
    trajs: list[Trajectory],
    scope: ScopeDict,
    *,
    timestamp: Any = None,
    metadata: dict[str, Any] | None = None,
    source_ref: str | None = None,
    embed_steps: bool = False,
) -> list[Trajectory]:
    """Store trajectories (headers and steps) in one transaction; fills their ids.

    Headers are embedded; steps only when `embed_steps` (they are always in the keyword index). Embedding
    every step multiplies ingest cost by the trajectory length, and the miner reads steps by structure."""
    from ..ingest.keys import build_keys
    from ..ingest.normalize import check_metadata

    base = check_metadata(metadata)
    when = parse_time(timestamp, field="timestamp") or now()
    records: list[MemoryRecord] = []
    steps: list[MemoryRecord] = []
    for traj in trajs:
        header = MemoryRecord(
            **scope,
            kind=EPISODE,
            text=traj.summary(),
            speaker=scope.get("agent_id") or "agent",
            metadata={
                **base,
                "procedural": "trajectory",
                "outcome": traj.outcome,
                "task": traj.task,
                "n_steps": traj.n_steps,
                "tools": traj.tools(),
                "metrics": traj.metrics.model_dump(exclude_none=True),
            },
            occurred_at=when,
            recorded_at=now(),
            source_ref=traj.source_ref or source_ref,
        )
        traj.id = header.id
        records.append(header)
        traj.step_ids = []
        for i, step in enumerate(traj.steps):
            rec = MemoryRecord(
                **scope,
                kind=EPISODE,
                text=step.text(i),
                speaker=scope.get("agent_id") or "agent",
                role="tool" if step.tool else "assistant",
                metadata={
                    "procedural": "step",
                    "trajectory_id": header.id,
                    "index": i,
                    "tool": step.tool,
                    "failed": step.failed,
                    "error_signature": error_signature(step.error) or None,
                    "step": step.model_dump(exclude_defaults=True),
                },
                occurred_at=when,
                recorded_at=header.recorded_at,
                source_ids=[header.id],
            )
            traj.step_ids.append(rec.id)
            steps.append(rec)
        header.metadata["step_ids"] = list(traj.step_ids)
    if embed_steps:
        mem.add_records(records + steps)
        return trajs
    h_index, h_vecs, h_tokens = mem.keys(records)  # before the transaction: a model failure writes nothing
    s_index, _ = build_keys(steps)
    with mem.store.transaction():
        mem.store.insert(records, h_vecs, h_index, tokens=h_tokens)
        mem.store.insert(steps, None, s_index)
    return trajs


def _list_all(mem: Memory, f: Filters, *, order: str = "recorded_at", offset: int = 0) -> list[MemoryRecord]:
    out: list[MemoryRecord] = []
    while True:
        page = mem.store.list(f, limit=_PAGE, offset=offset + len(out), order=order)
        out.extend(page)
        if len(page) < _PAGE:
            return out


def load_trajectories(mem: Memory, scope: ScopeDict, ids: list[str] | None = None) -> list[Trajectory]:
    """Rebuild stored trajectories (optionally only `ids`), oldest first."""
    headers = _list_all(mem, Filters(**scope, kinds=[EPISODE], metadata={"procedural": "trajectory"}, ids=ids))
    if not headers:
        return []
    steps = _list_all(mem, Filters(**scope, kinds=[EPISODE], metadata={"procedural": "step"}))
    by_traj: dict[str, list[MemoryRecord]] = {}
    for s in steps:
        by_traj.setdefault(str(s.metadata.get("trajectory_id") or ""), []).append(s)
    out = []
    for h in headers:
        rows = sorted(by_traj.get(h.id, []), key=lambda r: r.metadata.get("index", 0))
        if not rows:
            continue  # steps deleted: nothing to learn from
        out.append(
            Trajectory(
                id=h.id,
                task=h.metadata["task"],
                outcome=h.metadata["outcome"],
                metrics=h.metadata.get("metrics") or {},
                source_ref=h.source_ref,
                steps=[r.metadata["step"] for r in rows],
                step_ids=[r.id for r in rows],
            )
        )
    return out


# -- tips as records -----------------------------------------------------------------------------
def _tip_meta(tip: Tip, aliases: list[str] | None = None) -> dict[str, Any]:
    body = tip.model_dump(exclude={"id", "text"})
    body["task_examples"] = [t[:300] for t in body["task_examples"]]
    return {
        "procedural": "tip",
        "tip_type": tip.type,
        "status": tip.status,
        "tip_key": tip.key,
        "tip_aliases": aliases or [],
        "tip": body,
    }


def tip_from_record(rec: MemoryRecord) -> Tip:
    return Tip.model_validate({**rec.metadata["tip"], "id": rec.id, "text": rec.text})


def _tip_filters(scope: ScopeDict, status: str | None, tip_type: str | None) -> Filters:
    meta: dict[str, Any] = {"procedural": "tip"}
    if status:
        meta["status"] = status
    if tip_type:
        meta["tip_type"] = tip_type
    return Filters(**scope, kinds=[PROCEDURE], metadata=meta)


def load_tip_records(mem: Memory, scope: ScopeDict, *, status: str | None = "active", tip_type: str | None = None,
                     order: str = "recorded_at", limit: int | None = None, offset: int = 0) -> list[MemoryRecord]:
    """Tip records in scope: every one (limit None), or one page in `order` (a Store.list order)."""
    f = _tip_filters(scope, status, tip_type)
    if limit is not None:
        return mem.store.list(f, limit=limit, offset=offset, order=order)
    return _list_all(mem, f, order=order, offset=offset)


def count_tip_records(mem: Memory, scope: ScopeDict, *, status: str | None = "active",
                      tip_type: str | None = None) -> int:
    return mem.store.count(_tip_filters(scope, status, tip_type))


def _save_tip(mem: Memory, rec: MemoryRecord, tip: Tip, *, text_changed: bool = False) -> MemoryRecord:
    meta = _tip_meta(tip, rec.metadata.get("tip_aliases"))
    if text_changed:
        return mem.update(rec.id, text=tip.text, metadata=meta)
    return mem.update(rec.id, metadata=meta)


def store_tips(mem: Memory, tips: list[Tip], scope: ScopeDict, report: LearnReport) -> None:
    """Insert new tips; merge ones whose key (or an alias from an earlier merge) already exists."""
    existing = load_tip_records(mem, scope, status=None)
    by_key: dict[str, MemoryRecord] = {}
    for r in existing:
        by_key[str(r.metadata.get("tip_key") or "")] = r
        for alias in r.metadata.get("tip_aliases") or []:
            by_key.setdefault(alias, r)
    new_records = []
    for tip in tips:
        rec = by_key.get(tip.key)
        if rec is None:
            tip.id = None
            new = MemoryRecord(
                **scope,
                kind=PROCEDURE,
                text=tip.text,
                metadata=_tip_meta(tip),
                occurred_at=now(),
                recorded_at=now(),
                valid_from=now(),
                source_ids=(tip.source_steps + [t for t in tip.source_trajectories if t not in tip.source_steps])[
                    : 2 * MAX_SOURCES
                ],
            )
            tip.id = new.id
            new_records.append(new)
            report.added.append(new.id)
            continue
        old = tip_from_record(rec)
        # re-mining recomputes support and provenance from all trajectories; utility and status are kept
        merged = tip.model_copy(
            update={
                "id": rec.id,
                "served": old.served,
                "successes_after": old.successes_after,
                "failures_after": old.failures_after,
                "partials_after": old.partials_after,
                "status": old.status,
                "support": max(tip.support, old.support) if rec.metadata.get("tip_aliases") else tip.support,
                "key": old.key,
                "origin": old.origin if old.origin == tip.origin else tip.origin,
            }
        )
        if merged.model_dump(exclude={"text"}) != old.model_dump(exclude={"text"}) or merged.text != old.text:
            _save_tip(mem, rec, merged, text_changed=merged.text != rec.text)
            report.updated.append(rec.id)
        tip.id = rec.id
    if new_records:
        mem.add_records(new_records)


# -- learning ------------------------------------------------------------------------------------
def learn(
    mem: Memory,
    scope: ScopeDict,
    *,
    min_support: int = 2,
    validator: Any = None,
    llm: Any = None,
    merge_threshold: float | None = 0.92,
    max_llm_trajectories: int = 50,
) -> LearnReport:
    trajs = load_trajectories(mem, scope)
    report = LearnReport(trajectories=len(trajs))
    if not trajs:
        return report
    result = mine(trajs, min_support=min_support, validator=validator)
    tips = result.tips
    report.rejected = [{"key": t.key, "reason": why} for t, why in result.rejected]
    if llm is not None:
        from .validate import RuleValidator

        gate = validator or RuleValidator(min_support=min_support)
        by_id = {t.id: t for t in trajs}
        for tip in learn_with_llm(llm, trajs[-max_llm_trajectories:]):
            ok, why = gate.admit(tip, trajectories=[by_id[i] for i in tip.source_trajectories if i in by_id])
            if ok:
                tips.append(tip)
            else:
                report.rejected.append({"key": tip.key, "reason": why})
    with mem.store.transaction():
        store_tips(mem, tips, scope, report)
        if merge_threshold is not None:
            report.merged = consolidate(mem, scope, threshold=merge_threshold)
    report.tips = [tip_from_record(r) for r in load_tip_records(mem, scope)]
    return report


def _render_steps(traj: Trajectory) -> str:
    lines = []
    for i, s in enumerate(traj.steps):
        line = f"[{i}] "
        if s.thought:
            line += f"thought: {s.thought[:300]} | "
        line += s.call_text()
        line += f" -> ERROR: {s.error[:300]}" if s.error else (f" -> {s.observation[:300]}" if s.observation else "")
        lines.append(line)
    return "\n".join(lines)


def llm_prompt(traj: Trajectory, *, max_tips: int = 5) -> str:
    template = (PROMPTS / "extract_tips.md").read_text(encoding="utf-8")
    m = traj.metrics.model_dump(exclude_none=True)
    return template.format(
        max_tips=max_tips,
        task=traj.task,
        outcome=traj.outcome,
        n_steps=traj.n_steps,
        metrics=f" ({', '.join(f'{k}={v}' for k, v in m.items())})" if m else "",
        steps=_render_steps(traj),
    )


def _call_llm(llm: Any, prompt: str) -> TipDraftList:
    """The LLM client (complete_json) or any callable prompt -> JSON text."""
    if hasattr(llm, "complete_json"):
        out = llm.complete_json(prompt, schema=TipDraftList, op="procedural")
        return out if isinstance(out, TipDraftList) else TipDraftList.model_validate(out)
    if callable(llm):
        raw = llm(prompt)
        try:
            return TipDraftList.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
        except (json.JSONDecodeError, PydanticValidationError) as exc:
            raise ValidationError(f"LLM answer is not the expected tips JSON: {str(exc)[:200]}") from exc
    raise ConfigError("llm must be an engramdb.llm.LLMClient or a callable(prompt) -> JSON text")


def learn_with_llm(llm: Any, trajs: list[Trajectory]) -> list[Tip]:
    """One prompt per trajectory (prompts/extract_tips.md); drafts keep provenance through step_refs."""
    tips: dict[str, Tip] = {}
    for traj in trajs:
        drafts = _call_llm(llm, llm_prompt(traj))
        for d in drafts.tips:
            if not d.text.strip():
                continue
            sig = error_signature(d.error_signature) if d.error_signature else None
            ident = {
                "t": d.type,
                "tool": d.tool,
                "sig": sig,
                "fix": d.fix_args,
                "before": d.call_before,
                "avoid": d.avoid_args,
                "plan": d.plan,
                "skip": d.skip,
            }
            if not any([d.tool, sig, d.fix_args, d.call_before, d.avoid_args, d.plan, d.skip]):
                ident["words"] = sorted(task_words(d.text))  # free text: same words, same tip
            key = "llm|" + hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
            steps = [traj.step_ids[i] for i in d.step_refs if 0 <= i < len(traj.step_ids)]
            tip = tips.get(key)
            if tip is None:
                tips[key] = Tip(
                    type=d.type,
                    text=d.text.strip()[:1000],
                    key=key,
                    tool=d.tool,
                    error_signature=sig,
                    fix_args=d.fix_args,
                    call_before=d.call_before,
                    avoid_args=d.avoid_args,
                    plan=d.plan,
                    skip=d.skip,
                    task_keywords=d.task_keywords[:5],
                    task_examples=[traj.task],
                    source_trajectories=[traj.id] if traj.id else [],
                    source_steps=steps,
                    origin="llm",
                    evidence="drawn by the LLM from the cited steps",
                )
            else:
                tip.support += 1
                if traj.id and traj.id not in tip.source_trajectories:
                    tip.source_trajectories = (tip.source_trajectories + [traj.id])[:MAX_SOURCES]
                tip.source_steps = (tip.source_steps + [s for s in steps if s not in tip.source_steps])[:MAX_SOURCES]
    return list(tips.values())


# -- consolidation ---------------------------------------------------------------------------------
def _vectors(mem: Memory, ids: list[str]) -> dict[str, np.ndarray]:
    keys = mem.store.keys_for(ids)
    got_keys, mat = mem.store.vectors_for(list(keys.values()))
    by_key = {int(k): mat[i] for i, k in enumerate(got_keys)}
    return {i: by_key[k] for i, k in keys.items() if k in by_key}


def consolidate(mem: Memory, scope: ScopeDict, *, threshold: float = 0.92) -> list[str]:
    """Merge active tips that say the same thing (same type and tool, near-identical text): the one with
    more support absorbs the other's support, provenance and utility; the other is soft-deleted with a
    'merged_into' link. Returns the ids merged away."""
    recs = load_tip_records(mem, scope)
    if len(recs) < 2:
        return []
    vecs = _vectors(mem, [r.id for r in recs])
    tips = {r.id: tip_from_record(r) for r in recs}
    recs.sort(key=lambda r: (-tips[r.id].support, r.id))
    gone: list[str] = []
    for i, keep in enumerate(recs):
        if keep.id in gone or keep.id not in vecs:
            continue
        for other in recs[i + 1 :]:
            a, b = tips[keep.id], tips[other.id]
            if other.id in gone or other.id not in vecs or a.type != b.type or a.tool != b.tool:
                continue
            if a.origin == b.origin == "rules" and a.type in ("strategy", "optimization"):
                continue  # their keys already say exactly what they are: different plans are different tips
            if float(vecs[keep.id] @ vecs[other.id]) < threshold:
                continue
            a.support += b.support
            a.served += b.served
            a.successes_after += b.successes_after
            a.failures_after += b.failures_after
            a.partials_after += b.partials_after
            a.source_trajectories = (
                a.source_trajectories + [x for x in b.source_trajectories if x not in a.source_trajectories]
            )[:MAX_SOURCES]
            a.source_steps = (a.source_steps + [x for x in b.source_steps if x not in a.source_steps])[:MAX_SOURCES]
            aliases = (
                list(keep.metadata.get("tip_aliases") or []) + [b.key] + list(other.metadata.get("tip_aliases") or [])
            )
            keep.metadata["tip_aliases"] = aliases
            _save_tip(mem, keep, a)
            keep = mem.store.get([keep.id])[0]
            mem.store.add_links(
                [
                    Link(
                        src_id=other.id,
                        dst_id=keep.id,
                        type="merged_into",
                        reason=f"cosine >= {threshold}",
                        created_at=now(),
                    )
                ]
            )
            mem.store.soft_delete([other.id], at=now(), action="merge")
            gone.append(other.id)
    return gone


# -- retrieval -------------------------------------------------------------------------------------
def serve(
    mem: Memory,
    task: str,
    scope: ScopeDict,
    *,
    tools: list[str] | None = None,
    errors: list[str] | None = None,
    limit: int = 5,
    types: list[str] | None = None,
    track: bool = True,
    keep: Callable[[list[MemoryRecord]], list[MemoryRecord]] | None = None,
) -> Guidance:
    """`keep`: narrows the candidate tips before they are ranked (an audience's disclosure policies), so a
    withheld tip never takes the place of one that may be served."""
    recs = load_tip_records(mem, scope)
    if keep is not None:
        recs = keep(recs)
    if types:
        recs = [r for r in recs if r.metadata.get("tip_type") in types]
    guidance = Guidance(task=task)
    if not recs:
        guidance.text = ""
        return guidance
    q = mem.embedder.embed_one(task)
    vecs = _vectors(mem, [r.id for r in recs])
    have = set(tools or [])
    sigs = {error_signature(e) for e in errors or [] if e}
    words = task_words(task)
    scored = []
    for r in recs:
        tip = tip_from_record(r)
        sig: dict[str, float] = {"task": float(vecs[r.id] @ q) if r.id in vecs else 0.0}
        tip_tools = tip.tools()
        if have and tip_tools:
            sig["tools"] = sum(t in have for t in tip_tools) / len(tip_tools)
        if sigs:
            sig["error"] = 1.0 if tip.error_signature and tip.error_signature in sigs else 0.0
        if tip.task_keywords:
            sig["keywords"] = 1.0 if any(k in words for k in tip.task_keywords) else 0.0  # any one is enough
        sig["prior"] = 0.5 * min(1.0, math.log1p(tip.support) / math.log(20)) + 0.5 * tip.utility
        score = (
            W_TASK * sig["task"]
            + W_TOOLS * sig.get("tools", 0.0)
            + W_ERROR * sig.get("error", 0.0)
            + W_KEYWORDS * sig.get("keywords", 0.0)
            + W_PRIOR * sig["prior"]
        )
        if tip.task_keywords and sig["keywords"] == 0:
            score -= 0.3  # a conditional tip whose condition words are all absent does not apply here
        if have and tip_tools and sig["tools"] == 0:
            score -= 0.3  # about tools this agent does not have
        scored.append(ServedTip(tip=tip, score=round(score, 6), signals={k: round(v, 4) for k, v in sig.items()}))
    scored.sort(key=lambda s: (-s.score, s.tip.id or ""))
    # diversity: the best relevant tip of each type goes in first, so a crowd of similar strategy tips
    # cannot push out the one warning or shortcut that matters; the rest are filled by score
    picked = [
        best for typ in TIP_TYPES if (best := next((x for x in scored if x.tip.type == typ), None)) and best.score > 0
    ][:limit]
    ids = {x.tip.id for x in picked}
    picked += [x for x in scored if x.tip.id not in ids][: limit - len(picked)]
    picked.sort(key=lambda s: (-s.score, s.tip.id or ""))
    guidance.tips = picked
    guidance.text = render_guidance(guidance)
    if track and guidance.tips:
        with mem.store.transaction():
            for s in guidance.tips:
                rec = mem.store.get([s.tip.id or ""])[0]
                tip = tip_from_record(rec)
                tip.served += 1
                s.tip.served = tip.served
                mem.store.update(rec.model_copy(update={"metadata": _tip_meta(tip, rec.metadata.get("tip_aliases"))}))
    return guidance


def render_guidance(g: Guidance) -> str:
    if not g.tips:
        return ""
    lines = ["Lessons from earlier runs of similar tasks (procedural memory):"]
    for i, s in enumerate(g.tips, 1):
        t = s.tip
        known = t.successes_after + t.failures_after
        use = f", worked {t.successes_after}/{known} times when served" if known else ""
        runs = "1 run" if t.support == 1 else f"{t.support} runs"
        lines.append(f"{i}. [{t.type}] {t.text} (seen in {runs}{use}; tip {t.id})")
    return "\n".join(lines)


# -- the feedback loop -----------------------------------------------------------------------------
def report_outcome(mem: Memory, tip_ids: list[str], outcome: object, *, validator: Any = None) -> list[Tip]:
    """Record what happened after these tips were served; retire the ones the validator gives up on."""
    from .validate import RuleValidator

    try:
        result = normalize_outcome(outcome)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    if isinstance(tip_ids, str) or not isinstance(tip_ids, list) or not all(isinstance(i, str) for i in tip_ids):
        raise ValidationError("tip_ids must be a list of tip ids")
    validator = validator or RuleValidator()
    recs = mem.store.get(list(dict.fromkeys(tip_ids)))
    found = {r.id for r in recs if r.metadata.get("procedural") == "tip"}
    missing = [i for i in tip_ids if i not in found]
    if missing:
        raise NotFoundError(f"no tip with id {missing[0]!r}")
    out = []
    with mem.store.transaction():
        for rec in recs:
            tip = tip_from_record(rec)
            if result == "success":
                tip.successes_after += 1
            elif result == "failure":
                tip.failures_after += 1
            else:
                tip.partials_after += 1
            update: dict[str, Any] = {}
            if tip.status == "active":
                retire, why = validator.retire(tip)
                if retire:
                    tip.status = "retired"
                    update["valid_to"] = now()
            meta = _tip_meta(tip, rec.metadata.get("tip_aliases"))
            if tip.status == "retired" and "valid_to" in update:
                meta["retired_reason"] = why
            mem.store.update(
                rec.model_copy(update={"metadata": meta, **update}),
                action="update" if "valid_to" not in update else "forget",
            )
            out.append(tip)
    return out


def provenance(mem: Memory, tip_id: str) -> dict[str, Any]:
    """The chain behind a tip: the tip, the exact steps it came from, and their trajectories."""
    recs = mem.store.get([tip_id], include_deleted=True)
    if not recs or recs[0].metadata.get("procedural") != "tip":
        raise NotFoundError(f"no tip with id {tip_id!r}")
    tip = tip_from_record(recs[0])
    steps = mem.store.get(tip.source_steps, include_deleted=True)
    traj_ids = list(dict.fromkeys(
        [str(s.metadata.get("trajectory_id") or "") for s in steps] + tip.source_trajectories
    ))
    trajs = {r.id: r for r in mem.store.get([t for t in traj_ids if t], include_deleted=True)}
    chain = []
    for tid in traj_ids:
        h = trajs.get(tid)
        if h is None:
            continue
        chain.append(
            {
                "trajectory_id": tid,
                "task": h.metadata.get("task"),
                "outcome": h.metadata.get("outcome"),
                "steps": [
                    {"id": s.id, "index": s.metadata.get("index"), "text": s.text}
                    for s in sorted(steps, key=lambda s: s.metadata.get("index", 0))
                    if s.metadata.get("trajectory_id") == tid
                ],
            }
        )
    return {"tip": tip, "trajectories": chain}
