"""The knowledge-update benchmark: generator, wording pools, metrics, and a small end-to-end run."""

import json
import re
from datetime import UTC, datetime

from typer.testing import CliRunner

from engramdb.bench import updates as u
from engramdb.embed import HashingEmbedder


def _template_regex(tpl: str) -> re.Pattern[str]:
    pat = re.escape(tpl)
    for ph in ("v", "old", "a_v", "a_old", "name", "month"):
        pat = pat.replace(re.escape("{" + ph + "}"), ".+")
    return re.compile(pat + r"\Z")


def test_generator_is_deterministic_per_seed():
    a = u.dataset(5, seed=3, split="test")
    assert a == u.dataset(5, seed=3, split="test")
    assert a != u.dataset(5, seed=4, split="test")
    assert a != u.dataset(5, seed=3, split="dev")


def test_generated_people_change_two_or_three_attributes_with_both_input_forms():
    persons, questions = u.generate(10, seed=1)
    assert {p.form for p in persons} == {"chat", "turns"}
    for p in persons:
        assert 2 <= len(p.changed) <= 3
        assert [s.date[:4] for s in p.sessions] == ["2024"] * 3
        for a in u.ATTRS:
            spans = p.timeline[a]
            assert (len(spans) > 1) == (a in p.changed)
            assert spans[-1].end is None and all(s.end == n.start for s, n in zip(spans, spans[1:], strict=False))
    present = [q for q in questions if q.kind == "present"]
    past = [q for q in questions if q.kind == "as_of"]
    assert len(present) == 2 * sum(len(p.changed) for p in persons)
    by_pid = {p.pid: p for p in persons}
    for q in past:  # the as_of date falls inside the expected value's validity
        span = next(s for s in by_pid[q.pid].timeline[q.attr] if s.value == q.expected)
        assert span.start <= q.as_of[:10] < (span.end or "9999")


def test_pools_are_disjoint_and_each_split_uses_only_its_own():
    dev, test = u.pool_sentences(u.DEV_POOL), u.pool_sentences(u.TEST_POOL)
    assert dev and test and not dev & test
    for pool in (u.DEV_POOL, u.TEST_POOL):
        for a in u.ATTRS:
            assert all(pool[a][c] for c in ("initial", "change", "echo", "present_1p", "present_3p", "past"))
    for split, other in (("dev", test), ("test", dev)):
        other_re = [_template_regex(t) for t in other]
        persons, questions = u.generate(12, seed=5, split=split)
        texts = [t.text for p in persons for s in p.sessions for t in s.turns] + [q.text for q in questions]
        clash = [x for x in texts if any(r.match(x) for r in other_re)]
        assert not clash, clash[:3]


def test_values_are_never_named_by_filler_text_or_names():
    values = [v for vs in u.VALUES.values() for v in vs]
    filler = [t for pool in u.POOLS.values() for k in ("small_talk", "assistant", "friend", "intro") for t in pool[k]]
    filler += list(u.NAMES) + list(u.FRIENDS)
    assert not [(t, v) for t in filler for v in values if u.names(t, v)]
    for vs in u.VALUES.values():  # no value is a word of another value of the same attribute
        assert not [(a, b) for a in vs for b in vs if a != b and u.names(b, a)]


def test_metric_functions_on_hand_made_cases():
    assert u.names("I drive a model 3 now", "Model 3") and not u.names("Bostonian pride", "Boston")
    assert u.names("F-150 owner", "F-150") and not u.names("Acme's", "Acm")
    old_first = ["I live in Boston", "I moved to Seattle"]
    assert not u.current_first(old_first, "Seattle", ["Boston"])
    assert u.current_first(old_first[::-1], "Seattle", ["Boston"])
    assert u.current_first(["small talk", "Traded my Civic for a Model 3"], "Model 3", ["Civic"])  # tells the change
    assert not u.current_first(["small talk"], "Seattle", ["Boston"])  # nothing names the current value
    assert u.valid_first(["I live in Boston", "x"], "Boston", ["Boston", "Seattle"])
    assert not u.valid_first(["I moved to Seattle", "I live in Boston"], "Boston", ["Boston", "Seattle"])
    olds = {"Boston": "2024-06-12"}
    as_current = "Relevant memories:\n[2024-01-15 18:00] sam: I live in Boston\n[2024-11-06 18:00] I live in Seattle"
    assert u.old_value_shown_as_past(as_current, "Seattle", olds) is False
    marked = "[2024-01-15 18:00] (fact) (until 2024-06-12) sam lives in Boston"
    assert u.old_value_shown_as_past(marked, "Seattle", olds) is True
    assert u.old_value_shown_as_past("sam lives in Seattle since 2024-06; before: Boston", "Seattle", olds) is True
    assert u.old_value_shown_as_past("[2024-11-06 18:02] I miss Boston's bagels", "Seattle", olds) is True  # later
    assert u.old_value_shown_as_past("[2024-11-06 18:00] I live in Seattle", "Seattle", olds) is None
    assert u.facts_as_of_ok(["Boston"], "Boston", ["Boston", "Seattle"]) is True
    assert u.facts_as_of_ok(["Boston", "Seattle"], "Boston", ["Boston", "Seattle"]) is False
    assert u.facts_as_of_ok(["Acme"], "Boston", ["Boston", "Seattle"]) is None


