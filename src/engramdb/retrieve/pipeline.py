"""The read path of a `Memory`, end to end: checked query → candidates, fusion and the learned ranker
(retrieve/search.py) → the re-rank (retrieve/rerank.py) → the current-truth order (retrieve/currency.py,
retrieve/slots.py) → the context block (retrieve/context.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ConfigError, ValidationError
from ..ingest.normalize import check_text
from ..lifecycle.forget import DecayPolicy
from ..model import FACT, MemoryRecord, SearchResult
from ..resources import Resources, is_int, make_filters, settings
from ..store.base import Filters
from ..timeutil import now, parse_time
from . import rerank
from .calibrate import calibrate, calibration_key
from .context import ContextBlock, assemble, mark_said_before
from .currency import SlotValues, annotate, present_first, statuses, time_intent
from .search import Retriever
from .slots import SLOTS, attribute_focus, query_slots, slot_centroid, statement_slots
from .tokens import get_counter

SLOT_EXPAND = 8  # memories closest to a slot's statements that join the list of a question about that slot
SLOT_FACTS = 8  # at most this many of a slot attribute's valid facts (and their turns) join it too
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Retrieval:
    """Search and context over one store (`Memory.search` and `Memory.context` delegate here)."""

    def __init__(self, res: Resources) -> None:
        self.res = res

    # -- the pieces, public for benchmarks and the ranker's training ------------------------------
    def retriever(self) -> Retriever:
        """Candidate generation, fusion and the learned ranker over this store's keys."""
        emb = self.res.checked_embedder()  # a query embedded with another model than the stored vectors ranks noise
        return Retriever(self.res.store, self.res.vectors, emb, self.res.config.retrieval_config())

    @staticmethod
    def fetch_size(limit: int) -> int:
        return rerank.fetch_size(limit)

    @staticmethod
    def retrieval_query(query: str) -> str:
        return rerank.retrieval_query(query)

    def calibration_key(self, mode: str, results: list[SearchResult]) -> str:
        """Which fitted score map this list takes: the learned ranker with late interaction where it read it."""
        late = any("maxsim" in r.signals for r in results)
        return calibration_key(mode, self.res.config.retrieval_config().ranker, late)

    def current_truth(self) -> bool:
        on = self.res.config.lifecycle.get("current_truth", True)
        if not isinstance(on, bool):
            raise ConfigError("lifecycle.current_truth must be true or false")
        return on

    def time_intent(self, query: str, *, as_of: datetime | None = None, order: str = "relevance") -> str:
        """"present", "past" or "neutral" (retrieve/currency.py); "off" when current-truth ranking is off.
        With `as_of`, "as_of": the present of that date. A time order keeps history, like the past."""
        if not self.current_truth():
            return "off"
        if as_of is not None:
            return "as_of"
        if order != "relevance":
            return "past"
        return time_intent(query)

    # -- search -----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        limit: int,
        filters: dict[str, Any] | None,
        kinds: Sequence[str] | None,
        since: datetime | str | None,
        until: datetime | str | None,
        mode: str,
        as_of: datetime | str | None,
        order: str,
        answer_now: bool = False,
    ) -> list[SearchResult]:
        """`Memory.search`; `answer_now`: a question with no time cue is read as about the present (context
        blocks are read by an agent answering now; plain search keeps such questions' ranking)."""
        cfg = self.res.config
        query = check_text(query, where="query", max_chars=cfg.max_text_chars)
        if not is_int(limit) or not 1 <= limit <= 1000:
            raise ValidationError("limit must be an integer between 1 and 1000")
        when = parse_time(as_of, field="as_of")
        # the current-truth order is part of the default pipeline; the baseline modes stay plain
        intent = self.time_intent(query, as_of=when, order=order) if mode == "default" else "off"
        if answer_now and intent == "neutral":
            intent = "present"
        # superseded facts answer questions about the past (and time-ordered lists); otherwise only open ones
        validity = {"as_of": when} if when is not None else {} if intent == "past" else {"current_only": True}
        f = make_filters(user_id, agent_id, session_id, kinds, since, until, filters, **validity)
        try:
            retriever = self.retriever()
            results = retriever.search(rerank.retrieval_query(query), f, rerank.fetch_size(limit), mode=mode)
            results = self.rerank(results, limit, query=query, f=f, order=order, intent=intent,
                                  query_vector=retriever.query_vector)
            # the one place scores become probabilities of relevance; the order is kept (retrieve/calibrate.py)
            results = calibrate(results, self.calibration_key(mode, results), ordered=order == "relevance")
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if cfg.track_access and results:
            self.res.store.touch([r.memory.id for r in results], now())
        return results

    def rerank(
        self,
        results: list[SearchResult],
        limit: int,
        *,
        query: str = "",
        f: Filters | None = None,
        order: str = "relevance",
        intent: str = "off",
        query_vector: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """After the retriever: time lift and decay, sources first, the current-truth order, the derived-memory
        quota, `limit`, and the time order (retrieve/rerank.py)."""
        order = rerank.check_order(order)
        lifecycle = self.res.config.lifecycle
        boost = float(lifecycle.get("time_boost", rerank.TIME_BOOST))
        at = now()
        span = rerank.query_span(self.res.store, query, f, at) if query and f is not None and boost and results \
            else None
        policy = settings(DecayPolicy, lifecycle.get("decay", {}), "lifecycle.decay")
        if results:
            results = rerank.lift_and_decay(results, span, boost, policy, at)
        results = rerank.sources_first(results)
        if intent != "off" and results:
            f = f or Filters()
            when = f.as_of if intent == "as_of" and f.as_of is not None else now()  # "current" as of that date
            slots: dict[str, Any] = {}
            if intent == "as_of" or (intent == "present" and span is None):
                results, slots = self.slots(results, query_vector, f, when, query)
            elif intent == "neutral" and span is None:
                # no time cue ("which city does Sam live in?"): read as about the present only where the facts
                # show that state has changed; elsewhere (most of a conversation's questions) the ranking stays
                results, slots = self.slots(results, query_vector, f, when, query, changed_only=True)
            results = annotate(results, statuses(self.res.store, results, f, when))
            if slots or intent == "neutral":  # neutral: historical memories last, no slot order (LoCoMo)
                results = present_first(results, **slots)
        results = rerank.cap_derived(results, limit, rerank.derived_share(lifecycle))
        return rerank.time_order(results[:limit], order)

    def slots(self, results: list[SearchResult], query_vector: np.ndarray | None, f: Filters, at: datetime,
              query: str = "", *, changed_only: bool = False) -> tuple[list[SearchResult], dict[str, Any]]:
        """The state slots the query asks about; the results plus the scope's memories closest to each slot's
        statements (a change worded unlike the question: "Officially a UX researcher as of this month"); the
        slot each of them states; and what the slots' facts say (retrieve/slots.py, retrieve/currency.py).
        `changed_only`: nothing unless some slot's facts hold a value that has been replaced."""
        emb = self.res.embedder
        if query_vector is None or emb.name.startswith("hashing"):
            return results, {}  # slots are read by meaning: a hashing embedder has none
        attrs = [str(r.memory.metadata.get("attribute", "")) for r in results if r.memory.kind == FACT]
        slots = query_slots(emb, query_vector, attrs, query)
        if not slots:
            return results, {}
        values = {slot: self._slot_values(slot, attrs, f, at) for slot in slots}
        if changed_only and not any(v.changed for v in values.values()):
            return results, {}
        store = self.res.store
        have = {r.memory.id for r in results}
        floor = min((r.score for r in results), default=0.0)
        read_by_facts: dict[str, str] = {}
        attr_of: dict[str, str] = {}
        for slot in slots:
            # the slot's facts valid under this search's filters, and the turns they came from, join the list:
            # the extractor's reading of a turn is surer than the prototypes' ("a long-timer at Initech")
            evidence = self._slot_evidence(slot, attrs, f)
            for rec in evidence:
                if rec.kind == FACT:
                    attr_of.update((s, str(rec.metadata.get("attribute", ""))) for s in rec.source_ids)
                else:
                    read_by_facts[rec.id] = slot
                if rec.id not in have:
                    results = [*results, SearchResult(memory=rec, score=floor, signals={"slot": 1.0})]
                    have.add(rec.id)
            centroid = slot_centroid(emb, slot)
            if centroid is not None:
                hits = self.res.vectors.search(centroid, f, SLOT_EXPAND)
                id_of = store.ids_for([k for k, _ in hits])
                new = [id_of[k] for k, _ in hits if k in id_of and id_of[k] not in have]
                for rec in store.get(new):
                    results = [*results, SearchResult(memory=rec, score=floor, signals={"slot": 1.0})]
                    have.add(rec.id)
        eps = [r.memory.id for r in results if r.memory.kind != FACT and r.memory.role != "assistant"]
        keys = store.keys_for(eps)
        got, mat = store.vectors_for(list(keys.values()))
        by_key = {k: i for i, k in keys.items()}
        text_of = {r.memory.id: r.memory.text for r in results}
        stated = statement_slots(emb, mat, [text_of[by_key[int(k)]] for k in got.tolist()]) if len(got) else []
        slots_of = {by_key[int(k)]: s for k, s in zip(got.tolist(), stated, strict=True)}
        return results, {"slots": slots, "values": values, "slots_of": {**slots_of, **read_by_facts},
                         "focus": attribute_focus(query), "attr_of": attr_of}

    def _slot_attributes(self, slot: str, attrs: Sequence[str]) -> list[str]:
        if slot.startswith("attr:"):
            return [slot[5:]]
        if slot == "favorite":
            return [a for a in dict.fromkeys(attrs) if a.startswith("favorite:")]
        return list(SLOTS[slot][0])

    def _slot_evidence(self, slot: str, attrs: Sequence[str], f: Filters) -> list[MemoryRecord]:
        """The slot's facts that this search's filters let through (valid now, or as of its date), and the
        turns they came from, under the same filters."""
        if f.kinds is not None and FACT not in f.kinds:
            return []
        store = self.res.store
        facts: list[MemoryRecord] = []
        for a in self._slot_attributes(slot, attrs):
            facts += store.list(replace(f, kinds=[FACT], metadata={**f.metadata, "attribute": a}), limit=SLOT_FACTS)
        sources = sorted({s for x in facts for s in x.source_ids})
        turns = store.list(replace(f, ids=sources), limit=len(sources)) if sources else []
        return [*facts, *turns]

    def _slot_values(self, slot: str, attrs: Sequence[str], f: Filters, at: datetime) -> SlotValues:
        """What the facts of a slot's attributes say at `at`: each one's newest open value, and the others."""
        names = self._slot_attributes(slot, attrs)
        current: set[str] = set()
        seen: set[str] = set()
        enders: set[str] = set()
        stated: set[str] = set()
        for a in names:
            flt = Filters(user_id=f.user_id, agent_id=f.agent_id, kinds=[FACT], metadata={"attribute": a})
            facts = self.res.store.list(flt, limit=200)
            open_ = [x for x in facts if x.is_current(at) and (x.valid_from or x.occurred_at or at) <= at]
            newest = max(open_, key=lambda x: x.valid_from or x.occurred_at or _EPOCH, default=None)
            if newest is not None:
                current.add(str(newest.metadata.get("value")))
            seen.update(str(x.metadata.get("value")) for x in facts)
            enders.update(str(e) for x in facts for e in x.metadata.get("ended_by") or ())
            # a value known only from its ending ("Sold my Jetta") does not count as a change here
            stated.update(str(x.metadata.get("value")) for x in facts if not x.metadata.get("held_until_ended"))
        return SlotValues(frozenset(current), frozenset(seen - current), frozenset(enders), bool(stated - current))

    # -- context ----------------------------------------------------------------------------------
    def context(
        self,
        query: str,
        *,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        max_tokens: int,
        limit: int,
        filters: dict[str, Any] | None,
        since: datetime | str | None,
        until: datetime | str | None,
        as_of: datetime | str | None,
        threshold: float | None = None,
        hits: list[SearchResult] | None = None,
    ) -> ContextBlock:
        """`Memory.context`: the current facts that answer the query first, then the most relevant memories,
        oldest first, within `max_tokens`."""
        if not is_int(max_tokens) or max_tokens < 16:
            raise ValidationError("max_tokens must be an integer of at least 16")
        results = self.search(query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
                              filters=filters, kinds=None, since=since, until=until, mode="default", as_of=as_of,
                              order="relevance", answer_now=True)
        if threshold is not None:  # Memory.context's `threshold=`: scores below it are not worth the tokens
            results = [r for r in results if r.score >= threshold]
        if hits is not None:
            hits.extend(results)
        lead = [r for r in results if r.signals.get("current_fact")]  # set by the current-truth order
        before = self.replaced_values([r.memory.id for r in lead])
        results = mark_said_before(results, lead, before)
        when = parse_time(as_of, field="as_of")
        header = f"Facts as of {when:%Y-%m-%d}:" if when is not None else "Current facts:"
        return assemble(results, get_counter(self.res.config.tokenizer), max_tokens, facts=lead, before=before,
                        facts_header=header)

    def replaced_values(self, fact_ids: Sequence[str]) -> dict[str, str]:
        """Fact id -> the value it superseded (the newest, when it closed several), for "before: Boston"."""
        store = self.res.store
        out: dict[str, str] = {}
        for fid in fact_ids:
            olds = store.get([lk.dst_id for lk in store.links(fid, type="supersedes", direction="out")])
            olds = [o for o in olds if not o.metadata.get("retracted")]
            if olds:
                newest = max(olds, key=lambda o: o.valid_from or o.occurred_at or datetime.min.replace(tzinfo=UTC))
                out[fid] = str(newest.metadata.get("value") or newest.text)
        return out
