"""purge(user_id=...) erases every trace: a byte scan of the database files finds the marker nowhere."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from engramdb import Memory, MemoryConfig
from engramdb.embed import HashingEmbedder

MARKER = "ZQX-PURGE-MARKER-7731"


def db_files(path: Path) -> list[Path]:
    return [
        p
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.usearch"), Path(f"{path}.usearch.json"))
        if p.exists()
    ]


def scan(path: Path, needle: str) -> dict[str, int]:
    return {p.name: p.read_bytes().count(needle.encode()) for p in db_files(path)}


def test_purge_leaves_no_bytes_behind(tmp_path, capsys):
    path = tmp_path / "p.db"
    # exact_max=1 forces the ANN index, so a sidecar file exists before the purge
    m = Memory(path, embedder=HashingEmbedder(64), config=MemoryConfig(exact_max=1))
    m.add(
        [f"My badge is {MARKER}, I moved to Oslo.", "I love hiking."],
        user_id="victim",
        session_id="s1",
        timestamp="2024-01-01T00:00:00Z",
    )
    (ep,) = m.add(f"second note {MARKER}", user_id="victim", session_id="s2", timestamp="2024-02-01T00:00:00Z")
    m.update(ep.id, text=f"edited note {MARKER} again")  # history holds before/after copies
    m.forget(ep.id)  # a soft-deleted copy too
    m.add("I moved to Rome.", user_id="bystander", session_id="b1", timestamp="2024-01-01T00:00:00Z")
    # an agent-level memory derived from the victim's turn, in another scope
    src = m.list(user_id="victim", kinds=["episode"]).items[0]
    m.add(f"agent digest mentioning {MARKER}", agent_id="helper", kind="summary")
    digest = m.list(agent_id="helper").items[0]
    m.store.update(digest.model_copy(update={"source_ids": [src.id]}))
    m.consolidate()
    assert m.search("hiking", user_id="victim", limit=3)  # builds and saves the ANN sidecar
    m.vectors.save()
    assert Path(f"{path}.usearch").exists()
    with sqlite3.connect(path) as other:  # copy the WAL into the main file, so both hold the marker
        other.execute("PRAGMA wal_checkpoint(PASSIVE)")
    before = scan(path, MARKER)
    assert before["p.db"] > 0 and before["p.db-wal"] > 0

    rep = m.purge(user_id="victim")
    assert rep.memories > 0 and rep.derived_elsewhere == 1 and rep.ann_files_removed
    after = scan(path, MARKER)
    with capsys.disabled():
        print(
            f"\npurge byte scan for {MARKER!r}: before {before} after {after} "
            f"(db {rep.bytes_before} -> {rep.bytes_after} bytes)"
        )
    assert sum(after.values()) == 0
    assert m.stats()["users"] == 1 and m.list(user_id="victim").total == 0
    assert m.list(agent_id="helper").total == 0
    # the bystander is untouched and still searchable; new writes for anyone work and get extracted
    assert [r.memory.text for r in m.search("Rome", user_id="bystander", kinds=["episode"])] == ["I moved to Rome."]
    m.add("I moved to Lima.", user_id="victim", timestamp="2024-05-01T00:00:00Z")
    assert [f.metadata["value"] for f in m.facts(user_id="victim")] == ["Lima"]
    m.close()
    assert sum(scan(path, MARKER).values()) == 0
    assert os.path.getsize(path) > 0


def test_purge_needs_a_scope(fake_mem):
    import pytest

    from engramdb.errors import ValidationError

    with pytest.raises(ValidationError):
        fake_mem.purge()
