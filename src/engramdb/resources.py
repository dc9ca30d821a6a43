"""What every service of a `Memory` shares: the store, the configuration, the embedding model and the vector
index (both loaded on first use), the index keys of new records, and the LLM client.

The services (`retrieve.pipeline.Retrieval`, `lifecycle.service.Lifecycle`, `procedural.service.Procedures`)
take one `Resources` as their explicit collaborator; `Memory` owns it and delegates to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from .config import MemoryConfig
from .embed import make_embedder
from .embed.base import Embedder
from .embed.packs import canonical_name
from .errors import ConfigError, ModelMismatchError, ValidationError
from .index.vector import VectorIndex
from .ingest.keys import compute_keys
from .ingest.normalize import check_id, check_metadata
from .model import MemoryRecord, check_kind
from .store.base import Filters, Store
from .timeutil import parse_time

if TYPE_CHECKING:
    from .llm import LLMClient, LLMConfig

LLM_USAGE = "lifecycle.llm_usage"
COUNTERS = "lifecycle.counters"

S = TypeVar("S", bound=BaseModel)


class Resources:
    """The collaborators of one `Memory`'s services."""

    def __init__(
        self,
        store: Store,
        config: MemoryConfig,
        *,
        embedder: Embedder | None = None,
        ann_path: str | None = None,
        allow_model_change: bool = False,
    ) -> None:
        self.store = store
        self.config = config
        self.ann_path = ann_path
        self.allow_model_change = allow_model_change
        self._embedder = embedder
        self._vectors: VectorIndex | None = None
        self._llm: LLMClient | None = None
        self._llm_ready = False

    # -- the embedding model and the vector index -----------------------------------------
    @property
    def model_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        return canonical_name(self.config.embedder)

    def check_model_name(self) -> None:
        """The store was embedded with this model (canonical names: 'sentence-transformers/all-mpnet-base-v2'
        opens as 'all-mpnet-base-v2'), unless a model change was allowed."""
        stored = self.store.get_meta("embed_model")
        if stored and canonical_name(stored) != canonical_name(self.model_name) and not self.allow_model_change:
            raise ModelMismatchError(
                f"this store was embedded with {stored!r} (dim {self.store.get_meta('embed_dim')}), "
                f"but it was opened with {self.model_name!r}. Open it with the same model, or re-embed "
                f"everything: engramdb reindex --model {self.model_name}"
            )

    def check_store_model(self) -> None:
        """The store's model, read now: another process may have re-indexed it to another model since this one
        opened (same dimension or not). Mixing two vector spaces is refused, never done silently."""
        self.checked_embedder()

    def checked_embedder(self) -> Embedder:
        """`embedder` after `check_store_model`'s check too, from one read of the store's model (every search)."""
        meta = self.store.meta_values(("embed_dim", "embed_model"))
        emb = self._checked(meta)
        stored = meta.get("embed_model")
        if stored and canonical_name(stored) != canonical_name(emb.name):
            raise ModelMismatchError(
                f"this store is now embedded with {stored!r} (re-indexed since it was opened here?), "
                f"but this Memory embeds with {emb.name!r}; reopen it with {stored!r}"
            )
        return emb

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (CLI reads that never embed stay fast)."""
        return self._checked(self.store.meta_values(("embed_dim", "embed_model")))

    def _checked(self, meta: dict[str, str]) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.config.embedder)
        emb = self._embedder
        stored_dim = meta.get("embed_dim")
        if stored_dim is None:
            with self.store.transaction():
                self.store.set_meta("embed_model", emb.name)
                self.store.set_meta("embed_dim", str(emb.dim))
        elif int(stored_dim) != emb.dim and not self.allow_model_change:
            raise ModelMismatchError(
                f"this store holds {stored_dim}-d vectors but {emb.name!r} makes {emb.dim}-d ones; "
                f"run: engramdb reindex --model {emb.name}"
            )
        elif not self.allow_model_change:
            # Same dimension, another model: re-indexed by another process since this one opened it. Every
            # writer that embeds (consolidation, procedures, not only add) would mix two vector spaces.
            stored = meta.get("embed_model")
            if stored and canonical_name(stored) != canonical_name(emb.name):
                raise ModelMismatchError(
                    f"this store is now embedded with {stored!r} (re-indexed since it was opened here?), "
                    f"but this Memory embeds with {emb.name!r}; reopen it with {stored!r}"
                )
        return emb

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = VectorIndex(
                self.store,
                self.embedder.dim,
                ann_path=self.ann_path,
                exact_max=self.config.exact_max,
                model_name=self.embedder.name,
            )
        return self._vectors

    def drop_vectors(self) -> None:
        """Forget the in-memory vector index (after vectors were erased or replaced): rebuilt on next use."""
        if self._vectors is not None:
            self._vectors.close()
        self._vectors = None

    def keys(self, records: list[MemoryRecord]) -> tuple[list[str], Any, list[Any]]:
        """Index texts, vectors and token vectors for records written together (ingest.keys decides what they
        hold)."""
        rc = self.config.retrieval_config()
        return compute_keys(records, self.embedder, self.store, context=rc.context_keys, dates=rc.date_keys,
                            tokens=rc.late_interaction)  # off: searches will not read them, so none are stored

    # -- the LLM ---------------------------------------------------------------------------
    @property
    def llm(self) -> LLMClient | None:
        """The configured LLM client, or None (the default: no LLM)."""
        if not self._llm_ready:
            from .llm import LLMClient, LLMConfig

            cfg = settings(LLMConfig, self.config.llm, "llm") if self.config.llm else LLMConfig.from_env()
            self._llm = LLMClient(cfg, on_usage=self.record_llm_usage) if cfg else None
            self._llm_ready = True
        return self._llm

    @property
    def llm_configured(self) -> bool:
        return self._llm is not None

    def set_llm(self, llm: LLMClient | LLMConfig | None) -> None:
        from .llm import LLMClient, LLMConfig

        if isinstance(llm, LLMConfig):
            llm = LLMClient(llm, on_usage=self.record_llm_usage)
        elif isinstance(llm, LLMClient) and llm._on_usage is None:
            llm._on_usage = self.record_llm_usage
        self._llm = llm
        self._llm_ready = True

    def record_llm_usage(self, op: str, delta: Any) -> None:
        # Persisted (counts only, no text) so `engramdb stats` in another process sees failures and cost.
        with self.store.transaction():
            data = json.loads(self.store.get_meta(LLM_USAGE) or "{}")
            u = data.setdefault(op, {})
            for k in ("calls", "ok", "failures", "retries", "repairs", "prompt_tokens", "completion_tokens"):
                u[k] = int(u.get(k, 0)) + int(getattr(delta, k))
            u["cost_usd"] = round(float(u.get("cost_usd", 0.0)) + float(delta.cost_usd), 6)
            u["seconds"] = round(float(u.get("seconds", 0.0)) + float(delta.seconds), 3)
            self.store.set_meta(LLM_USAGE, json.dumps(data, sort_keys=True))

    def bump_counters(self, **deltas: int) -> None:
        with self.store.transaction():
            data = json.loads(self.store.get_meta(COUNTERS) or "{}")
            for k, v in deltas.items():
                data[k] = int(data.get(k, 0)) + int(v)
            self.store.set_meta(COUNTERS, json.dumps(data, sort_keys=True))

    def close(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
        self.store.close()


# -- validation of what callers send ------------------------------------------------------------
def is_int(value: object) -> bool:
    """An integer, not a bool (True is an int to Python, never a count to a caller)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ScopeDict(TypedDict):
    """A checked scope, ready to unpack into `MemoryRecord(**scope)` or `Filters(**scope)`."""

    user_id: str | None
    agent_id: str | None
    session_id: str | None


