"""Copy one store into another, losslessly: SQLite -> PostgreSQL (or back, or between schemas).

Everything a store holds travels: records (every field, deleted and expired ones too, in insertion order),
their exact float32 vectors, keyword-index texts, full history, links, and meta (embedding model and
dimension, and whatever other keys the engine keeps). Internal keys are not copied: the destination numbers
rows itself, in the same order.

The destination must be empty. All writes happen in one destination transaction: a failure (or Ctrl-C)
leaves it empty. `verify` then re-reads both sides and compares them field by field.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from ..errors import ValidationError
from ..model import HistoryEntry, MemoryRecord
from .base import Filters, Link, Store

Progress = Callable[[int, int], None]  # (done, total)
_ALL = Filters(include_deleted=True, include_expired=True)


class MigrateReport(BaseModel):
    records: int
    vectors: int
    history_entries: int
    links: int
    meta_keys: list[str]
    verified: bool | None  # None: not checked
    mismatches: list[str]
    seconds: float


def _page(store: Store, offset: int, batch: int) -> list[MemoryRecord]:
    return store.list(_ALL, limit=batch, offset=offset, order="recorded_at")


def _vectors_by_id(store: Store, ids: list[str]) -> dict[str, np.ndarray]:
    keys = store.keys_for(ids)
    if not keys:
        return {}
    got_keys, mat = store.vectors_for(list(keys.values()))
    by_key = {int(k): mat[i] for i, k in enumerate(got_keys)}
    return {mid: by_key[k] for mid, k in keys.items() if k in by_key}


def _tokens_by_id(store: Store, ids: list[str]) -> dict[str, bytes]:
    """Packed token vectors (late interaction) by memory id, copied as they are."""
    keys = store.keys_for(ids)
    blobs = store.token_vectors_for(list(keys.values())) if keys else {}
    return {mid: blobs[k] for mid, k in keys.items() if k in blobs}


def copy_store(
    src: Store,
    dst: Store,
    *,
    batch: int = 500,
    verify: bool = True,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy everything in `src` into the empty store `dst`. Returns what was copied and whether it verified."""
    started = time.perf_counter()
    total = src.count(_ALL)
    if dst.count(_ALL):
        raise ValidationError("the destination store is not empty; migrate only into a new, empty store")
    meta = src.all_meta()
    n_vec = n_hist = n_links = done = 0
    with dst.transaction():
        for key, value in meta.items():
            dst.set_meta(key, value)
        offset = 0
        while True:
            page = _page(src, offset, batch)
            if not page:
                break
            offset += len(page)
            ids = [r.id for r in page]
            texts = src.index_texts(ids)
            vecs = _vectors_by_id(src, ids)
            toks = _tokens_by_id(src, ids)
            histories = {r.id: src.history(r.id) for r in page}
            links = [lk for r in page for lk in src.links(r.id, direction="out")]
            # insert() takes vectors for all records or none: split the page into runs that agree.
            start = 0
            while start < len(page):
                has = page[start].id in vecs
                end = start
                while end < len(page) and (page[end].id in vecs) == has:
                    end += 1
                run = page[start:end]
                dst.insert(
                    run,
                    np.vstack([vecs[r.id] for r in run]) if has else None,
                    [texts.get(r.id, r.text) for r in run],
                    histories=[histories[r.id] for r in run],
                    tokens=[toks.get(r.id) for r in run],
                )
                start = end
            dst.add_links(links)
            n_vec += len(vecs)
            n_hist += sum(len(h) for h in histories.values())
            n_links += len(links)
            done += len(page)
            if progress:
                progress(done, total)
    mismatches = _verify(src, dst, batch) if verify else []
    return MigrateReport(
        records=done,
        vectors=n_vec,
        history_entries=n_hist,
        links=n_links,
        meta_keys=sorted(meta),
        verified=(not mismatches) if verify else None,
        mismatches=mismatches[:20],
        seconds=round(time.perf_counter() - started, 3),
    )


def _verify(src: Store, dst: Store, batch: int) -> list[str]:
    """Field-by-field comparison of both stores; returns what differs (empty = identical)."""
    out: list[str] = []
    if src.all_meta() != dst.all_meta():
        out.append("meta differs")
    if src.count(_ALL) != dst.count(_ALL):
        out.append(f"record count: {src.count(_ALL)} vs {dst.count(_ALL)}")
    offset = 0
    while len(out) < 20:
        a, b = _page(src, offset, batch), _page(dst, offset, batch)
        if not a and not b:
            break
        offset += max(len(a), 1)
        if [r.id for r in a] != [r.id for r in b]:
            out.append(f"records {offset - len(a)}..{offset}: different ids or order")
            continue
        ids = [r.id for r in a]
        ta, tb = src.index_texts(ids), dst.index_texts(ids)
        va, vb = _vectors_by_id(src, ids), _vectors_by_id(dst, ids)
        ka, kb = _tokens_by_id(src, ids), _tokens_by_id(dst, ids)
        for ra, rb in zip(a, b, strict=True):
            if ra.model_dump() != rb.model_dump():
                out.append(f"{ra.id}: record differs")
            if ta.get(ra.id) != tb.get(ra.id):
                out.append(f"{ra.id}: index text differs")
            if (ra.id in va) != (ra.id in vb) or (ra.id in va and not np.array_equal(va[ra.id], vb[ra.id])):
                out.append(f"{ra.id}: vector differs")
            if ka.get(ra.id) != kb.get(ra.id):
                out.append(f"{ra.id}: token vectors differ")
            if _hist(src.history(ra.id)) != _hist(dst.history(ra.id)):
                out.append(f"{ra.id}: history differs")
            if _links(src.links(ra.id, direction="out")) != _links(dst.links(ra.id, direction="out")):
                out.append(f"{ra.id}: links differ")
    return out


def _hist(entries: list[HistoryEntry]) -> list[dict]:
    return [e.model_dump() for e in entries]


def _links(links: list[Link]) -> list[tuple]:
    return sorted((lk.src_id, lk.dst_id, lk.type, lk.reason, lk.created_at) for lk in links)
