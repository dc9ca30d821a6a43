"""Rule-based extraction: precision/recall on the hand-labelled set, and the cases it must refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engramdb.extract import RuleExtractor, extract_statements, name_subjects
from engramdb.extract.evaluate import evaluate, format_table
from engramdb.model import MemoryRecord

FIXTURES = Path(__file__).parent / "fixtures"
LABELLED = FIXTURES / "extraction_labelled.jsonl"
UNSEEN = FIXTURES / "extraction_unseen.jsonl"


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
        "I'm moving to Tokyo next spring.",
        "I used to be a teacher.",
        "I'll start my new job at Apple in two weeks.",
        "Sarah lives in Boston.",
        "I'm tired.",
        "I'm Italian.",
        "I'm Fine, thanks.",
        "It's Monday again.",
        "I left Sam a message.",
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
    rows, _ = evaluate(FIXTURES / "extraction_heldout.jsonl")
    with capsys.disabled():
        print("\nrule-based extractor on the held-out set")
        print(format_table(rows))
    overall = rows[-1]
    assert overall.precision >= 0.95  # it may miss some (recall), but what it stores should be right
    assert overall.recall >= 0.8


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_unseen_set_shape():
    """Frozen before the rules were widened: lists, we/our, tenses, negations, third person, small talk."""
    rows = _rows(UNSEEN)
    assert len(rows) >= 150 and len({r["id"] for r in rows}) == len(rows)
    assert sum(1 for r in rows if not r["facts"]) >= 30
    assert sum(1 for r in rows for f in r["facts"] if f["value"].startswith("-")) >= 8  # facts that end a value


def test_unseen_set(capsys):
    rows, errors = evaluate(UNSEEN)
    with capsys.disabled():
        print("\nrule-based extractor on", UNSEEN.name)
        print(format_table(rows))
        for e in errors:
            print("  error:", e)
    overall = rows[-1]
    assert overall.gold >= 150
    assert overall.precision >= 0.9 and overall.recall >= 0.75  # the goal; today 1.00 / 0.99 (rules tuned on it)


# Later held-out sets and floors just under today's figures. Each was committed before the extractor
# was run on it; "blind" marks the one no rule change has been guided by since (docs/lifecycle.md).
LATER_SETS = [
    ("extraction_fresh.jsonl", 0.9, 0.7),  # 0.97 / 0.75; blind figure was 0.83 / 0.38
    ("extraction_chat.jsonl", 0.95, 0.85),  # 1.00 / 0.93; blind figure was 0.97 / 0.67
    ("extraction_conversation.jsonl", 0.95, 0.85),  # 1.00 / 0.89; blind figure was 0.92 / 0.68
    ("extraction_notes.jsonl", 0.9, 0.6),  # blind: 0.95 / 0.66
]


@pytest.mark.parametrize(("name", "min_precision", "min_recall"), LATER_SETS)
def test_later_held_out_sets(name, min_precision, min_recall, capsys):
    rows, errors = evaluate(FIXTURES / name)
    with capsys.disabled():
        print("\nrule-based extractor on", name)
        print(format_table(rows))
        for e in errors:
            print("  error:", e)
    overall = rows[-1]
    assert overall.gold >= 50
    assert overall.precision >= min_precision and overall.recall >= min_recall


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We moved across the country to Portland.", ("lives_in", "Portland", False)),
        ("I don't live in Paris anymore.", ("lives_in", "Paris", True)),
        ("I left Chicago for good.", ("lives_in", "Chicago", True)),
        ("I left Google in March.", ("works_at", "Google", True)),
        ("I'm between jobs right now.", ("works_at", "*", True)),
        ("Home is Seattle now.", ("lives_in", "Seattle", False)),
        ("i moved to seattle", ("lives_in", "seattle", False)),
        ("I'm thirty-two.", ("age", "32", False)),
        ("Hey, it's Marco again.", ("name", "Marco", False)),
        ("Honestly, opera bores me.", ("opinion:opera", "dislikes", False)),
        # cars come from a list of makes and models; pets that are gone; a new favourite
        ("These days I drive a Honda Civic.", ("car", "Honda Civic", False)),
        ("We traded our old Forester in for a Tesla Model Y.", ("car", "Tesla Model Y", False)),
        ("We traded our old Forester in for a Tesla Model Y.", ("car", "Forester", True)),
        ("Sold my Jetta last week.", ("car", "Jetta", True)),
        ("Our beagle Rufus passed away in March.", ("pet", "Rufus", True)),
        ("This is Luna, our new kitten.", ("pet", "Luna", False)),
        ("Coldplay has become my favourite band.", ("favorite:band", "Coldplay", False)),
        ("My new address is Porto.", ("lives_in", "Porto", False)),
        ("Deloitte hired me last spring.", ("works_at", "Deloitte", False)),
        ("Work at Spotify is intense right now.", ("works_at", "Spotify", False)),
        ("Twelve years as a nurse and counting.", ("job_title", "nurse", False)),
        ("I got the teacher job!", ("job_title", "teacher", False)),
        ("We replaced our Prius with a Kia Niro.", ("car", "Kia Niro", False)),
        ("We replaced our Prius with a Kia Niro.", ("car", "Prius", True)),
        ("Things with Marco are over.", ("partner", "Marco", True)),
        # a "we" clause carried on by "and"; a purchase told as a deal; "an <employer> employee"
        ("We sold the flat and then relocated to Lyon.", ("lives_in", "Lyon", False)),
        ("The salesman cut us a great deal on a Subaru Outback.", ("car", "Subaru Outback", False)),
        ("As of Monday I'm a Shopify employee.", ("works_at", "Shopify", False)),
    ],
)
def test_wider_wording(text, expected):
    assert expected in {(f.attribute, f.value, f.ends) for f in extract_statements(text, "user")}


def test_lists_and_appositives_give_one_fact_per_name():
    got = {
        (f.attribute, f.value) for f in extract_statements("I have two kids, Mia and Leo. Tom, my husband, cooks.", "u")
    }
    assert got == {("child", "Mia"), ("child", "Leo"), ("husband", "Tom")}


def test_a_value_ended_in_the_same_sentence_is_not_also_asserted():
    got = {(f.attribute, f.value, f.ends) for f in extract_statements("I was let go from my job at Uber.", "u")}
    assert got == {("works_at", "Uber", True)}


def test_facts_name_the_user_but_keep_the_scope():
    facts = extract_statements("Hi, I'm Sam! I moved to Seattle.", "u42")
    named = {f.attribute: f for f in name_subjects(facts)}
    assert named["lives_in"].text == "Sam lives in Seattle" and named["lives_in"].subject == "u42"
    assert named["name"].text == "u42's name is Sam"  # the name fact links the scope to the name
    later = name_subjects(extract_statements("I work at Globex.", "u42"), known={"U42": "Sam"})
    assert [f.text for f in later] == ["Sam works at Globex"]
    assert [f.text for f in name_subjects(extract_statements("I work at Globex.", "u7"), known={"u42": "Sam"})] == [
        "u7 works at Globex"
    ]


@pytest.mark.parametrize(
    "text",
    ["I bought a Nintendo Switch.", "My grandfather Joe passed away last year.", "I rode in a friend's Jeep once?",
     "After the game Sam and I split the bill.", "Winning a title is my number one goal.",
     "Got a great deal on the flights to Tokyo."],
)
def test_no_car_pet_partner_or_favourite_from_look_alikes(text):
    got = {(f.attribute, f.value) for f in extract_statements(text, "u")}
    kinds = ("car", "pet", "partner", "relationship_status")
    assert not any(a in kinds or a.startswith("favorite:") for a, _ in got), got
