"""The Memory API with the real model and real SQLite: round trips, filters, history, atomic adds, model changes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.embed.base import Embedder
from engramdb.errors import ModelMismatchError, NotFoundError, ValidationError
from engramdb.privacy.labels import warm


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


CHAT = [
    {"speaker": "Maya", "text": "I adopted a grey cat called Biscuit.", "timestamp": "2024-03-01T10:00:00Z"},
    {"speaker": "Maya", "text": "My sister lives in Porto and teaches maths.", "timestamp": "2024-04-01T10:00:00Z"},
    {"speaker": "Maya", "text": "I started training for the Lisbon marathon.", "timestamp": "2024-05-01T10:00:00Z"},
]


def test_add_search_update_delete_round_trip(mem):
    recs = mem.add(CHAT, user_id="maya", session_id="s1", metadata={"topic": "life"}, source_ref="dlg-1")
    assert [r.speaker for r in recs] == ["Maya"] * 3 and all(r.source_ref == "dlg-1" for r in recs)
    assert recs[0].occurred_at == datetime(2024, 3, 1, 10, tzinfo=UTC) and recs[0].recorded_at is not None
    hits = mem.search("what pet does she have?", user_id="maya", limit=3)
    top = hits[0]
    assert top.memory.id == recs[0].id and {"bm25", "dense"} & set(top.signals) and top.score > 0
    # get / update / history
    assert mem.get(recs[1].id).text == CHAT[1]["text"]
    new = mem.update(recs[1].id, text="My sister moved from Porto to Berlin.", metadata={"topic": "family"})
    assert new.version == 2 and new.metadata["topic"] == "family"  # plus its sensitivity labels (privacy)
    assert mem.search("Berlin", user_id="maya", limit=1)[0].memory.id == recs[1].id
    mem.delete(recs[1].id)
    with pytest.raises(NotFoundError):
        mem.get(recs[1].id)
    assert recs[1].id not in [h.memory.id for h in mem.search("sister Berlin", user_id="maya")]
    hist = mem.history(recs[1].id)
    assert [h.action for h in hist] == ["add", "update", "delete"]
    assert hist[1].before["text"] == CHAT[1]["text"] and hist[1].after["text"].endswith("Berlin.")
    assert hist[2].after["deleted_at"] is not None
    # list is paginated and skips the deleted
    page = mem.list(user_id="maya", limit=1)
    assert page.total == 2 and page.next_offset == 1
    assert mem.list(user_id="maya", limit=1, offset=1).next_offset is None


def test_search_filters(mem):
    mem.add(CHAT, user_id="maya", metadata={"src": "chat"})
    mem.add("Maya's cat Biscuit is a fact now.", user_id="maya", kind="fact", metadata={"src": "notes"})
    mem.add("Tom also has a cat, named Pixel.", user_id="tom", timestamp="2024-03-02T00:00:00+00:00")
    q = "cat"
    assert {h.memory.user_id for h in mem.search(q, user_id="tom")} == {"tom"}
    assert {h.memory.kind for h in mem.search(q, kinds=["fact"])} == {"fact"}
    assert {h.memory.kind for h in mem.search(q, filters={"kind": "fact"})} == {"fact"}
    assert {h.memory.metadata["src"] for h in mem.search(q, user_id="maya", filters={"src": "chat"})} == {"chat"}
    window = mem.search(q, since="2024-03-01T00:00:00Z", until="2024-04-01T00:00:00Z")
    assert {h.memory.text for h in window} == {CHAT[0]["text"], "Tom also has a cat, named Pixel."}
    assert mem.search(q, user_id="nobody") == []


def test_context_block(mem):
    mem.add(CHAT, user_id="maya")
    block = mem.context("tell me about Maya", user_id="maya", max_tokens=60)
    assert block.tokens <= 60 and block.tokenizer
    assert "2024-03-01" in block.text or "2024-04-01" in block.text or "2024-05-01" in block.text


class Exploding(Embedder):
    """Fails on the call that embeds the text 'boom'."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(64)
        self.name, self.dim, self.batch_size = self.inner.name, 64, 2

    def _embed_batch(self, texts):
        if any("boom" in t for t in texts):
            raise RuntimeError("model crashed")
        return self.inner._embed_batch(texts)


def test_failed_add_writes_nothing(tmp_path):
    m = Memory(tmp_path / "f.db", embedder=Exploding())
    m.add("warm up", user_id="u")
    before = m.stats()
    with pytest.raises(RuntimeError):
        m.add(["one", "two", "three", "boom"], user_id="u")  # fails on the second batch
    with pytest.raises(ValidationError, match=r"messages\[2\]"):
        m.add(["fine", {"text": "also fine"}, {"text": ""}], user_id="u")  # one bad turn
    with pytest.raises(ValidationError, match="timestamp"):
        m.add([{"text": "ok", "timestamp": "2024-01-01T10:00:00"}], user_id="u")  # naive time
    assert m.stats() == before
    m.close()


