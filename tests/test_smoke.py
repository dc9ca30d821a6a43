"""End-to-end smoke: add, search, context with the real model."""

from __future__ import annotations


def test_add_search_context(mem):
    mem.add(
        [
            {"speaker": "Maya", "text": "I moved to Lisbon in March.", "timestamp": "2024-03-30T10:00:00Z"},
            {"speaker": "Maya", "text": "My cat Biscuit hates car trips.", "timestamp": "2024-03-30T10:01:00Z"},
        ],
        user_id="maya",
    )
    hits = mem.search("what is the name of her cat?", user_id="maya", limit=2)
    assert hits[0].memory.text.startswith("My cat Biscuit")
    assert "dense" in hits[0].signals
    block = mem.context("cat", user_id="maya", max_tokens=200)
    assert "Biscuit" in block.text and block.tokens <= 200
