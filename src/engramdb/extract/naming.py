"""Facts about a user read with the user's name ("Sam lives in Seattle"), while the user_id stays the scope.

A fact's `subject` is what updates are keyed on (the speaker, else the user_id), so it never
changes; only the sentence stored as the fact's text uses the name. The name comes from a `name`
fact ("I'm Sam", "call me Sam", "Sam here"): one stated in the same batch wins over a known one.

    facts = extractor.extract(episodes)
    facts = name_subjects(facts, known={"u42": "Sam"})   # known: current `name` facts, by subject
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .base import Fact, norm_value, render


def names_in(facts: Iterable[Fact]) -> dict[str, str]:
    """Names stated in a batch, by normalised subject (the last one stated wins)."""
    out: dict[str, str] = {}
    for f in facts:
        if f.attribute == "name" and not f.ends and f.value.strip():
            out[norm_value(f.subject)] = f.value.strip()
    return out


def sentence_for(fact: Fact, name: str | None) -> str:
    """The fact's sentence with `name` as its subject; the fact's own sentence when there is no name."""
    if not name or fact.attribute == "name":
        return fact.sentence()  # "u42's name is Sam" keeps the link from the scope to the name
    if fact.value == "*":
        return f"{name}: no longer {fact.attribute}"
    return render(name, fact.attribute, fact.value, ends=fact.ends)


def name_subjects(facts: list[Fact], known: Mapping[str, str] | None = None) -> list[Fact]:
    """Copies of `facts` whose text names their subject by its stated name.

    `known` maps a subject (as stored: the user_id or speaker, any case) to its current name, e.g. from
    `Memory.facts(user_id=..., attribute="name")`; names stated in `facts` themselves take precedence.
    Only template sentences are rewritten (a sentence an LLM wrote itself is kept); `subject`, and so
    the update key and the scope, are unchanged.
    """
    names = {norm_value(k): v for k, v in (known or {}).items() if v}
    names.update(names_in(facts))
    if not names:
        return facts
    out = []
    for f in facts:
        name = names.get(norm_value(f.subject))
        templated = not f.text or f.text in (
            render(f.subject, f.attribute, f.value, ends=f.ends),
            f"{f.subject}: no longer {f.attribute}",
        )
        if name and templated and name != f.subject:
            held = render(name, f.attribute, f.value) if f.ends and f.value != "*" else ""
            out.append(f.model_copy(update={"text": sentence_for(f, name), "held_text": held}))
        else:
            out.append(f)
    return out
