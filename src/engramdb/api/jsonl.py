"""JSONL export and import.

Line 1 is a header naming the format version and the embedding model. Each
following line is one memory: the record, its keyword-index text, its history,
and (optionally) its embedding as base64 float32 — exact, so a round trip is
lossless. Import validates every line before writing anything, then writes in
transactions of IMPORT_CHUNK memories; `skip_bad` instead skips invalid lines
(and ids already in the store, which also finishes an interrupted import).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..embed.packs import canonical_name
from ..errors import ValidationError
from ..ingest.keys import build_keys
from ..ingest.normalize import check_id, check_metadata, check_text
from ..model import HistoryEntry, MemoryRecord
from ..store.base import Filters
from ..timeutil import now

if TYPE_CHECKING:
    from ..config import MemoryConfig
    from ..embed.base import Embedder
    from ..privacy.engine import PrivacyEngine
    from ..resources import Resources
    from ..store.base import Store


class Memory(Protocol):
    """What export and import read and write through (a `Memory`)."""

    store: Store
    _res: Resources

    @property
    def config(self) -> MemoryConfig: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def model_name(self) -> str: ...

    @property
    def privacy(self) -> PrivacyEngine: ...

FORMAT = "engramdb-jsonl"
FORMAT_VERSION = 1
IMPORT_CHUNK = 500  # memories per write transaction


class ImportReport(BaseModel):
    imported: int
    skipped: int
    errors: list[str]  # "line N: reason"
    recomputed_embeddings: bool


def export_jsonl(
    mem: Memory,
    out: str | os.PathLike[str] | IO[str],
    *,
    user_id: str | None,
    agent_id: str | None,
    session_id: str | None,
    include_embeddings: bool,
    include_deleted: bool,
) -> int:
    f = Filters(
        user_id=user_id, agent_id=agent_id, session_id=session_id, include_deleted=include_deleted, include_expired=True
    )
    with ExitStack() as stack:
        try:
            fh = out if hasattr(out, "write") else stack.enter_context(open(out, "w", encoding="utf-8"))
        except OSError as exc:
            raise ValidationError(f"cannot write {out}: {exc.strerror}") from exc
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "embed_model": mem.store.get_meta("embed_model"),
            "embed_dim": mem.store.get_meta("embed_dim"),
        }
        fh.write(json.dumps(header) + "\n")
        n, offset = 0, 0
        while True:
            page = mem.store.list(f, limit=500, offset=offset, order="recorded_at")
            if not page:
                break
            offset += len(page)
            texts = mem.store.index_texts([r.id for r in page])
            vecs: dict[int, np.ndarray] = {}
            keys = mem.store.keys_for([r.id for r in page])
            if include_embeddings:
                got_keys, mat = mem.store.vectors_for(list(keys.values()))
                vecs = {int(k): mat[i] for i, k in enumerate(got_keys)}
            for rec in page:
                line: dict[str, Any] = {
                    "record": json.loads(rec.model_dump_json()),
                    "index_text": texts.get(rec.id),
                    "history": [json.loads(h.model_dump_json()) for h in mem.store.history(rec.id)],
                    "links": [
                        lk.__dict__ | {"created_at": lk.created_at.isoformat() if lk.created_at else None}
                        for lk in mem.store.links(rec.id, direction="out")
                    ],
                }
                vec = vecs.get(keys.get(rec.id, -1))
                if vec is not None:
                    line["embedding"] = base64.b64encode(np.asarray(vec, dtype=np.float32).tobytes()).decode()
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    return n


def import_jsonl(
    mem: Memory,
    src: str | os.PathLike[str] | IO[str] | Iterable[str],
    *,
    recompute_embeddings: bool,
    skip_bad: bool,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    from ..store.base import Link
    from ..timeutil import parse_time

    with ExitStack() as stack:
        if isinstance(src, (str, os.PathLike)):
            try:
                fh: Iterable[Any] = stack.enter_context(open(src, "rb"))
            except OSError as exc:
                raise ValidationError(f"cannot read {src}: {exc.strerror}") from exc
        else:
            fh = src
        lines = list(fh)

    errors: list[str] = []
    header: dict[str, Any] | None = None
    parsed: list[tuple[MemoryRecord, str | None, list[HistoryEntry], np.ndarray | None, list[Link]]] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            errors.append(f"line {lineno}: invalid UTF-8 at byte {exc.start}")
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(f"line {lineno}: malformed JSON ({exc.msg} at column {exc.colno})")
            continue
        if header is None and isinstance(obj, dict) and obj.get("format") == FORMAT:
            if not isinstance(obj.get("version"), int) or obj["version"] > FORMAT_VERSION:
                errors.append(f"line {lineno}: format version {obj.get('version')!r} is newer than this EngramDB")
                break
            header = obj
            continue
        try:
            parsed.append(_parse_line(obj, mem, header, recompute_embeddings, seen, parse_time, Link))
        except (ValidationError, PydanticValidationError, ValueError, TypeError, KeyError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            errors.append(f"line {lineno}: {msg}")
    if errors and not skip_bad:
        shown = "; ".join(errors[:5]) + (f"; ... {len(errors) - 5} more" if len(errors) > 5 else "")
        raise ValidationError(f"import aborted, nothing imported: {shown}")
    if not parsed:
        return ImportReport(imported=0, skipped=len(errors), errors=errors, recomputed_embeddings=False)

    records = [p[0] for p in parsed]
    existing = mem.store.get([r.id for r in records], include_deleted=True)
    if existing and not skip_bad:
        raise ValidationError(
            f"import aborted, nothing imported: {len(existing)} id(s) already in the store, e.g. {existing[0].id}"
        )
    clash = {r.id for r in existing}
    if clash:
        errors.extend(f"id {i}: already in the store" for i in sorted(clash))
        parsed = [p for p in parsed if p[0].id not in clash]
        records = [p[0] for p in parsed]
    need = recompute_embeddings or any(p[3] is None for p in parsed)
    index_texts, _ = build_keys(records)
    tokens = None  # imported vectors come without token vectors: search ranks those without late interaction
    if need:
        index_texts, vecs, tokens = mem._res.keys(records)  # the one place keys are computed
    else:
        mem.embedder  # noqa: B018 - records model name/dim in a fresh store
        vecs = np.vstack([p[3] for p in parsed if p[3] is not None])  # none is None here (need is False)
    index_texts = [p[1] if p[1] and not recompute_embeddings else index_texts[i] for i, p in enumerate(parsed)]
    # Bounded transactions: one per chunk, so a concurrent writer waits for a chunk, never the whole file.
    # Each chunk is all or nothing; after an interruption, importing again with skip_bad adds what is missing.
    for start in range(0, len(records), IMPORT_CHUNK):
        part = slice(start, start + IMPORT_CHUNK)
        with mem.store.transaction():
            if need:
                mem._res.check_store_model()  # vectors just made must match the store's model
            mem.store.insert(
                records[part],
                vecs[part],
                index_texts[part],
                histories=[p[2] for p in parsed[part]],
                tokens=tokens[part] if tokens is not None else None,
            )
            mem.store.add_links([lk for p in parsed[part] for lk in p[4]])
        if progress:
            progress(min(start + IMPORT_CHUNK, len(records)), len(records))
    return ImportReport(imported=len(records), skipped=len(errors), errors=errors, recomputed_embeddings=need)


def _parse_line(obj, mem, header, recompute, seen, parse_time, Link):
    if not isinstance(obj, dict) or "record" not in obj:
        raise ValidationError("expected an object with a 'record' field")
    rec = MemoryRecord.model_validate(obj["record"])
    if rec.recorded_at is None:  # a hand-written line: it is recorded now (the column cannot be empty)
        rec = rec.model_copy(update={"recorded_at": now()})
    check_text(rec.text, max_chars=mem.config.max_text_chars)
    for name in ("user_id", "agent_id", "session_id", "source_ref", "speaker", "role"):
        check_id(getattr(rec, name), where=name)
    check_metadata(rec.metadata)
    mem.privacy.check_import(rec)  # a secret in a line is refused: its index text and history would keep it
    if not (rec.user_id or rec.agent_id or rec.session_id):
        raise ValidationError("record has no scope (user_id, agent_id or session_id)")
    if rec.id in seen:
        raise ValidationError(f"duplicate id {rec.id} in the file")
    seen.add(rec.id)
    for field in ("occurred_at", "recorded_at", "valid_from", "valid_to", "expires_at", "deleted_at"):
        value = getattr(rec, field)
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{field} has no time zone")
    history = [HistoryEntry.model_validate(h) for h in obj.get("history") or []]
    if not history:  # a hand-written line: its arrival is still a change worth recording
        history = [
            HistoryEntry(
                memory_id=rec.id, version=rec.version, action="add", after=json.loads(rec.model_dump_json()), at=now()
            )
        ]
    vec = None
    if obj.get("embedding") and not recompute:
        model = (header or {}).get("embed_model")
        stored = mem.store.get_meta("embed_model")
        if model and canonical_name(stored or mem.model_name) != canonical_name(model):
            raise ValidationError(
                f"embedding made with {model!r}, store uses {stored or mem.model_name!r}; use --recompute-embeddings"
            )
        vec = np.frombuffer(base64.b64decode(obj["embedding"], validate=True), dtype=np.float32).copy()
        dim = int((header or {}).get("embed_dim") or len(vec))
        if len(vec) != dim:
            raise ValidationError(f"embedding has {len(vec)} dimensions, header says {dim}")
        stored_dim = mem.store.get_meta("embed_dim")
        if stored_dim and int(stored_dim) != len(vec):
            raise ValidationError(f"embedding has {len(vec)} dimensions, the store holds {stored_dim}")
        if not np.all(np.isfinite(vec)):
            raise ValidationError("embedding holds NaN or infinite values")
    links = [
        Link(lk["src_id"], lk["dst_id"], lk["type"], lk.get("reason"), parse_time(lk.get("created_at")))
        for lk in obj.get("links") or []
    ]
    return rec, obj.get("index_text"), history, vec, links
