"""Rule-based extraction: precision/recall on the hand-labelled set, and the cases it must refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engramdb.extract import RuleExtractor, extract_statements
from engramdb.extract.evaluate import evaluate, format_table
from engramdb.model import MemoryRecord

LABELLED = Path(__file__).parent / "fixtures" / "extraction_labelled.jsonl"


def test_labelled_set_is_big_enough_and_well_formed():
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    assert len(rows) >= 100
    assert len({r["id"] for r in rows}) == len(rows)
    assert sum(1 for r in rows if not r["facts"]) >= 25  # plenty of statements that must yield nothing


def test_precision_recall_table(capsys):
    rows, errors = evaluate(LABELLED)
    table = format_table(rows)
    with capsys.disabled():
        print("\nrule-based extractor on", LABELLED.name)
        print(table)
        for e in errors:
            print("  error:", e)
    overall = rows[-1]
    assert overall.group == "all" and overall.gold >= 80
    # Floors, not targets: the set was written by the rules' author, so these overstate real-world recall.
    assert overall.precision >= 0.9
    assert overall.recall >= 0.8


@pytest.mark.parametrize(
    "text",
    [
        "Do you live in Berlin?",
        "If I moved to Oslo I would freeze.",
        "I'd love to live in Japan.",
        "I want to move to Paris someday.",
        "My sister moved to Chicago last year.",
        "I love it when it rains.",
        "My boss is really strict.",
    ],
)
def test_refuses_questions_wishes_and_third_person(text):
    assert extract_statements(text, "user") == []


def test_structured_fields_and_templates():
    facts = {
        (f.attribute, f.value): f
        for f in extract_statements("I moved to Berlin and started working at Zalando.", "ana")
    }
    assert ("lives_in", "Berlin") in facts and ("works_at", "Zalando") in facts
    assert facts[("lives_in", "Berlin")].text == "ana lives in Berlin"
    (opinion,) = extract_statements("I hate cilantro.", "ana")
    assert (opinion.attribute, opinion.value, opinion.text) == ("opinion:cilantro", "dislikes", "ana dislikes cilantro")
    (quit_,) = extract_statements("I quit my job at Amazon.", "ana")
    assert quit_.ends and quit_.attribute == "works_at"


def test_extractor_sets_provenance_and_skips_assistant_turns():
    user = MemoryRecord(user_id="u1", text="My sister Anna is visiting.", speaker="Maya")
    bot = MemoryRecord(user_id="u1", text="I live in the cloud.", role="assistant", speaker="assistant")
    chat = MemoryRecord(user_id="u1", text="I live in Rome.", role="user", speaker="user")
    facts = RuleExtractor().extract([user, bot, chat])
    assert [(f.subject, f.attribute, f.value, f.source_ids) for f in facts] == [
        ("Maya", "sister", "Anna", [user.id]),
        ("u1", "lives_in", "Rome", [chat.id]),
    ]


def test_heldout_set_written_after_the_rules(capsys):
    """50 statements written after the rules were frozen and never used to tune them: the honest figure."""
    rows, _ = evaluate(Path(__file__).parent / "fixtures" / "extraction_heldout.jsonl")
    with capsys.disabled():
        print("\nrule-based extractor on the held-out set")
        print(format_table(rows))
    overall = rows[-1]
    assert overall.precision >= 0.9  # it may miss a lot (recall), but what it stores should be right
    assert overall.recall >= 0.2