class Counting(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(64)
        self.batch_size = 64
        self.sizes: list[int] = []

    def _embed_batch(self, texts):
        self.sizes.append(len(texts))
        return super()._embed_batch(texts)


def test_embedding_is_batched(tmp_path, embedder):
    emb = Counting()
    m = Memory(tmp_path / "b.db", embedder=emb)
    warm(emb)  # the sensitivity classifier's prototypes: embedded once per model, not per write
    emb.sizes.clear()
    emb.calls = 0
    m.add([f"turn number {i} about things" for i in range(1000)], user_id="u")
    # Each turn may be embedded with its context too (ingest/keys.py): at most 2,000 texts, in full batches.
    assert 1000 <= sum(emb.sizes) <= 2000 and max(emb.sizes) == 64
    assert emb.calls == -(-sum(emb.sizes) // 64) <= 32  # not 1,000
    assert m.stats()["memories"] == 1000
    m.close()
    # the real model too: 100 turns (and their context pairs) in a handful of calls
    m = Memory(tmp_path / "real.db", embedder=embedder)
    before = embedder.calls
    m.add([f"short turn {i}" for i in range(100)], user_id="u")
    assert embedder.calls - before <= -(-200 // embedder.batch_size)
    m.close()


def test_model_mismatch_and_reindex(tmp_path):
    path = tmp_path / "m.db"
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        r = m.add("the lighthouse keeper's logbook", user_id="u")[0]
    with pytest.raises(ModelMismatchError, match="reindex"):
        Memory(path, embedder=HashingEmbedder(32))
    with pytest.raises(ModelMismatchError):
        Memory(path, embedder="hashing-48")
    with Memory(path, embedder=HashingEmbedder(32), allow_model_change=True) as m:
        assert m.reindex() == 1
    with Memory(path, embedder=HashingEmbedder(32)) as m:
        assert m.stats()["embed_model"] == "hashing-32" and m.stats()["embed_dim"] == 32
        assert m.search("lighthouse logbook", user_id="u")[0].memory.id == r.id
        key = m.store.keys_for([r.id])[r.id]
        assert m.store.vectors_for([key])[1].shape == (1, 32)


def test_vectors_are_normalised_and_stored_exactly(mem):
    r = mem.add("Exactly this sentence.", user_id="u")[0]
    key = mem.store.keys_for([r.id])[r.id]
    stored = mem.store.vectors_for([key])[1][0]
    fresh = mem.embedder.embed(["Exactly this sentence."])[0]
    assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(stored, fresh, atol=1e-5)


def test_access_tracking_and_update_validation(fake_mem):
    r = fake_mem.add("remember me", user_id="u")[0]
    fake_mem.get(r.id)
    assert fake_mem.get(r.id).access_count >= 1
    count = fake_mem.store.get([r.id])[0].access_count
    with pytest.raises(ValidationError):
        fake_mem.update(r.id, importance=3)
    with pytest.raises(ValidationError):
        fake_mem.update(r.id)
    assert fake_mem.store.get([r.id])[0].access_count == count  # a rejected update touches nothing


def test_update_sets_and_clears_expiry_and_validity(fake_mem):
    from datetime import UTC, datetime, timedelta

    soon = datetime.now(UTC) + timedelta(days=2)
    r = fake_mem.add("the door code is 4711", user_id="u", expires_at=soon)[0]
    assert fake_mem.update(r.id, clear=["expires_at"]).expires_at is None  # it no longer expires
    later = fake_mem.update(r.id, expires_at="2099-01-01T00:00:00Z")
    assert later.expires_at == datetime(2099, 1, 1, tzinfo=UTC) and later.version == 3
    fact = fake_mem.add("Ana lives in Lisbon", user_id="u", kind="fact")[0]
    closed = fake_mem.update(fact.id, valid_to="2024-05-01T00:00:00Z")
    assert closed.valid_to is not None
    assert fake_mem.update(fact.id, clear=["valid_to"]).valid_to is None  # closed by mistake: it holds again
    before = fake_mem.store.get([r.id])[0]
    for bad in ({"clear": "expires_at"}, {"clear": ["text"]}, {"clear": []},
                {"clear": ["expires_at"], "expires_at": "2099-01-01T00:00:00Z"}):
        with pytest.raises(ValidationError):
            fake_mem.update(r.id, **bad)
    assert fake_mem.store.get([r.id])[0] == before  # a rejected update changes nothing
