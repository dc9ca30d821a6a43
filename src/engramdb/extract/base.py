"""What extraction produces: structured facts with provenance, and the extractor protocol."""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import BaseModel, Field

from ..model import MemoryRecord

# Attributes that hold one value at a time for a subject: a new value supersedes the old one.
# Everything else (relatives, pets, learning, education, lived_in...) is multi-valued: values accumulate.
SINGLE_VALUED = frozenset(
    {
        "name",
        "age",
        "lives_in",
        "from",
        "born_in",
        "works_at",
        "job_title",
        "relationship_status",
        "studies",
        "diet",
        "wife",
        "husband",
        "partner",
        "car",
        "mother",
        "father",
    }
)
# Prefixed attributes: one value per (prefix, object), e.g. opinion:sushi -> likes | dislikes.
SINGLE_VALUED_PREFIXES = ("opinion:", "favorite:")

_ARTICLE_RE = re.compile(r"^(?:the|a|an|my)\s+", re.I)
_NON_WORD_RE = re.compile(r"[^\w\s:-]+", re.UNICODE)


def norm_value(value: str) -> str:
    """Comparison form of a value: lower case, no punctuation, no leading article."""
    v = _NON_WORD_RE.sub(" ", value.casefold())
    v = " ".join(v.split())
    return _ARTICLE_RE.sub("", v).strip()


def is_single_valued(attribute: str) -> bool:
    return attribute in SINGLE_VALUED or attribute.startswith(SINGLE_VALUED_PREFIXES)


class Fact(BaseModel):
    """One structured statement about a subject, derived from episodes."""

    subject: str = Field(min_length=1, max_length=256)
    attribute: str = Field(min_length=1, max_length=128)  # e.g. lives_in, works_at, sister, opinion:sushi
    value: str = Field(min_length=1, max_length=1000)
    text: str = Field(default="", max_length=2000)  # a readable sentence; filled from a template when empty
    ends: bool = False  # "I quit my job at X": closes the current value, asserts no new one
    confidence: float = Field(default=0.8, ge=0, le=1)
    source_ids: list[str] = Field(default_factory=list)
    # for a fact that ends a value: the sentence of that value while it held ("Sam drives a Jetta"), kept when
    # no earlier fact held it (lifecycle/update.py); filled from a template when empty
    held_text: str = Field(default="", max_length=2000)

    @property
    def key(self) -> tuple[str, str]:
        """What an update is matched on: same subject and attribute."""
        return (norm_value(self.subject), self.attribute.casefold())

    def sentence(self) -> str:
        return self.text or render(self.subject, self.attribute, self.value, ends=self.ends)

    def held_sentence(self) -> str:
        return self.held_text or render(self.subject, self.attribute, self.value)


_TEMPLATES = {
    "name": "{s}'s name is {v}",
    "age": "{s} is {v} years old",
    "lives_in": "{s} lives in {v}",
    "lived_in": "{s} used to live in {v}",
    "from": "{s} is from {v}",
    "born_in": "{s} was born in {v}",
    "works_at": "{s} works at {v}",
    "job_title": "{s} works as {v}",
    "relationship_status": "{s} is {v}",
    "studies": "{s} studies {v}",
    "education": "{s} graduated from {v}",
    "learning": "{s} is learning {v}",
    "pet": "{s} has a pet named {v}",
    "car": "{s} drives a {v}",
    "diet": "{s} is {v}",
    "allergy": "{s} is allergic to {v}",
}
_END_TEMPLATES = {
    "works_at": "{s} no longer works at {v}",
    "lives_in": "{s} no longer lives in {v}",
    "car": "{s} no longer drives the {v}",
    "pet": "{s} no longer has {v}",
}


def render(subject: str, attribute: str, value: str, *, ends: bool = False) -> str:
    """A plain sentence for a fact, e.g. ("alice", "lives_in", "Berlin") -> "alice lives in Berlin"."""
    if ends:
        tpl = _END_TEMPLATES.get(attribute, "{s}: no longer {a} {v}")
    elif attribute.startswith("opinion:"):
        return f"{subject} {value} {attribute.split(':', 1)[1]}"
    elif attribute.startswith("favorite:"):
        return f"{subject}'s favorite {attribute.split(':', 1)[1]} is {value}"
    else:
        tpl = _TEMPLATES.get(attribute, "{s}'s {a} is {v}")
    return tpl.format(s=subject, a=attribute.replace("_", " "), v=value)


class Extractor(Protocol):
    """Turns episodes into facts. Implementations: RuleExtractor (default), LLMExtractor."""

    name: str

    def extract(self, episodes: list[MemoryRecord]) -> list[Fact]: ...


def subject_of(rec: MemoryRecord) -> str | None:
    """Who a first-person statement is about: the speaker, else the user; None for assistant turns."""
    if rec.role in ("assistant", "system", "tool"):
        return None
    if rec.speaker and rec.speaker != rec.role:  # a named speaker; "user" from a chat role is not a name
        return rec.speaker
    return rec.user_id or rec.agent_id or "user"