class _Rec:
    def __init__(self, text: str, value: str | None = None):
        self.text, self.metadata = text, ({"value": value} if value else {})


class _Res:
    def __init__(self, text: str):
        self.memory = _Rec(text)


class _Ctx:
    def __init__(self, text: str):
        self.text = text


class _FakeMem:
    """Canned answers: the Seattle question ranks the old value first; the Globex one is right."""

    def search(self, q, *, user_id, limit, as_of=None):
        if as_of:
            return [_Res("I live in Boston")]
        if "live" in q:
            return [_Res("I live in Boston"), _Res("I moved to Seattle")]
        return [_Res("Started at Globex"), _Res("I work at Acme")]

    def context(self, q, *, user_id, max_tokens):
        if "live" in q:
            return _Ctx("[2024-01-15 18:00] I live in Boston\n[2024-06-12 18:00] I moved to Seattle")
        return _Ctx("[2024-01-15 18:00] (until 2024-06-12) I work at Acme\n[2024-06-12 18:00] Started at Globex")

    def facts(self, *, user_id, as_of=None, include_history=False):
        if include_history:
            return [_Rec("x lives in Seattle", "Seattle"), _Rec("x lives in Boston", "Boston")]
        return [_Rec("x lives in Boston", "Boston")]


def test_run_method_aggregates_per_attribute():
    S = u.Span
    p = u.Person("p0", "Sam", "chat", "Jo", [], {
        "lives_in": [S("Boston", "2024-01-15", "2024-06-12"), S("Seattle", "2024-06-12", None)],
        "works_at": [S("Acme", "2024-01-15", "2024-06-12"), S("Globex", "2024-06-12", None)],
    }, ["lives_in", "works_at"])
    for a in u.ATTRS:
        p.timeline.setdefault(a, [S("zzz", "2024-01-15", None)])
    when = datetime(2024, 3, 1, tzinfo=UTC).isoformat()
    qs = [u.Question("p0", "lives_in", "present", "Where do I live now?", None, "Seattle", ["Boston", "Seattle"]),
          u.Question("p0", "works_at", "present", "Where do I work now?", None, "Globex", ["Acme", "Globex"]),
          u.Question("p0", "lives_in", "as_of", "Where did I live then?", when, "Boston", ["Boston", "Seattle"])]
    r = u.run_method(_FakeMem(), [p], qs, keep_failures=5)
    la, wa = r["by_attribute"]["lives_in"], r["by_attribute"]["works_at"]
    assert la["current_first@10"] == {"n": 1, "rate": 0.0} and wa["current_first@10"] == {"n": 1, "rate": 1.0}
    assert r["overall"]["current_first@10"] == {"n": 2, "rate": 0.5}
    assert r["overall"]["context_current@150"] == {"n": 2, "rate": 1.0}
    assert la["old_as_past"]["rate"] == 0.0 and wa["old_as_past"]["rate"] == 1.0
    assert la["as_of_search"] == {"n": 1, "rate": 1.0} and la["as_of_facts"] == {"n": 1, "rate": 1.0}
    assert la["fact_coverage_changes"] == {"n": 1, "rate": 1.0} and wa["fact_coverage_changes"]["rate"] == 0.0
    assert {f["metric"] for f in r["failures"]} == {"current_first@10", "old_as_past"}


def test_end_to_end_small_run_writes_reports(tmp_path):
    rep = u.run(people=3, seed=2, split="dev", compare=True, embedder=HashingEmbedder(384))
    assert list(rep["methods"]) == ["current_truth off", "default"]
    assert rep["questions"]["present"] > 0 and rep["questions"]["as_of"] > 0
    for m in rep["methods"].values():
        for metric in u.METRICS:
            rate = m["overall"][metric]["rate"]
            assert rate is None or 0.0 <= rate <= 1.0
        assert m["overall"]["current_first@10"]["n"] == rep["questions"]["present"]
        assert m["latency_ms"]["p50"] > 0
    paths = u.write(rep, tmp_path)
    assert json.loads((tmp_path / "updates_dev.json").read_text())["benchmark"] == "updates"
    md = (tmp_path / "updates_dev.md").read_text()
    assert "current_first@10" in md and "## default: by attribute" in md
    assert (tmp_path / "updates_dev.svg").read_text().startswith("<svg") and set(paths) == {"json", "markdown", "chart"}


def test_cli_json_and_bad_split(tmp_path):
    from engramdb.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["bench", "updates", "--people", "2", "--embedder", "hashing-384", "--out",
                            str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["split"] == "test" and (tmp_path / "updates_test.md").exists()
    assert "failures" not in json.loads(r.stdout)["methods"]["default"]  # no per-item failures on the test split
    r = runner.invoke(app, ["bench", "updates", "--split", "holdout", "--out", str(tmp_path)])
    assert r.exit_code == 2


def test_longmemeval_update_fixture_reports_per_type():
    from pathlib import Path

    from engramdb.bench import longmemeval as lme

    path = Path(__file__).parent / "fixtures" / "longmemeval_updates.json"
    rep = lme.run_longmemeval(path, embedder=HashingEmbedder(384))
    by_type = rep["methods"]["default"]["by_type"]
    assert {k: v["n"] for k, v in by_type.items()} == {"knowledge-update": 3, "temporal-reasoning": 2}
    assert by_type["knowledge-update"]["session"]["recall_all@50"] == 1.0  # tiny haystacks: all found at 50
