"""Regex gates (regex_gates.py): a pattern is skipped only for texts it cannot match, so what the rule
extractor, the privacy labels, the secret scanner and the date resolver find is unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb import temporal
from engramdb.bench import updates
from engramdb.extract import rules
from engramdb.privacy import labels, secrets
from engramdb.regex_gates import Gates, fold, needed

FIXTURES = Path(__file__).parent / "fixtures"


def _corpus() -> list[str]:
    texts = [json.loads(line)["text"] for f in sorted(FIXTURES.glob("extraction_*.jsonl"))
             for line in f.read_text().splitlines() if line.strip()]
    for split in ("test", "dev"):
        persons, _ = updates.generate(12, seed=3, split=split)
        texts += [t.text for p in persons for s in p.sessions for t in s.turns]
    return texts


def test_needed_reads_literals_branches_and_repeats():
    assert needed(re.compile(r"\b(?i:I)\s+(?:moved|relocated)\s+to")) == {"moved", "relocated"}
    assert needed(re.compile(r"(?i:my)\s+(?:new\s+)?(?:home|flat)\s+is")) == {"home", "flat"}
    assert needed(re.compile(r"(?:I'm\s+)?(?:a|an)\s+\w+")) is None  # optional, or one letter: no test
    assert needed(re.compile(r"(?:moved|\w+ed)\s+out")) == {"out"}  # a branch without a string gives none
    assert needed(re.compile(r"caf\u00e9 (?:au)+ lait")) == {" lait"}  # a non-ASCII run is not used
    assert fold("\u0130STANBUL \u0131s") == "istanbul is"


def test_a_closed_gate_means_no_match_on_the_rules_own_sentences():
    gates = Gates([rx for _, rx, _ in rules._COMPILED])
    closed = 0
    for text in _corpus():
        for sentence in rules._sentences(text):
            opened = set(gates.open(sentence))
            for i, (_, rx, _) in enumerate(rules._COMPILED):
                if i not in opened:
                    closed += 1
                    assert rx.search(sentence) is None, (rx.pattern, sentence)
    assert closed > 10_000  # the gates do skip most patterns


# every gated pattern list: (its gates, its patterns in order)
_SETS = {
    "rules": (rules._GATES, [rx for _, rx, _ in rules._COMPILED]),
    "labels": (labels._PATTERN_GATES, [rx for _, rx in labels._PATTERN_LIST]),
    "secrets": (secrets._GATES, [*(rx for _, rx in secrets._PROVIDER_RE), secrets._STATED]),
    "dates": (temporal._GATES, [rx for _, rx in temporal._PATTERNS]),
}
_EXTRA = ["My password is hunter22 and the API key sk-proj-abc123def456ghi789jkl012", "AKIAIOSFODNN7EXAMPLE",
          "We met 3 weeks ago, last Friday, in March 2023", "I was diagnosed with diabetes; I vote Labour",
          "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB is my GitHub token", "the day before yesterday"]


def test_no_gated_set_skips_a_pattern_that_matches():
    texts = [*_corpus(), *_EXTRA]
    for name, (gates, patterns) in _SETS.items():
        skipped = 0
        for text in texts:
            opened = set(gates.open(text))
            for i, rx in enumerate(patterns):
                if i not in opened:
                    skipped += 1
                    assert rx.search(text) is None, (name, rx.pattern, text)
        assert skipped > len(texts), name  # each set does skip patterns


def test_facts_are_the_same_with_every_gate_open(monkeypatch):
    texts = _corpus()
    gated = [rules.extract_statements(t, "Sam") for t in texts]
    monkeypatch.setattr(rules._GATES, "open", lambda sentence: range(len(rules._COMPILED)))
    assert [rules.extract_statements(t, "Sam") for t in texts] == gated


_WORDS = sorted({w for n in rules._GATES.needs if n for w in n})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(sorted({w for g, _ in _SETS.values() for n in g.needs if n for w in n})),
                          st.text(min_size=1, max_size=8)), min_size=1, max_size=10),
       st.sampled_from([str.lower, str.upper, str.title, str]))
def test_no_set_skips_a_match_in_random_text(words, case):
    text = case(" ".join(words))
    for name, (gates, patterns) in _SETS.items():
        opened = set(gates.open(text))
        for i, rx in enumerate(patterns):
            if i not in opened:
                assert rx.search(text) is None, (name, rx.pattern, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.sampled_from(["I", "my", "we", "Sam", "a", "the", "now", ","]),
                          st.text(min_size=1, max_size=6)), min_size=1, max_size=14),
       st.sampled_from([str.lower, str.upper, str.title, str]))
def test_no_pattern_matches_behind_a_closed_gate(words, case):
    sentence = case(" ".join(words))
    opened = set(rules._GATES.open(sentence))
    for i, (_, rx, _) in enumerate(rules._COMPILED):
        if i not in opened:
            assert rx.search(sentence) is None, (rx.pattern, sentence)
