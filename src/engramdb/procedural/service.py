"""Procedural memory of a `Memory`: trajectories, tips mined from them, and outcomes that keep the tips honest
(docs/procedural.md). `Memory` delegates to `Procedures`; the work is done in `procedural.engine`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..embed.base import Embedder
from ..errors import ValidationError
from ..model import MemoryRecord
from ..resources import Resources, check_scope
from ..store.base import TIP_ORDER, Store

if TYPE_CHECKING:
    from .engine import LearnReport
    from .model import Guidance, Tip, Trajectory


class ProceduralHost:
    """What the procedural engine writes through: the store, the model, index keys, and the `Memory` write
    methods (so tips get the same checks and history as any memory)."""

    def __init__(self, res: Resources, add_records: Callable[[list[MemoryRecord]], list[MemoryRecord]],
                 update: Callable[..., MemoryRecord]) -> None:
        self._res = res
        self.store: Store = res.store
        self.add_records = add_records
        self.update = update

    @property
    def embedder(self) -> Embedder:
        return self._res.embedder

    def keys(self, records: list[MemoryRecord]) -> tuple[list[str], Any, list[Any]]:
        return self._res.keys(records)


class Procedures:
    """add_trajectory(), learn_tips(), tips(), report_outcome(), tip_provenance(), trajectories()."""

    def __init__(self, host: ProceduralHost) -> None:
        self.host = host

    def add_trajectory(
        self,
        task: str | dict[str, Any] | list[Any],
        steps: Sequence[Any] | None = None,
        outcome: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metrics: dict[str, Any] | None = None,
        format: str = "auto",
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        source_ref: str | None = None,
        embed_steps: bool = False,
    ) -> Trajectory:
        """Store one trajectory. Either `task` (a string) with `steps` and `outcome`, or `task` is framework JSON
        (native dict, OpenAI/Anthropic message list, LangChain intermediate steps) and `outcome` is given here
        if the data lacks it. Returns the trajectory with its stored ids."""
        return self.add_trajectories(
            [_parse_one(task, steps, outcome, metrics, format)],
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            timestamp=timestamp,
            metadata=metadata,
            source_ref=source_ref,
            embed_steps=embed_steps,
        )[0]

    def add_trajectories(
        self,
        trajectories: Sequence[Trajectory | dict[str, Any] | list[Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        source_ref: str | None = None,
        embed_steps: bool = False,
    ) -> list[Trajectory]:
        """Store many trajectories in one transaction (all checked first: one bad one writes nothing).
        Headers are embedded; steps are keyword-indexed, and embedded too with `embed_steps=True`."""
        from ..ingest.normalize import check_id
        from .engine import ingest
        from .model import Trajectory as _T

        scope = check_scope(user_id, agent_id, session_id, required=True)
        if isinstance(trajectories, (str, dict)) or not isinstance(trajectories, Sequence):
            raise ValidationError("trajectories: expected a list")
        parsed = []
        for i, t in enumerate(trajectories):
            try:
                parsed.append(t.model_copy(deep=True) if isinstance(t, _T) else _parse_one(t, None, None, None, "auto"))
            except ValidationError as exc:
                raise ValidationError(f"trajectories[{i}]: {exc}") from exc
        return ingest(
            self.host,
            parsed,
            scope,
            timestamp=timestamp,
            metadata=metadata,
            source_ref=check_id(source_ref, where="source_ref"),
            embed_steps=bool(embed_steps),
        )

    def trajectories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        ids: list[str] | None = None,
    ) -> list[Trajectory]:
        """Stored trajectories in scope, rebuilt with their steps and step ids."""
        from .engine import load_trajectories

        return load_trajectories(self.host, check_scope(user_id, agent_id, session_id, required=False), ids)

    def learn_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        min_support: int = 2,
        validator: Any = None,
        llm: Any = None,
        merge_threshold: float | None = 0.92,
    ) -> LearnReport:
        """Mine tips from every stored trajectory in scope (rules; plus `llm` if given: an engramdb.llm.LLMClient
        or a callable prompt -> JSON), validate, merge with the tips already stored, and consolidate."""
        from .engine import learn

        # min_support and merge_threshold were checked by Memory (api.params.LearnRequest)
        scope = check_scope(user_id, agent_id, session_id, required=True)
        return learn(
            self.host,
            scope,
            min_support=min_support,
            validator=validator,
            llm=llm,
            merge_threshold=merge_threshold,
        )

    def tips(
        self,
        task_description: str,
        *,
        tools: Sequence[str] | None = None,
        errors: Sequence[str] | None = None,
        limit: int = 5,
        types: Sequence[str] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        track: bool = True,
        keep: Any = None,
    ) -> Guidance:
        """Tips for a new task, by task similarity, the tools at hand and the errors being seen; `.text` is a
        prompt-ready block and `.tip_ids` what to pass to `report_outcome`. Counts each tip as served."""
        from .engine import serve

        # the query's fields were checked by Memory (api.params.TipsQuery)
        scope = check_scope(user_id, agent_id, session_id, required=False)
        return serve(
            self.host,
            task_description,
            scope,
            tools=list(tools or []),
            errors=list(errors or []),
            limit=limit,
            types=list(types) if types else None,
            track=track,
            keep=keep,
        )

    def report_outcome(self, tip_ids: Sequence[str], outcome: str, *, validator: Any = None) -> list[Tip]:
        """Close the loop: what happened on the task the tips were served for (success, failure or partial).
        Tips whose utility falls are retired when the validator agrees. Returns the updated tips."""
        from .engine import report_outcome

        # tip_ids and outcome were checked by Memory (api.params.OutcomeRequest)
        return report_outcome(
            self.host,
            list(tip_ids),
            outcome,
            validator=validator,
        )

    def tip_provenance(self, tip_id: str) -> dict[str, Any]:
        """The tip, the exact step episodes it was drawn from, and their trajectories."""
        from .engine import provenance

        return provenance(self.host, tip_id)

    def list_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        status: str | None = "active",
        tip_type: str | None = None,
        order: str = "recorded_at",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Tip]:
        from .engine import load_tip_records, tip_from_record

        scope = check_scope(user_id, agent_id, session_id, required=False)
        _check_tip_query(status, tip_type, order)
        recs = load_tip_records(self.host, scope, status=status, tip_type=tip_type, order=order, limit=limit,
                                offset=offset)
        return [tip_from_record(r) for r in recs]

    def count_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        status: str | None = "active",
        tip_type: str | None = None,
    ) -> int:
        from .engine import count_tip_records

        scope = check_scope(user_id, agent_id, session_id, required=False)
        _check_tip_query(status, tip_type, "recorded_at")
        return count_tip_records(self.host, scope, status=status, tip_type=tip_type)


TIP_ORDERS = ("recorded_at", "-recorded_at", TIP_ORDER)


def _check_tip_query(status: Any, tip_type: Any, order: Any) -> None:
    from .model import TIP_TYPES

    if status not in (None, "active", "retired"):
        raise ValidationError("status must be 'active', 'retired' or None (both)")
    if tip_type is not None and tip_type not in TIP_TYPES:
        raise ValidationError(f"tip_type must be one of {', '.join(TIP_TYPES)} (or None: every type)")
    if order not in TIP_ORDERS:
        raise ValidationError(f"order must be one of {', '.join(TIP_ORDERS)}")


def _parse_one(task: Any, steps: Any, outcome: Any, metrics: Any, format: str) -> Trajectory:
    from .parse import make_trajectory, parse_trajectory

    if isinstance(task, str):
        if steps is None:
            raise ValidationError("add_trajectory: give steps with a task string (or pass framework JSON)")
        if outcome is None:
            raise ValidationError("trajectory.outcome: missing (success, failure or partial)")
        return make_trajectory(task, list(steps) if not isinstance(steps, list) else steps, outcome, metrics)
    if steps is not None:
        raise ValidationError("add_trajectory: steps are given inside the JSON; do not pass them twice")
    return parse_trajectory(task, outcome=outcome, metrics=metrics, format=format)
