"""The current truth on the read path: which hits are historical, what time a query asks about, and the
order that puts what is true now first.

- A fact is *current* while its validity is open. When a newer value supersedes it (lifecycle/update.py)
  it becomes historical, and so do the episodes that supported only it: an episode whose facts are all
  closed says something that is no longer true. Nothing is erased: historical memories still answer
  questions about the past, `as_of=` and `order="time"`.
- `time_intent` reads the query without an LLM: "present" ("where does Sam live now?", "does she still
  drive the Civic?"), "past" ("where did Sam live before?", "what was his previous job?", a named time
  range) or "neutral" (no time cue: "Sam's employer").
- `present_first` re-orders a result list. For a present question about a state slot (retrieve/slots.py)
  the slot's current facts and newest statements lead, which also covers what the extractor missed: a newer
  "I started at Globex" beats an older fact. Historical memories go last. See docs/lifecycle.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..model import FACT, SearchResult
from ..store.base import Filters, Store

Intent = Literal["present", "past", "neutral"]

# Words that point at an earlier state, whatever the verb's tense ("what was his job before Globex").
_PAST_WORDS = re.compile(
    r"\b(?:used\s+to|did\s+(?:\w+\s+){0,2}use\s+to|previous(?:ly)?|former(?:ly)?|originally|at\s+first|in\s+the\s+past|back\s+(?:then|when|in)|"
    r"before|earlier|prior|first\s+(?:job|home|car|city|place)|old\s+(?:job|home|car|city|place|address|"
    r"company|employer|apartment|flat|house)|ex-\w+|histor(?:y|ical)|over\s+the\s+years|ever)\b",
    re.I,
)
# Words that pin the present ("now", "these days", "still").
_PRESENT_WORDS = re.compile(
    r"\b(?:now|nowadays|currently|current|these\s+days|today|at\s+the\s+moment|at\s+present|presently|still|"
    r"latest|most\s+recent(?:ly)?|anymore|any\s+more|right\s+now|this\s+(?:week|month))\b",
    re.I,
)
# Past-tense auxiliaries and common past forms of state verbs.
_PAST_TENSE = re.compile(
    r"\b(?:did|didn't|was|wasn't|were|weren't|had|lived|worked|drove|owned|moved|used|went|got|started|"
    r"joined|left|quit|bought|sold|adopted|married)\b",
    re.I,
)


def time_intent(query: str, *, has_time_range: bool = False) -> Intent:
    """What time a query asks about. Explicit past words win over present words ("where did he live before
    he moved here now?" is about the past); a named time range ("in 2023") is the past."""
    if _PAST_WORDS.search(query) or has_time_range:
        return "past"
    if _PRESENT_WORDS.search(query):
        return "present"
    if _PAST_TENSE.search(query):
        return "past"
    return "neutral"


@dataclass(frozen=True)
class Status:
    current: bool
    superseded_by: str | None = None  # the memory that made it historical (a newer fact, or the turn ending it)


def fact_status(rec_metadata: dict, valid_to: datetime | None, at: datetime) -> Status:
    if valid_to is None or valid_to > at:
        return Status(True)
    by = rec_metadata.get("superseded_by") or (rec_metadata.get("ended_by") or [None])[0]
    return Status(False, by if isinstance(by, str) else None)


def statuses(store: Store, results: Sequence[SearchResult], filters: Filters, at: datetime) -> dict[str, Status]:
    """Current or historical, per result. Facts by their own validity; any other memory is historical when
    the facts derived from it are all closed by a newer value (retracted facts do not count)."""
    out: dict[str, Status] = {}
    scope: dict[str, tuple[str | None, str | None]] = {}  # hit -> the (user, agent) its facts live in
    for r in results:
        m = r.memory
        if m.kind == FACT or m.valid_to is not None:
            out[m.id] = fact_status(m.metadata, m.valid_to, at)
        else:
            out[m.id] = Status(True)
            scope[m.id] = (filters.user_id, filters.agent_id) if filters.user_id or filters.agent_id \
                else (m.user_id, m.agent_id)
    if not scope:
        return out
    # one lookup through the store's source index; a fact counts in the scope of the turn it came from
    # (lifecycle/update.py), so an unscoped search keeps each source's own scope
    facts = store.derived_from(list(scope), Filters(user_id=filters.user_id, agent_id=filters.agent_id,
                                                    kinds=[FACT], include_expired=True))
    derived: dict[str, list[Status]] = {}
    for fact in facts:
        if fact.metadata.get("retracted"):
            continue
        st: Status | None = None
        enders = fact.metadata.get("ended_by") or ()
        for s in fact.source_ids:
            if s in enders:  # the turn that ended the value ("Sold my Jetta") is not a past state itself
                continue
            want = scope.get(s)
            if want is None or not _in_scope(want, fact.user_id, fact.agent_id):
                continue
            if st is None:
                st = fact_status(fact.metadata, fact.valid_to, at)
                if not st.current and st.superseded_by is None:
                    st = Status(False, _superseder(store, fact.id))
            derived.setdefault(s, []).append(st)
    for i in scope:
        sts = derived.get(i)
        if sts and not any(s.current for s in sts):
            out[i] = Status(False, next((s.superseded_by for s in sts if s.superseded_by), None))
    return out


def _in_scope(scope: tuple[str | None, str | None], user_id: str | None, agent_id: str | None) -> bool:
    """A scope part left open (None) takes any value, as a Filters field does."""
    return scope[0] in (None, user_id) and scope[1] in (None, agent_id)


def _superseder(store: Store, fact_id: str) -> str | None:
    """For facts closed before `superseded_by` was kept in metadata: the supersedes link into it."""
    for lk in store.links(fact_id, type="supersedes", direction="in"):
        return lk.src_id
    return None


def annotate(results: list[SearchResult], status: dict[str, Status]) -> list[SearchResult]:
    out = []
    for r in results:
        st = status.get(r.memory.id, Status(True))
        out.append(r.updated(current=st.current, superseded_by=st.superseded_by))
    return out


# What a person says about a past state ("I miss Boston", "ran into my old boss"), a plan or a question does
# not state the present one: such memories never lead a present-tense answer.
_NOT_A_STATE = re.compile(
    r"\b(?:miss(?:ed|ing)?|used\s+to|(?:my|our|his|her|their|the)\s+old|old\s+(?:one|place|job|boss|car|apartment|"
    r"flat|house|home|city|company|team|band|neighbou?rhood|colleagues?|coworkers?|co-workers?|teammates?|friends?|"
    r"classmates?|neighbou?rs?|flame)|(?:my|our)\s+(?:[\w-]+\s+){1,3}(?:years|days)\b|former(?:ly)?|back\s+(?:in|when|then|home)|remember|"
    r"ex-\w+|visit(?:ed|ing)?|"
    r"trip|vacation|holiday|previous(?:ly)?|before|if|might|maybe|would|could|should|want|wanna|hope|plan(?:ning)?|"
    r"thinking|considering|someday|dream)\b|\?\s*$",
    re.I,
)


def states_present(text: str) -> bool:
    """Whether a statement may tell the present state: not a question, and either free of past/plan words or
    announcing a change ("Just got a Mustang, the old Wrangler went to my nephew")."""
    if text.rstrip().endswith("?") or _PLAN.search(text):
        return False
    return not _NOT_A_STATE.search(text) or announces_change(text)


# A plan or a wish is never the present, whatever change it names ("we might move to Austin next year").
_PLAN = re.compile(
    r"\b(?:if|might|maybe|would|could|should|want|wanna|hope|plan(?:ning)?|thinking|considering|someday|dream|"
    r"going\s+to|gonna|next\s+(?:week|month|year|spring|summer|fall|autumn|winter))\b",
    re.I,
)


# Words that announce a change ("just moved", "started at", "our new puppy", "officially", "as of"). Inside a
# slot, a statement announcing a change outranks a newer plain mention ("I still have Noodle's leash").
_CHANGE = re.compile(
    r"\b(?:new|(?<!while\s)(?<!years\s)(?<!months\s)(?<!weeks\s)now|just(?!\s+like)|moved?|moving|relocat\w+|start(?:ed|ing)?|join(?:ed|ing)?|switch(?:ed|ing)?|"
    r"officially|as\s+of|these\s+days|nowadays|got\s+(?:a|an|the|my|our|married|engaged|promoted|hired|together)|"
    r"adopt(?:ed|ing)?|bought|purchased|leased|picked\s+up|traded|swapped|replac\w+|hired|"
    r"promot\w+|became|become|signed|lease|welcome[ds]?|say\s+hello|finally|no\s+longer|anymore|left|quit|since)\b",
    re.I,
)


def announces_change(text: str) -> bool:
    return bool(_CHANGE.search(text))


# Slots that hold one value at a time: there a newer statement makes an older one historical. Pets and
# favorites can be many at once, so their older statements only rank lower.
SINGLE_SLOTS = frozenset({"home", "work", "car", "phone", "partner", "studies", "diet"})


@dataclass(frozen=True)
class SlotValues:
    """What the facts of one slot say: each attribute's newest current value, and every other value they had."""

    current: frozenset[str] = frozenset()
    older: frozenset[str] = frozenset()
    enders: frozenset[str] = frozenset()  # the statements that ended a value ("Things with Ravi are over")
    changed: bool = False  # a value stated as held has been replaced (not one known only from its ending)


def _names(text: str, value: str) -> bool:
    return bool(value) and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.I) is not None


