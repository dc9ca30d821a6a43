"""Record <-> row conversion shared by the SQL backends, and the keyword-query builder."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model import MemoryRecord
from ..timeutil import from_store, to_store

TIME_FIELDS = ("occurred_at", "recorded_at", "valid_from", "valid_to", "expires_at", "deleted_at", "last_accessed_at")
COLUMNS = (
    "id",
    "user_id",
    "agent_id",
    "session_id",
    "kind",
    "text",
    "speaker",
    "role",
    "metadata",
    *TIME_FIELDS,
    "source_ids",
    "source_ref",
    "importance",
    "access_count",
    "version",
)


def record_to_row(rec: MemoryRecord) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in COLUMNS:
        value = getattr(rec, col)
        if col in TIME_FIELDS:
            value = to_store(value)
        elif col in ("metadata", "source_ids"):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        row[col] = value
    return row


def row_to_record(row: Any) -> MemoryRecord:
    return values_to_record([row[col] for col in COLUMNS])


_TIME_AT = tuple(COLUMNS.index(col) for col in TIME_FIELDS)
_FIELDS = tuple(MemoryRecord.model_fields)
_FIELD_AT = tuple(COLUMNS.index(f) for f in _FIELDS) if set(_FIELDS) == set(COLUMNS) else ()
# what `model_construct` does for a model without aliases, defaults to fill, extras or private state, written out:
# the same object for a fifth of the cost (a search decodes ~60 records)
_PLAIN = bool(_FIELD_AT) and not MemoryRecord.__pydantic_post_init__ and not MemoryRecord.__private_attributes__ \
    and MemoryRecord.model_config.get("extra") != "allow" \
    and all(f.alias is None and f.validation_alias is None for f in MemoryRecord.model_fields.values())
_new = object.__new__
_set = object.__setattr__


def values_to_record(values: Sequence[Any]) -> MemoryRecord:
    """A record from COLUMNS' stored values, in that order (a search decodes ~60: the usual empty and unset
    values skip the parsers)."""
    vals = list(values)
    for i in _TIME_AT:
        if vals[i] is not None:
            vals[i] = from_store(vals[i])
    if not _PLAIN:
        data = dict(zip(COLUMNS, vals, strict=True))
        data["metadata"], data["source_ids"] = _json_fields(data["metadata"], data["source_ids"])
        return MemoryRecord.model_construct(**data)
    vals[_META], vals[_SOURCES] = _json_fields(vals[_META], vals[_SOURCES])
    rec = _new(MemoryRecord)
    _set(rec, "__dict__", {f: vals[i] for f, i in zip(_FIELDS, _FIELD_AT, strict=True)})  # the model's field order
    _set(rec, "__pydantic_fields_set__", set(_FIELDS))
    _set(rec, "__pydantic_extra__", None)
    _set(rec, "__pydantic_private__", None)
    return rec


_META, _SOURCES = COLUMNS.index("metadata"), COLUMNS.index("source_ids")


def _json_fields(meta: str | None, sources: str | None) -> tuple[dict[str, Any], list[str]]:
    return (json.loads(meta) if meta and meta != "{}" else {},
            json.loads(sources) if sources and sources != "[]" else [])


def record_json(rec: MemoryRecord | None) -> str | None:
    return None if rec is None else rec.model_dump_json()


def vector_to_blob(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


# Words too common to help a keyword OR-query; dropping them keeps BM25 focused and fast.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves s t don ll ve re m d
    did does doing has have""".split()
)
_WORD_RE = re.compile(r"[\w']+", re.UNICODE)


# Unscoped keyword search is exact (every row holding a query word is scored) while the query's words hold at
# most UNSCOPED_POSTINGS_MAX rows between them. Past that, the candidates are the rows holding a word found in
# at most RARE_ROWS_MAX rows, and the rows holding both of the two rarest other words (`cutoff_groups`); every
# word still scores them. At 1M conversational rows most words are held by 5% of them or more: scoring every
# row holding any of eight such words took about a second a query.
UNSCOPED_POSTINGS_MAX = 60_000
RARE_ROWS_MAX = 5_000


def cutoff_groups(counts: Sequence[int]) -> list[list[int]]:
    """Past UNSCOPED_POSTINGS_MAX: which rows are candidates, as groups of term indexes (a row is one when it
    holds every term of a group): each rare term alone, and the two rarest common terms together (the one
    common term, when no term is rare)."""
    rare = [[i] for i, c in enumerate(counts) if c <= RARE_ROWS_MAX]
    common = [i for _, i in sorted((c, i) for i, c in enumerate(counts) if c > RARE_ROWS_MAX)]
    if len(common) >= 2:
        return [*rare, sorted(common[:2])]
    return rare if rare else [common]


def keyword_terms(query: str) -> list[str]:
    """Distinct lowercase content words of a query, in order."""
    seen: dict[str, None] = {}
    for raw in _WORD_RE.findall(query.lower()):
        word = raw.strip("'")
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) < 2 and not word.isdigit():
            continue
        if word in STOPWORDS or not word:
            continue
        seen.setdefault(word, None)
    return list(seen)