def check_scope(user_id: object, agent_id: object, session_id: object, *, required: bool) -> ScopeDict:
    scope: ScopeDict = {
        "user_id": check_id(user_id, where="user_id"),
        "agent_id": check_id(agent_id, where="agent_id"),
        "session_id": check_id(session_id, where="session_id"),
    }
    if required and not any(scope.values()):
        raise ValidationError("a scope is required: pass user_id, agent_id or session_id")
    return scope


def make_filters(
    user_id: str | None,
    agent_id: str | None,
    session_id: str | None,
    kinds: Sequence[str] | None,
    since: datetime | str | None,
    until: datetime | str | None,
    filters: dict[str, Any] | None,
    **extra: Any,
) -> Filters:
    """Store filters from what a caller sent, checked: a bad id, kind, time or metadata filter is a
    ValidationError naming it."""
    scope = check_scope(user_id, agent_id, session_id, required=False)
    meta = dict(check_metadata(filters, where="filters"))
    kind_filter = meta.pop("kind", None)
    if kind_filter is not None:
        kinds = [*(kinds or []), kind_filter] if isinstance(kind_filter, str) else list(kind_filter)
    if kinds is not None:
        if isinstance(kinds, str):
            kinds = [kinds]
        if not isinstance(kinds, (list, tuple)):
            raise ValidationError(f"kinds: expected a kind or a list of kinds, got {type(kinds).__name__}")
        for k in kinds:
            try:
                check_kind(k)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
    return Filters(
        **scope,
        kinds=kinds,
        since=parse_time(since, field="since"),
        until=parse_time(until, field="until"),
        metadata=meta,
        **extra,
    )


def settings(model: type[S], data: Any, where: str) -> S:
    """A settings model from config, or ConfigError naming the bad field (never a pydantic traceback)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of settings")
    try:
        return model(**data)
    except PydanticError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from exc
