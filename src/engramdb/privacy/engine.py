"""The privacy engine behind `Memory.privacy`: what the API calls on write (secrets, labels, space grants) and
before anything leaves for an audience (visibility, policy, redaction, audit)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..model import MemoryRecord, SearchResult
from ..timeutil import now, parse_time
from . import audit as A
from . import labels as L
from . import policy as P
from . import secrets as S
from . import spaces as SP
from .config import PrivacyConfig, privacy_config

POLICY_KEY = "privacy.policy"  # the tenant's policy; the user's: privacy.policy.user:<user_id>
SEALED_KEY = "sealed_secrets"
FOUND_KEY = "secrets_found"  # kinds masked or sealed on write (never the values)
REDACTED = "[redacted: {cats}]"
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")


class PrivacyEngine:
    def __init__(self, mem: Any) -> None:
        self.mem = mem
        self.config: PrivacyConfig = privacy_config(getattr(mem.config, "privacy", None))
        self.audit = A.AuditLog(mem.store, self.config.audit_retention_days,
                                on_read_only=self.config.audit_read_only)
        self._key: bytes | None = None

    @property
    def store(self) -> Any:
        return self.mem.store

    # -- write path -------------------------------------------------------------------------------------------
    def prepare(self, records: list[MemoryRecord], *, relabel: bool = False,
                previous: MemoryRecord | None = None) -> list[MemoryRecord]:
        """Secrets masked / sealed / refused, visibility checked, the caller's labels checked (`label` adds the
        classifier's). Changes the records in place and returns them. `relabel`: drop labels already in the
        metadata (an update whose text changed); `previous`: the version an update replaces."""
        cfg = self.config
        grants: dict[str, dict[str, str]] | None = None
        for rec in records:
            SP.check_visibility(rec.metadata)
            if SP.SPACE_KEY in rec.metadata:
                grants = SP.load_grants(self.store) if grants is None else grants
                SP.check_write(rec, grants)
        if cfg.secrets != "off":
            key = self._secret_key() if cfg.secrets == "encrypt" else None
            for rec in records:
                text, found, sealed = S.protect(rec.text, cfg.secrets, key)
                if previous is not None and SEALED_KEY in previous.metadata and SEALED_KEY not in rec.metadata:
                    rec.metadata[SEALED_KEY] = previous.metadata[SEALED_KEY]  # a metadata-only update keeps them
                if not found:
                    continue
                rec.text = text
                rec.metadata[FOUND_KEY] = sorted({f.kind for f in found} | set(rec.metadata.get(FOUND_KEY, [])))
                if sealed:
                    box = rec.metadata.get(SEALED_KEY) or {"key_id": S.key_id(key or b""), "items": []}
                    box["items"] = [*box["items"], *sealed]
                    rec.metadata[SEALED_KEY] = box
        for rec in records:
            if L.META_KEY in rec.metadata and not relabel:
                rec.metadata[L.META_KEY] = L.check_labels(rec.metadata[L.META_KEY])  # the caller's own
            else:
                rec.metadata.pop(L.META_KEY, None)
        return records

    def label(self, records: list[MemoryRecord], vectors: np.ndarray | None = None) -> list[MemoryRecord]:
        """Sensitivity labels for the records `prepare` left unlabelled, plus what their sources carry.
        `vectors`: the records' embeddings when the write path has them (no second embedding pass)."""
        if self.config.labels == "off":
            return records
        todo = [i for i, r in enumerate(records) if L.META_KEY not in r.metadata]
        if todo:
            vecs = None if vectors is None else np.asarray(vectors)[todo]
            got = self.classify([records[i].text for i in todo], vecs)
            for i, labels in zip(todo, got, strict=True):
                rec = records[i]
                implied = {S_CATEGORY.get(k, "credentials") for k in rec.metadata.get(FOUND_KEY, [])}
                self._set_labels(rec, set(labels) | implied)
        self.inherit(records)
        return records

    def check_import(self, rec: MemoryRecord) -> None:
        """An imported line is written as given (text, index text, history): one holding a secret is refused
        (unless secrets are off). An export of this engine holds none: they were masked or sealed on write."""
        if self.config.secrets != "off" and (found := S.scan(rec.text)):
            kinds = ", ".join(sorted({f.kind for f in found}))
            raise S.SecretError(f"the text holds a secret ({kinds}); add it through add() to have it "
                                f"{'sealed' if self.config.secrets == 'encrypt' else 'masked'}")

    def classify(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[list[str]]:
        """Labels for texts: the LLM when configured (labels=llm, or auto with an LLM), else offline."""
        llm = self.mem.llm if self.config.labels in ("auto", "llm") else None
        if llm is not None:
            from ..llm.client import LLMError

            try:
                return [sorted(set(a) | L.pattern_labels(t))
                        for a, t in zip(L.classify_llm(llm, texts), texts, strict=True)]
            except LLMError:
                pass  # an LLM failure never loses a write: the offline classifier answers
        if self.config.labels == "patterns":
            return [sorted(L.pattern_labels(t)) for t in texts]
        return L.classify(self.mem.embedder, texts, vectors)

    def inherit(self, records: Sequence[MemoryRecord]) -> None:
        """Derived memories carry the labels of the memories they were made from."""
        wanted = {s for r in records for s in r.source_ids}
        if not wanted:
            return
        src = {r.id: r for r in self.store.get(sorted(wanted), include_deleted=True)}
        for rec in records:
            extra: set[str] = set()
            for s in rec.source_ids:
                if s in src:
                    extra |= L.labels_of(src[s].metadata)
            if extra:
                self._set_labels(rec, L.labels_of(rec.metadata) | extra)

    @staticmethod
    def _set_labels(rec: MemoryRecord, labels: set[str]) -> None:
        if labels:
            rec.metadata[L.META_KEY] = sorted(labels)
        else:
            rec.metadata.pop(L.META_KEY, None)

    def _secret_key(self) -> bytes:
        if self._key is None:
            self._key = S.load_key(self.config.key_env, self.config.key_file)
        return self._key

    def reveal(self, record: MemoryRecord) -> str:
        """The record's text with its sealed secrets decrypted (for their owner; needs the key)."""
        return S.reveal(record.text, {"secrets": record.metadata.get(SEALED_KEY) or {}}, self._secret_key())

    # -- policies ---------------------------------------------------------------------------------------------
    def set_policy(self, policy: object, *, user_id: str | None = None) -> P.Policy:
        """Replace the tenant's policy (no user_id) or a user's. `policy`: a Policy, a list of rules or
        {"rules": [...]}. An empty list clears it."""
        pol = P.Policy.parse(policy)
        key = self._policy_key(user_id)
        with self.store.transaction():
            self.store.set_meta(key, pol.model_dump_json())
        return pol

    def delete_policy(self, *, user_id: str | None = None) -> bool:
        """Remove the tenant's policy (no user_id) or a user's: the defaults (or the tenant's) apply again.
        True when there was one."""
        had = bool(self.get_policy(user_id=user_id).rules)
        if had:
            self.set_policy([], user_id=user_id)
        return had

    def get_policy(self, *, user_id: str | None = None) -> P.Policy:
        raw = self.store.get_meta(self._policy_key(user_id))
        return P.Policy.parse(raw) if raw else P.Policy()

    @staticmethod
    def _policy_key(user_id: str | None) -> str:
        if user_id is None:
            return POLICY_KEY
        return f"{POLICY_KEY}.user:{SP.check_name(user_id, 'user_id')}"

    # -- grants -----------------------------------------------------------------------------------------------
    def grant(self, space: str, agent_id: str, access: str = "read") -> dict[str, dict[str, str]]:
        return SP.set_grant(self.store, space, agent_id, access)

    def revoke(self, space: str, agent_id: str) -> dict[str, dict[str, str]]:
        return SP.set_grant(self.store, space, agent_id, None)

    def grants(self) -> dict[str, dict[str, str]]:
        return SP.load_grants(self.store)

    # -- read path --------------------------------------------------------------------------------------------
    def disclose(self, results: list[SearchResult], audience: object, *, op: str | None = "search",
                 ) -> list[SearchResult]:
        """What an audience may receive of `results`, in order: memories it may not see dropped, sensitive ones
        denied or redacted by policy. With `op`, each one that goes out is written to the audit log."""
        aud = P.Audience.parse(audience)
        if op is not None and self.config.audit:
            self.audit.check()
        if not results:
            return []
        grants = SP.load_grants(self.store)
        tenant = self.get_policy()
        users: dict[str | None, P.Policy | None] = {}
        labels = self.effective_labels([r.memory for r in results])
        sources = {r.id: r for r in self.store.get(sorted({s for x in results for s in x.memory.source_ids}),
                                                    include_deleted=True)}
        out: list[SearchResult] = []
        for res in results:
            rec = res.memory
            if not self._visible(rec, aud.agent_id, grants, sources):
                continue
            cats = labels.get(rec.id, set())
            if rec.user_id not in users:
                users[rec.user_id] = self.get_policy(user_id=rec.user_id) if rec.user_id else None
            actions = P.decide_all(cats, aud, tenant, users[rec.user_id])
            action = P.strictest(actions)
            if action == "deny":
                continue
            if action == "redact":
                hidden = {c for c, a in actions.items() if a == "redact"}
                red = rec.model_copy(update={"text": self.redact(rec.text, hidden),
                                             "metadata": {**rec.metadata, "redacted": sorted(hidden)}})
                res = res.model_copy(update={"memory": red})
            out.append(res)
        if op is not None:
            self.record(out, aud, op, labels)
        return out

    def disclose_records(self, records: Sequence[MemoryRecord], audience: object, *, op: str | None = "list",
                         whole: bool = False) -> list[MemoryRecord]:
        """`disclose` for records read without a score (listings, tips, trajectories): what the audience may
        receive, in order, audited as `op`. `whole`: a record a policy would redact is withheld instead (tips
        and trajectories keep their content in metadata, which a redacted text would not hide)."""
        if op is not None and self.config.audit:
            self.audit.check()
        got = self.disclose([SearchResult(memory=r, score=0.0) for r in records], audience, op=None)
        out = [x for x in got if not (whole and "redacted" in x.memory.metadata)]
        if op is not None:
            self.record(out, P.Audience.parse(audience), op)
        return [x.memory for x in out]

    def tip_filter(self, audience: object) -> Any:
        """For `Memory.tips`: narrows candidate tip records to those the audience may receive in full (not
        audited here: only the tips served are, by `audit_ids`)."""
        P.Audience.parse(audience)  # a bad audience fails before anything is read
        return lambda recs: self.disclose_records(recs, audience, op=None, whole=True)

    def audit_ids(self, ids: Sequence[str], audience: object, op: str) -> set[str]:
        """The memories among `ids` the audience may receive in full, written to the audit log as `op`."""
        P.Audience.parse(audience)
        if not ids:
            return set()
        recs = self.store.get(list(ids))
        return {r.id for r in self.disclose_records(recs, audience, op=op, whole=True)}

    def disclose_trajectories(self, trajectories: Sequence[Any], audience: object) -> list[Any]:
        """The trajectories whose header and every step the audience may receive in full, in order; the
        records of each one that goes out are audited (op "trajectories")."""
        aud = P.Audience.parse(audience)
        parts = {t.id: [t.id, *t.step_ids] for t in trajectories if t.id}
        recs = self.store.get(sorted({i for ids in parts.values() for i in ids}))
        ok = {r.id for r in self.disclose_records(recs, aud, op=None, whole=True)}
        out = [t for t in trajectories if t.id in parts and all(i in ok for i in parts[t.id])]
        sent = {i for t in out for i in parts[t.id]}
        self.record([SearchResult(memory=r, score=0.0) for r in recs if r.id in sent], aud, "trajectories")
        return out

    @staticmethod
    def _visible(rec: MemoryRecord, agent_id: str | None, grants: dict[str, dict[str, str]],
                 sources: dict[str, MemoryRecord]) -> bool:
        """Whether the audience may see it: its own visibility, or (a derived memory with none of its own)
        that of every memory it was made from: a fact from a turn in a space is in that space."""
        if SP.can_read(rec, agent_id, grants):
            return True
        if not rec.source_ids or SP.SPACE_KEY in rec.metadata or SP.SHARED_KEY in rec.metadata:
            return False
        got = [sources.get(s) for s in rec.source_ids]
        return all(g is not None and SP.can_read(g, agent_id, grants) for g in got)

    def record(self, results: Sequence[SearchResult], audience: P.Audience, op: str,
               labels: dict[str, set[str]] | None = None) -> None:
        if not self.config.audit or not results:
            return
        at = now()
        labels = labels if labels is not None else self.effective_labels([r.memory for r in results])
        self.audit.record([
            A.row(at, r.memory.user_id, r.memory.id, audience.agent_id, audience.purpose,
                  sorted(labels.get(r.memory.id, set())), "redact" if "redacted" in r.memory.metadata else "allow",
                  op)
            for r in results
        ])

    def effective_labels(self, records: Sequence[MemoryRecord]) -> dict[str, set[str]]:
        """Each record's labels with those of its sources (and theirs: two levels, fact <- summary <- turn)."""
        out = {r.id: L.labels_of(r.metadata) for r in records}
        frontier = {r.id: set(r.source_ids) for r in records if r.source_ids}
        for _ in range(2):
            wanted = sorted({s for ss in frontier.values() for s in ss})
            if not wanted:
                break
            src = {r.id: r for r in self.store.get(wanted, include_deleted=True)}
            nxt: dict[str, set[str]] = {}
            for rid, ss in frontier.items():
                for s in ss:
                    if s in src:
                        out[rid] |= L.labels_of(src[s].metadata)
                        nxt.setdefault(rid, set()).update(src[s].source_ids)
            frontier = nxt
        return out

    def redact(self, text: str, categories: set[str]) -> str:
        """The text with each sentence that shows one of `categories` masked; all of it when none can be told."""
        parts = [p for p in _SENTENCE_RE.split(text) if p]
        if len(parts) > 1:
            got = L.classify(self.mem.embedder, parts)
            hits = [bool(set(g) & categories) for g in got]
            if any(hits) and not all(hits):
                tag = REDACTED.format(cats=", ".join(sorted(categories)))
                return " ".join(tag if h else p for p, h in zip(parts, hits, strict=True))
        return REDACTED.format(cats=", ".join(sorted(categories)))

    def context(self, query: str, audience: object, *, user_id: str | None, agent_id: str | None,
                session_id: str | None, max_tokens: int, limit: int, filters: dict[str, Any] | None,
                since: datetime | str | None, until: datetime | str | None, as_of: datetime | str | None,
                threshold: float | None = None, hits: list[SearchResult] | None = None) -> Any:
        """`Memory.context` for an audience: the same block, packed from what the audience may receive only,
        and the memories that went out written to the audit log."""
        from ..retrieve.context import assemble, mark_said_before
        from ..retrieve.tokens import get_counter

        aud = P.Audience.parse(audience)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 16:
            raise ValidationError("max_tokens must be an integer of at least 16")
        if self.config.audit:
            self.audit.check()
        r = self.mem.retrieval
        results = r.search(query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
                           filters=filters, kinds=None, since=since, until=until, mode="default", as_of=as_of,
                           order="relevance", answer_now=True)
        if threshold is not None:
            results = [x for x in results if x.score >= threshold]
        results = self.disclose(results, aud, op=None)
        if hits is not None:
            hits.extend(results)
        lead = [x for x in results if x.signals.get("current_fact")]
        before = r.replaced_values([x.memory.id for x in lead])
        results = mark_said_before(results, lead, before)
        when = parse_time(as_of, field="as_of")
        header = f"Facts as of {when:%Y-%m-%d}:" if when is not None else "Current facts:"
        block = assemble(results, get_counter(self.mem.config.tokenizer), max_tokens, facts=lead, before=before,
                         facts_header=header)
        sent = set(block.memory_ids) | set(block.fact_ids)
        self.record([x for x in results if x.memory.id in sent], aud, "context")
        return block

    # -- the audit log, read ----------------------------------------------------------------------------------
    def disclosures(self, *, user_id: str | None = None, category: str | None = None, audience: object = None,
                    since: datetime | str | None = None, memory_id: str | None = None,
                    until: datetime | str | None = None, before_seq: int | None = None,
                    limit: int = 100) -> list[A.Disclosure]:
        """Who received which memories, newest first: "who has seen my health data?" is
        disclosures(user_id="alice", category="health"). `since <= at < until`; pages: pass the last entry's
        `seq` as `before_seq` for the next one."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise ValidationError("limit must be an integer between 1 and 10000")
        if before_seq is not None and (not isinstance(before_seq, int) or isinstance(before_seq, bool)
                                       or before_seq < 1):
            raise ValidationError("before_seq must be a positive integer (an entry's seq)")
        aud = P.Audience.parse(audience) if audience is not None else None
        return self.audit.query(user_id=user_id, category=category, agent_id=aud.agent_id if aud else None,
                                purpose=aud.purpose if aud else None, memory_id=memory_id,
                                since=parse_time(since, field="since"), until=parse_time(until, field="until"),
                                before_seq=before_seq, limit=limit)

    def audit_status(self) -> dict[str, Any]:
        """Whether disclosures are being audited here: `enabled` (the audit setting), `read_only` (the store
        cannot take entries), `on_read_only` (skip or refuse) and `skipped` (entries this process could not
        record because the store is read-only: reads it served unaudited)."""
        return {"enabled": self.config.audit, "read_only": self.audit.read_only,
                "on_read_only": self.audit.on_read_only, "skipped": self.audit.skipped}

    def who_has_seen(self, user_id: str, category: str | None = None) -> list[dict[str, Any]]:
        """Per audience: how many disclosures of this user's memories (of `category`), and the latest."""
        seen: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        for d in self.disclosures(user_id=user_id, category=category, limit=10_000):
            k = (d.agent_id, d.purpose)
            e = seen.setdefault(k, {"agent_id": d.agent_id, "purpose": d.purpose, "count": 0, "last": d.at,
                                    "memory_ids": set()})
            e["count"] += 1
            e["memory_ids"].add(d.memory_id)
        return [{**e, "memory_ids": sorted(e["memory_ids"])} for e in seen.values()]

    def forget_audit(self, *, user_id: str | None = None, agent_id: str | None = None,
                     before: datetime | str | None = None) -> int:
        """Erase audit rows: a user's, an agent's, or every row older than `before`."""
        if before is not None:
            when = parse_time(before, field="before")
            return self.audit.prune(when)
        return self.audit.erase(user_id=user_id, agent_id=agent_id)


# the sensitivity category each kind of secret implies
S_CATEGORY: dict[str, str] = {"card_number": "finance", "iban": "finance", "national_id": "identity",
                              "id_number": "identity"}


def dumps_policy(pol: P.Policy) -> str:
    return json.dumps(pol.model_dump(), indent=2)
