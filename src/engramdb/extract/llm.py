"""LLM extraction: the same Fact output as the rules, from any OpenAI-compatible model.

Batches the turns of one call into a numbered list; each returned fact names its
turn, so provenance (source_ids) points at the exact episode. A model that answers
nonsense raises LLMError (counted in stats); the caller keeps the raw episodes and
retries later, so nothing is lost.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from ..llm import LLMClient
from ..model import MemoryRecord
from .base import Fact, norm_value, render, subject_of
from .lexicon import canonical
from .prompts import render_prompt

KNOWN_ATTRIBUTES = (
    "name, age, lives_in, lived_in, from, born_in, works_at, job_title, relationship_status, studies, education, "
    "learning, diet, allergy, pet, sister, brother, mother, father, wife, husband, partner, son, daughter, child, "
    "friend"
)


_SELF = ("i", "me", "myself", "user", "the user", "speaker", "the speaker")


class LLMFact(BaseModel):
    subject: str = Field(min_length=1, max_length=256)
    attribute: str = Field(min_length=1, max_length=128)
    value: str = Field(min_length=1, max_length=500)
    ends: bool = False
    turn: int = Field(ge=1)

    @field_validator("attribute")
    @classmethod
    def _attr(cls, v: str) -> str:
        # "Lives In" -> "lives_in", but "opinion:Rock Climbing" -> "opinion:rock climbing", as the rules spell it
        prefix, sep, obj = v.strip().lower().partition(":")
        return prefix.strip().replace(" ", "_") + sep + " ".join(obj.split())


class LLMFacts(BaseModel):
    facts: list[LLMFact] = Field(default_factory=list, max_length=200)


class LLMExtractor:
    name = "llm"

    def __init__(self, client: LLMClient, *, batch: int = 20) -> None:
        self.client = client
        self.batch = batch

    def extract(self, episodes: list[MemoryRecord]) -> list[Fact]:
        usable = [e for e in episodes if subject_of(e) is not None]
        out: list[Fact] = []
        for i in range(0, len(usable), self.batch):
            out.extend(self._extract_batch(usable[i : i + self.batch]))
        return out

    def _extract_batch(self, eps: list[MemoryRecord]) -> list[Fact]:
        lines = []
        for n, ep in enumerate(eps, 1):
            when = f" ({ep.occurred_at:%Y-%m-%d})" if ep.occurred_at else ""
            lines.append(f"{n}. [{subject_of(ep)}]{when}: {ep.text}")
        prompt = render_prompt("extract_facts", attributes=KNOWN_ATTRIBUTES, turns="\n".join(lines))
        result = self.client.complete_json(prompt, LLMFacts, op="extract")
        # The speaker's own facts must keep the speaker as subject (the update key and the scope), even when
        # the model writes the name the speaker gave ("I'm Sam" -> subject "Sam") or "I"/"user".
        speakers = {norm_value(subject_of(ep) or ""): subject_of(ep) for ep in eps}
        aliases = {k: k for k in speakers}
        for f in result.facts:
            if f.attribute == "name" and 1 <= f.turn <= len(eps):
                speaker = norm_value(subject_of(eps[f.turn - 1]) or "")
                if (
                    norm_value(f.subject) in aliases
                    or norm_value(f.subject) in _SELF
                    or norm_value(f.subject) == norm_value(f.value)
                ):
                    aliases[norm_value(f.value)] = speaker
        facts: list[Fact] = []
        for f in result.facts:
            if f.turn > len(eps):
                continue  # a turn number the model made up: no provenance, no fact
            ep = eps[f.turn - 1]
            attribute, value = canonical(f.attribute, f.value)
            key = aliases.get(norm_value(f.subject))
            if norm_value(f.subject) in _SELF:
                subject = subject_of(ep) or f.subject  # "I" is whoever spoke that turn
            else:
                subject = speakers.get(key) or f.subject if key is not None else f.subject
            facts.append(
                Fact(
                    subject=subject,
                    attribute=attribute,
                    value=value,
                    ends=f.ends,
                    text=render(subject, attribute, value, ends=f.ends),
                    confidence=0.8,
                    source_ids=[ep.id],
                )
            )
        return facts
