"""Bi-temporal knowledge update: facts are never overwritten, they are closed and linked.

For each new fact, keyed by (subject, attribute):
- same value as a current fact -> merged (its source_ids grow); nothing new is stored;
- single-valued attribute, other value -> the current fact's `valid_to` is set to the new
  fact's `valid_from`, and a `supersedes` link (new -> old) is written; both stay in the store;
- an older statement arriving late (valid_from before the current fact's) is stored as a
  closed, historical fact, superseded by the current one;
- `ends` facts ("I quit my job at X") close the current value without asserting a new one; where no fact
  held that value ("Sold my Jetta", the Jetta never stated), it is kept as a closed fact: held until the
  ending statement, since the scope's first mention of it (start unknown when there is none);
- multi-valued attributes (relatives, pets...) accumulate.
When an LLM judge is configured, facts whose key matches nothing are shown to it with the
subject's other current facts, so paraphrased attributes ("home_city" vs "lives_in") still
update each other. Everything for one batch is written in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel, Field

from ..extract.base import Fact, is_single_valued, norm_value
from ..ingest.keys import build_keys
from ..llm import LLMClient
from ..model import EPISODE, FACT, MemoryRecord
from ..store.base import Filters, Link, Store
from ..timeutil import now

SUPERSEDES = "supersedes"
ENDS = "invalidates"


class UpdateReport(BaseModel):
    added: list[str] = Field(default_factory=list)  # new fact ids
    merged: list[str] = Field(default_factory=list)  # existing facts that gained a source
    superseded: list[str] = Field(default_factory=list)  # facts whose validity was closed
    skipped: int = 0  # already known from the same source (idempotent re-runs)

    def extend(self, other: UpdateReport) -> None:
        self.added += other.added
        self.merged += other.merged
        self.superseded += other.superseded
        self.skipped += other.skipped


class JudgeAnswer(BaseModel):
    action: str = Field(pattern="^(add|update|duplicate|noop)$")
    targets: list[int] = Field(default_factory=list)
    reason: str = ""


def _ends_a_value(f: Fact) -> bool:
    return f.ends and f.value != "*"


def fact_meta(f: Fact, extractor: str) -> dict:
    return {
        "subject": f.subject,
        "subject_key": norm_value(f.subject),
        "attribute": f.attribute.casefold(),
        "value": f.value,
        "value_key": norm_value(f.value),
        "extractor": extractor,
        "confidence": f.confidence,
    }


class KnowledgeUpdater:
    def __init__(
        self,
        store: Store,
        embed: Callable[[list[str]], np.ndarray],
        *,
        judge: LLMClient | None = None,
    ) -> None:
        self.store = store
        self.embed = embed
        self.judge = judge

    def apply(
        self,
        facts: Sequence[Fact],
        episodes: dict[str, MemoryRecord],
        *,
        extractor: str = "rules",
        valid_times: dict[str, datetime] | None = None,
        in_transaction: Callable[[UpdateReport], None] | None = None,
    ) -> UpdateReport:
        """Write `facts` (derived from `episodes`, by id). `in_transaction` runs inside the same transaction
        (the caller advances its watermark there, so a crash leaves either both or neither)."""
        report = UpdateReport()
        facts = [f for f in facts if f.source_ids and f.source_ids[0] in episodes]
        facts.sort(key=lambda f: (_when(episodes[f.source_ids[0]], valid_times), f.source_ids[0]))
        texts = [f.sentence() for f in facts]
        # an ending may have to be kept as the value it ended ("Sam drives a Jetta", until then): its vector too
        held = {i: len(texts) + k for k, i in enumerate(i for i, f in enumerate(facts) if _ends_a_value(f))}
        texts += [facts[i].held_sentence() for i in held]
        vecs = self.embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)  # before the transaction
        judged = [self._judge(f, episodes[f.source_ids[0]]) for f in facts] if self.judge else [None] * len(facts)
        with self.store.transaction():
            for i, f in enumerate(facts):
                ep = episodes[f.source_ids[0]]
                self._apply_one(f, ep, vecs[i], extractor, _when(ep, valid_times), judged[i], report,
                                held_vec=vecs[held[i]] if i in held else None)
            if in_transaction is not None:
                in_transaction(report)
        return report

    # -- one fact ------------------------------------------------------------------
    def _same_key(self, scope: dict, f: Fact) -> list[MemoryRecord]:
        flt = Filters(
            **scope,
            kinds=[FACT],
            metadata={"subject_key": norm_value(f.subject), "attribute": f.attribute.casefold()},
            include_expired=True,
        )
        return self.store.list(flt, limit=1000, order="occurred_at")

    def _apply_one(
        self,
        f: Fact,
        ep: MemoryRecord,
        vec: np.ndarray,
        extractor: str,
        when: datetime,
        judged: tuple[str, list[MemoryRecord], str] | None,
        report: UpdateReport,
        *,
        held_vec: np.ndarray | None = None,
    ) -> None:
        scope = _fact_scope(ep)
        same = self._same_key(scope, f)
        vkey = norm_value(f.value)
        # Idempotence: this source already gave this fact.
        if any(
            set(f.source_ids) <= set(r.source_ids) and (r.metadata.get("value_key") == vkey or f.ends) for r in same
        ):
            report.skipped += 1
            return
        current = [r for r in same if r.valid_to is None]
        if f.ends:
            targets = [r for r in current if f.value == "*" or r.metadata.get("value_key") == vkey]
            for old in targets:
                if old.valid_from and old.valid_from > when:
                    continue
                meta = {**old.metadata, "ended_by": f.source_ids}
                closed = old.model_copy(update={"valid_to": when, "metadata": meta})
                self.store.update(closed, action="invalidate")
                self.store.add_links([Link(ep.id, old.id, ENDS, reason=f"{ep.text[:200]}")])
                report.superseded.append(old.id)
            if not targets and held_vec is not None and not any(r.metadata.get("value_key") == vkey for r in same):
                self._keep_ended(f, ep, held_vec, extractor, when, scope, report)
            return
        dup = next((r for r in current if r.metadata.get("value_key") == vkey), None)
        if dup is None and judged is not None and judged[0] == "duplicate" and judged[1]:
            dup = judged[1][0]
        if dup is not None:
            merged = sorted(set(dup.source_ids) | set(f.source_ids))
            meta = {**dup.metadata, "mentions": int(dup.metadata.get("mentions", 1)) + 1}
            self.store.update(dup.model_copy(update={"source_ids": merged, "metadata": meta}), action="merge")
            report.merged.append(dup.id)
            return
        if judged is not None and judged[0] == "noop":
            report.skipped += 1
            return
        rec = MemoryRecord(
            **scope,
            kind=FACT,
            text=f.sentence(),
            metadata=fact_meta(f, extractor),
            occurred_at=when,  # the fact happened when it became true (as_of reads valid time)
            recorded_at=now(),
            valid_from=when,
            source_ids=list(f.source_ids),
            importance=0.6,
        )
        self._inherit_sensitivity(rec)
        to_close: list[tuple[MemoryRecord, str]] = []
        if is_single_valued(f.attribute):
            to_close = [(r, "same subject and attribute") for r in current]
        if judged is not None and judged[0] == "update":
            to_close += [(r, f"LLM judge: {judged[2]}"[:300]) for r in judged[1] if r.valid_to is None]
        later = [r for r, _ in to_close if r.valid_from and r.valid_from > when]
        if later:
            # An older statement arriving late: store it as history, closed where the newer value starts.
            newest_start = min(r.valid_from for r in later if r.valid_from)
            rec = rec.model_copy(update={"valid_to": newest_start})
            to_close = [(r, why) for r, why in to_close if r not in later]
        idx, _ = build_keys([rec])
        self.store.insert([rec], np.asarray([vec]), idx)
        report.added.append(rec.id)
        links = []
        for old, why in to_close:
            closed = old.model_copy(update={"valid_to": when, "metadata": {**old.metadata, "superseded_by": rec.id}})
            self.store.update(closed, action="supersede")
            links.append(Link(rec.id, old.id, SUPERSEDES, reason=why))
            report.superseded.append(old.id)
        for newer in later:
            links.append(Link(newer.id, rec.id, SUPERSEDES, reason="newer statement, recorded earlier"))
        self.store.add_links(links)

    def _keep_ended(self, f: Fact, ep: MemoryRecord, vec: np.ndarray, extractor: str, when: datetime,
                    scope: dict, report: UpdateReport) -> None:
        """A value ended with no fact holding it: kept as a closed fact, valid until `when`, from the scope's
        first episode naming it before then (`first_mention`: not a source, so that turn keeps its own status),
        else from an unknown start."""
        first = self._first_mention(scope, f.value, when, exclude=set(f.source_ids))
        start = first.occurred_at if first is not None else None
        rec = MemoryRecord(
            **scope,
            kind=FACT,
            text=f.held_sentence(),
            metadata={**fact_meta(f, extractor), "ended_by": list(f.source_ids), "held_until_ended": True,
                      **({"first_mention": first.id} if first is not None else {})},
            occurred_at=start,
            recorded_at=now(),
            valid_from=start,
            valid_to=when,
            source_ids=list(f.source_ids),
            importance=0.6,
        )
        self._inherit_sensitivity(rec)
        idx, _ = build_keys([rec])
        self.store.insert([rec], np.asarray([vec]), idx)
        self.store.add_links([Link(ep.id, rec.id, ENDS, reason=f"{ep.text[:200]}")])
        report.added.append(rec.id)

    def _inherit_sensitivity(self, rec: MemoryRecord) -> None:
        """A fact reveals what the turns it came from reveal (privacy/labels.py)."""
        inherited = sorted({c for src in self.store.get(rec.source_ids) for c in src.metadata.get("sensitivity", [])})
        if inherited:
            rec.metadata["sensitivity"] = inherited

    def _first_mention(self, scope: dict, value: str, before: datetime, *, exclude: set[str]) -> MemoryRecord | None:
        """The earliest episode of the scope, before `before`, whose text names `value` as a whole word."""
        flt = Filters(**scope, kinds=[EPISODE], until=before)
        hits = self.store.keyword_search(value, flt, 50)
        word = re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.I)
        found = [r for r in self.store.get([i for i, _ in hits if i not in exclude])
                 if r.occurred_at is not None and word.search(r.text)]
        return min(found, key=lambda r: (r.occurred_at, r.id), default=None)

    # -- LLM judge -------------------------------------------------------------------
    def _judge(self, f: Fact, ep: MemoryRecord) -> tuple[str, list[MemoryRecord], str] | None:
        """Only asked when the exact key matches nothing current: paraphrased attributes."""
        from ..extract.prompts import render_prompt

        scope = _fact_scope(ep)
        if any(r.valid_to is None for r in self._same_key(scope, f)):
            return None
        flt = Filters(**scope, kinds=[FACT], metadata={"subject_key": norm_value(f.subject)}, current_only=True)
        others = self.store.list(flt, limit=20, order="-occurred_at")
        if not others:
            return None
        existing = "\n".join(f"{i}. {r.text}" for i, r in enumerate(others, 1))
        prompt = render_prompt("update_judge", new_fact=f.sentence(), existing=existing)
        ans = self.judge.complete_json(prompt, JudgeAnswer, op="update_judge")  # type: ignore[union-attr]
        targets = [others[t - 1] for t in ans.targets if 1 <= t <= len(others)]
        return ans.action, targets, ans.reason


def _when(ep: MemoryRecord, valid_times: dict[str, datetime] | None) -> datetime:
    if valid_times and ep.id in valid_times:
        return valid_times[ep.id]
    return ep.occurred_at or ep.recorded_at or now()


def _fact_scope(ep: MemoryRecord) -> dict:
    """Facts belong to the user/agent, not to the session they were said in."""
    scope = {"user_id": ep.user_id, "agent_id": ep.agent_id}
    if not ep.user_id and not ep.agent_id:
        scope["session_id"] = ep.session_id
    return scope