def present_first(results: list[SearchResult], *, slots: Sequence[str] = (),
                  slots_of: dict[str, str | None] | None = None,
                  values: dict[str, SlotValues] | None = None,
                  focus: frozenset[str] = frozenset(),
                  attr_of: dict[str, str] | None = None) -> list[SearchResult]:
    """For a question about the present. For each slot the question asks about (retrieve/slots.py):

    - the slot's current facts and the memories stating it lead, newest evidence first (so a newer "I
      started at Globex" beats an older fact the extractor could not update);
    - a statement that names only an older value of the slot ("I still have Noodle's leash", once Mochi is
      the pet) or speaks of a past state, a plan or a question is an echo: it never leads, and is marked
      `signals["echo"]` so the context block shows it as past;
    - an older statement of the slot that the newest evidence replaced (not a source of a current fact, not
      naming its value) becomes historical: `current` False, `superseded_by` the newest evidence.

    Then every other current memory in rank order, then the historical ones. Leading facts that no newer
    statement contradicts are marked `signals["current_fact"]` for the context block. `focus`: the one
    attribute of a shared slot the question names (slots.attribute_focus); memories of the slot's other
    attributes (facts, and the turns `attr_of` maps to theirs) follow the rest of the slot."""
    from .slots import attribute_slot

    slots_of = slots_of or {}
    values = values or {}
    lead: list[SearchResult] = []
    changed: dict[str, SearchResult] = {}
    for slot in slots:
        vals = values.get(slot, SlotValues())
        group = []
        for r in results:
            m = r.memory
            if not r.current or any(m.id == x.memory.id for x in lead):
                continue
            if m.kind == FACT:
                attr = str(m.metadata.get("attribute", ""))
                if attribute_slot(attr) == slot or f"attr:{attr}" == slot:
                    group.append(r)
            elif slots_of.get(m.id) == slot and m.role != "assistant":
                names_old = any(_names(m.text, v) for v in vals.older)
                names_now = any(_names(m.text, v) for v in vals.current)
                # the statement that ended an older value tells the change, not an echo of the past
                if states_present(m.text) and (names_now or not names_old or m.id in vals.enders):
                    group.append(r)
                else:
                    changed[m.id] = r.model_copy(update={"signals": {**r.signals, "echo": 1.0}})
        # facts and change announcements first, newest first; then plain mentions, newest first
        group.sort(key=lambda r: (_in_focus(r, focus, attr_of or {}),
                                  r.memory.kind == FACT or announces_change(r.memory.text), _evidence_time(r)),
                   reverse=True)
        if not group:
            continue
        newest_statement = next((r for r in group if r.memory.kind != FACT), None)
        head = group[0]
        sources = {s for r in group if r.memory.kind == FACT for s in r.memory.source_ids}
        for r in group:
            m = r.memory
            if m.kind == FACT and (
                newest_statement is None
                or newest_statement.memory.id in m.source_ids
                or _evidence_time(newest_statement) <= _evidence_time(r)
            ):
                r = r.model_copy(update={"signals": {**r.signals, "current_fact": 1.0}})
            elif (slot in SINGLE_SLOTS and m.kind != FACT and r is not head and m.id not in sources
                  and not any(_names(m.text, v) for v in vals.current)):
                changed[m.id] = r.model_copy(update={"current": False, "superseded_by": head.memory.id})
                continue
            lead.append(r)
    chosen = {r.memory.id for r in lead}
    rest = [changed.get(r.memory.id, r) for r in results if r.memory.id not in chosen]
    return _monotone(lead + [r for r in rest if r.current] + [r for r in rest if not r.current])


def _in_focus(r: SearchResult, focus: frozenset[str], attr_of: dict[str, str]) -> bool:
    m = r.memory
    attr = str(m.metadata.get("attribute", "")) if m.kind == FACT else attr_of.get(m.id, "")
    return not focus or not attr or attr in focus


def _monotone(results: list[SearchResult]) -> list[SearchResult]:
    """Scores that fall with rank again: a memory moved up takes the score of the one it now precedes (the
    ranker's own output stays in its signals)."""
    out = list(results)
    for i in range(len(out) - 2, -1, -1):
        if out[i].score < out[i + 1].score:
            out[i] = out[i].model_copy(update={"score": out[i + 1].score})
    return out


def _evidence_time(r: SearchResult) -> tuple[bool, float]:
    """When a memory's claim dates from: a fact's valid_from, anything else's occurred_at."""
    m = r.memory
    t = (m.valid_from or m.occurred_at) if m.kind == FACT else m.occurred_at
    return (t is not None, t.timestamp() if t is not None else 0.0)
