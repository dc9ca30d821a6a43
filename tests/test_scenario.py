"""The scripted five-session scenario (issue 4 §7): a user moves city, changes job and flips a preference.

Run with the rule-based extractor (real MiniLM) and with the LLM path against a local server replaying
recorded answers (one malformed, fixed by the repair step). Checks: context() states the current facts,
as_of returns the old ones, history shows the chain, and purge leaves no byte of the user behind.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engramdb import Memory, MemoryConfig
from engramdb.embed import HashingEmbedder
from engramdb.llm.replay import ReplayServer

MARKER = "LOCKER-CODE-QX9-4471-SCENARIO"
RECORDED = Path(__file__).parent / "fixtures" / "llm_recorded" / "scenario.json"
SESSIONS = [
    ("s1", "2023-01-10", [
        "My name is Dana and I live in Lisbon.",
        "I work at Northwind Bank as a data analyst.",
        "I love running along the river in the mornings.",
        f"Note to self: my locker code is {MARKER}.",
    ]),
    ("s2", "2023-04-02", [
        "Big news, I moved to Berlin last week!",
        "The new flat has a tiny kitchen but a great balcony.",
    ]),
    ("s3", "2023-07-15", ["I started working at Zalando as a product manager.", "The commute is only twenty minutes."]),
    ("s4", "2023-10-01", [
        "Honestly I hate running now, my knees hurt after every run.",
        "I switched to swimming twice a week.",
    ]),
    ("s5", "2024-01-20", [
        "I still live in Berlin and the winter here is rough.",
        "My sister Anna visited me last weekend.",
    ]),
]  # fmt: skip
QUERY = "Where does Dana live, where does she work, and does she like running?"


def _play(m: Memory, sessions) -> None:
    for sid, day, turns in sessions:  # one add per session: one embedding batch
        batch = [{"text": text, "timestamp": f"{day}T09:{i:02d}:00+00:00"} for i, text in enumerate(turns)]
        m.add(batch, user_id="dana", session_id=sid)


def _facts(m: Memory, **kw) -> dict[str, str]:
    return {f.metadata["attribute"]: f.metadata["value"] for f in m.facts(user_id="dana", **kw)}


def _fact_lines(text: str) -> list[str]:
    """Facts in the block: '(fact)' lines, and the 'Current facts:' section's '- ' lines without their
    '(since ...; before: OLD)' note (the replaced value is named there on purpose)."""
    return [line.split(" (since ")[0] for line in text.splitlines() if "(fact)" in line or line.startswith("- ")]


def _scenario(m: Memory, path: Path, capsys, label: str) -> None:
    _play(m, SESSIONS[:1])
    before = m.context(QUERY, user_id="dana", max_tokens=600)
    lines = _fact_lines(before.text)
    assert any("lives in Lisbon" in x for x in lines) and any("Northwind Bank" in x for x in lines)
    assert any("likes running" in x for x in lines)

    _play(m, SESSIONS[1:])
    after = m.context(QUERY, user_id="dana", max_tokens=600)
    with capsys.disabled():
        print(f"\n--- scenario ({label}): context() after session 1 ---\n{before.text}")
        print(f"--- scenario ({label}): context() after session 5 ---\n{after.text}")
    lines = _fact_lines(after.text)
    # context() states the current facts, and no superseded one
    assert any("lives in Berlin" in x for x in lines) and any("works at Zalando" in x for x in lines)
    assert any("dislikes running" in x for x in lines)
    assert not any("Lisbon" in x or "Northwind" in x or "likes running" in x.replace("dislikes", "") for x in lines)
    current = _facts(m)
    assert (current["lives_in"], current["works_at"], current["opinion:running"]) == ("Berlin", "Zalando", "dislikes")
    assert current["sister"] == "Anna"

    # as_of returns the old ones
    then = _facts(m, as_of="2023-03-01T00:00:00Z")
    assert (then["lives_in"], then["works_at"], then["opinion:running"]) == ("Lisbon", "Northwind Bank", "likes")
    old_hits = m.search("where does Dana live", user_id="dana", kinds=["fact"], as_of="2023-03-01T00:00:00Z")
    assert "Lisbon" in old_hits[0].memory.text

    # history shows the chain; the repeated statement was merged, not duplicated
    (berlin,) = m.facts(user_id="dana", attribute="lives_in")
    assert [r.metadata["value"] for r in m.fact_history(berlin.id)] == ["Lisbon", "Berlin"]
    assert len(berlin.source_ids) == 2 and len(m.facts(user_id="dana", attribute="lives_in", include_history=True)) == 2
    lisbon = m.fact_history(berlin.id)[0]
    assert [h.action for h in m.history(lisbon.id)] == ["add", "supersede"]
    (job,) = m.facts(user_id="dana", attribute="works_at")
    assert [r.metadata["value"] for r in m.fact_history(job.id)] == ["Northwind Bank", "Zalando"]

    # consolidation on top, then purge leaves nothing
    rep = m.consolidate()
    assert not rep.failures and rep.sessions_summarized == 5
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(PASSIVE)")
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.usearch")) if p.exists()]
    assert sum(p.read_bytes().count(MARKER.encode()) for p in files) > 0
    rep = m.purge(user_id="dana")
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.usearch")) if p.exists()]
    hits = {p.name: p.read_bytes().count(MARKER.encode()) for p in files}
    with capsys.disabled():
        print(f"--- scenario ({label}): purge removed {rep.memories} memories; marker count per file: {hits}")
    assert sum(hits.values()) == 0 and m.stats()["memories"] == 0 and m.stats()["history_entries"] == 0


def test_scenario_rule_based(tmp_path, embedder, capsys):
    path = tmp_path / "scenario.db"
    m = Memory(path, embedder=embedder, config=MemoryConfig(extraction="rules"))
    try:
        _scenario(m, path, capsys, "rules, MiniLM")
    finally:
        m.close()


def test_scenario_llm_path_recorded_server(tmp_path, capsys):
    path = tmp_path / "scenario_llm.db"
    with ReplayServer(RECORDED) as srv:
        cfg = MemoryConfig(extraction="llm", llm={"base_url": srv.base_url, "model": "replay", "timeout_s": 5})
        m = Memory(path, embedder=HashingEmbedder(128), config=cfg)
        try:
            _scenario(m, path, capsys, "LLM via recorded server")
            assert srv.unmatched == []
            ops = m.stats()["llm"]["ops"]  # counts only (no text), so they survive the purge
            assert ops["extract"]["repairs"] == 1 and ops["extract"]["failures"] == 0
            assert ops["summarize"]["ok"] == 5 and ops["extract"]["prompt_tokens"] > 0
        finally:
            m.close()
        repairs = [b for b in srv.requests if "could not be used" in b["messages"][-1]["content"]
                   and not b["messages"][0]["content"].startswith("Label each numbered memory")]
        assert len(repairs) == 1  # the malformed extraction answer went through the repair step


def test_llm_mode_without_llm_is_a_clear_error(tmp_path, monkeypatch):
    from engramdb.errors import ConfigError

    for var in ("ENGRAMDB_LLM_BASE_URL", "ENGRAMDB_LLM_MODEL", "ENGRAMDB_LLM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    m = Memory(tmp_path / "x.db", embedder=HashingEmbedder(32), config=MemoryConfig(extraction="llm"))
    with pytest.raises(ConfigError, match="no LLM is configured"):
        m.add("I moved to Rome.", user_id="u")
    m.close()
