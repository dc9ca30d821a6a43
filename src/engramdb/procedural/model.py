"""The procedural-memory data model: trajectories (what an agent did) and tips (what it learned).

Limits (documented in docs/procedural.md): a trajectory has 1..MAX_STEPS steps; observations longer than
MAX_OBSERVATION_CHARS, errors longer than MAX_ERROR_CHARS and thoughts longer than MAX_THOUGHT_CHARS are
truncated (with a visible marker and `truncated=True` on the step) rather than refused, because tool outputs
are routinely huge and the head is what matters for learning. Everything else that is wrong is refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_STEPS = 500
MAX_OBSERVATION_CHARS = 2_000
MAX_ERROR_CHARS = 1_000
MAX_THOUGHT_CHARS = 2_000
MAX_ARGS_CHARS = 4_000
MAX_TASK_CHARS = 4_000

Outcome = Literal["success", "failure", "partial"]
OUTCOMES: tuple[str, ...] = ("success", "failure", "partial")
# Spellings agent frameworks use for the same three outcomes; anything else is refused.
_OUTCOME_ALIASES = {
    "success": "success",
    "succeeded": "success",
    "successful": "success",
    "completed": "success",
    "complete": "success",
    "passed": "success",
    "pass": "success",
    "ok": "success",
    "failure": "failure",
    "failed": "failure",
    "fail": "failure",
    "error": "failure",
    "partial": "partial",
    "partial_success": "partial",
    "partially_completed": "partial",
}

TipType = Literal["strategy", "recovery", "optimization", "warning"]
TIP_TYPES: tuple[str, ...] = ("strategy", "recovery", "optimization", "warning")


def normalize_outcome(value: object) -> str:
    """Map an outcome spelling to success|failure|partial, or raise ValueError naming the accepted ones."""
    if isinstance(value, bool):
        return "success" if value else "failure"
    if isinstance(value, str) and value.strip().lower() in _OUTCOME_ALIASES:
        return _OUTCOME_ALIASES[value.strip().lower()]
    raise ValueError(f"unknown outcome {value!r}: use one of {', '.join(OUTCOMES)}")


_MARK = re.compile(r" …\[truncated [\d,]+ chars\]$")


def _truncate(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    if len(text) <= limit + 40 and _MARK.search(text):
        return text, False  # already cut (a stored step read back): keep the original count
    return text[:limit] + f" …[truncated {len(text) - limit:,} chars]", True


class Step(BaseModel):
    """One agent step: an optional thought, an action (a tool call or free text), and what came back."""

    thought: str | None = None
    tool: str | None = None  # the tool called; None for a non-tool action (e.g. a final answer)
    args: dict[str, Any] = Field(default_factory=dict)
    action: str | None = None  # free-text action when there is no tool call
    observation: str | None = None
    error: str | None = None  # set when the step failed
    truncated: bool = False

    @field_validator("tool")
    @classmethod
    def _tool(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or len(v) > 128):
            raise ValueError("tool name must be a non-empty string of at most 128 characters")
        return v.strip() if v else v

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):  # OpenAI sends arguments as a JSON string
            try:
                v = json.loads(v) if v.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"args: not valid JSON ({exc.msg})") from exc
        if not isinstance(v, dict):
            raise ValueError(f"args must be an object, got {type(v).__name__}")
        return v

    @model_validator(mode="after")
    def _limits(self) -> Step:
        if self.tool is None and not (self.action or self.thought or self.observation or self.error):
            raise ValueError("a step needs at least one of tool, action, thought, observation or error")
        try:
            raw = json.dumps(self.args, ensure_ascii=False, default=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"args are not JSON-serialisable: {exc}") from exc
        if len(raw) > MAX_ARGS_CHARS:
            raise ValueError(f"args: {len(raw):,} characters of JSON is over the limit of {MAX_ARGS_CHARS:,}")
        cut = False
        for name, limit in (
            ("observation", MAX_OBSERVATION_CHARS),
            ("error", MAX_ERROR_CHARS),
            ("thought", MAX_THOUGHT_CHARS),
            ("action", MAX_THOUGHT_CHARS),
        ):
            value, was_cut = _truncate(getattr(self, name), limit)
            if was_cut:
                object.__setattr__(self, name, value)
                cut = True
        if cut:
            object.__setattr__(self, "truncated", True)
        return self

    @property
    def failed(self) -> bool:
        return bool(self.error)

    def call_text(self) -> str:
        if self.tool is None:
            return self.action or "(no action)"
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in self.args.items())
        return f"{self.tool}({args})"

    def text(self, index: int) -> str:
        """The searchable text of the step's episode."""
        parts = [f"step {index}: {self.call_text()}"]
        if self.thought:
            parts.insert(0, f"thought: {self.thought}")
        if self.error:
            parts.append(f"-> error: {self.error}")
        elif self.observation:
            parts.append(f"-> {self.observation}")
        return " ".join(parts)


class Metrics(BaseModel):
    steps: int | None = Field(default=None, ge=0)
    cost: float | None = Field(default=None, ge=0)
    time_s: float | None = Field(default=None, ge=0)


class Trajectory(BaseModel):
    """One attempt at a task, with its steps and how it ended."""

    task: str
    steps: list[Step]
    outcome: Outcome
    metrics: Metrics = Field(default_factory=Metrics)
    id: str | None = None  # the header episode id, once stored
    step_ids: list[str] = Field(default_factory=list)  # episode ids of the steps, once stored
    source_ref: str | None = None

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("task must be a non-empty string")
        if len(v) > MAX_TASK_CHARS:
            raise ValueError(f"task: {len(v):,} characters is over the limit of {MAX_TASK_CHARS:,}")
        return v.strip()

    @field_validator("outcome", mode="before")
    @classmethod
    def _outcome(cls, v: object) -> str:
        return normalize_outcome(v)

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[Step]) -> list[Step]:
        if not v:
            raise ValueError("a trajectory needs at least one step")
        if len(v) > MAX_STEPS:
            raise ValueError(f"{len(v):,} steps is over the limit of {MAX_STEPS:,}")
        return v

    @property
    def n_steps(self) -> int:
        return self.metrics.steps if self.metrics.steps is not None else len(self.steps)

    def tools(self) -> list[str]:
        return sorted({s.tool for s in self.steps if s.tool})

    def summary(self) -> str:
        errors = sum(1 for s in self.steps if s.failed)
        return f"task: {self.task} | outcome: {self.outcome} in {self.n_steps} steps ({errors} errors)"


class Tip(BaseModel):
    """A learning, stored as a `procedure` memory. The structured fields make it machine-actionable;
    `text` is what goes in a prompt."""

    type: TipType
    text: str
    key: str  # canonical identity: tips with the same key say the same thing and are merged
    tool: str | None = None
    error_signature: str | None = None
    fix_args: dict[str, Any] = Field(default_factory=dict)  # recovery: add these args to `tool`
    call_before: str | None = None  # recovery: call this tool before retrying `tool`
    use_instead: str | None = None  # recovery: call this tool instead of `tool`
    avoid_args: dict[str, Any] = Field(default_factory=dict)  # warning: never call `tool` with these
    plan: list[str] = Field(default_factory=list)  # strategy: tool sequence that worked
    plan_args: dict[str, dict[str, Any]] = Field(default_factory=dict)  # strategy: constant args per tool
    skip: list[str] = Field(default_factory=list)  # optimization: tools successful runs did without
    task_keywords: list[str] = Field(default_factory=list)  # words the tasks it applies to share
    task_examples: list[str] = Field(default_factory=list)
    support: int = 1  # trajectories that support it
    source_trajectories: list[str] = Field(default_factory=list)
    source_steps: list[str] = Field(default_factory=list)
    evidence: str = ""  # one line: why the miner believes it
    origin: Literal["rules", "llm"] = "rules"
    id: str | None = None  # the procedure memory's id, once stored
    # Utility (ReMe): how often served, and what happened after.
    served: int = 0
    successes_after: int = 0
    failures_after: int = 0
    partials_after: int = 0  # recorded, but neither for nor against the tip
    status: Literal["active", "retired"] = "active"

    @property
    def utility(self) -> float:
        """Laplace-smoothed success rate after serving (0.5 when nothing is known yet)."""
        return (self.successes_after + 1) / (self.successes_after + self.failures_after + 2)

    def tools(self) -> list[str]:
        out = {t for t in (self.tool, self.call_before, self.use_instead) if t}
        out.update(self.plan)
        out.update(self.skip)
        return sorted(out)


class TipDraft(BaseModel):
    """What the LLM path returns per tip (prompts/extract_tips.md), before provenance is attached."""

    type: TipType
    text: str
    tool: str | None = None
    error_signature: str | None = None
    fix_args: dict[str, Any] = Field(default_factory=dict)
    call_before: str | None = None
    avoid_args: dict[str, Any] = Field(default_factory=dict)
    plan: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)
    task_keywords: list[str] = Field(default_factory=list)
    step_refs: list[int] = Field(default_factory=list)  # 0-based step indexes the tip is drawn from


class TipDraftList(BaseModel):
    tips: list[TipDraft] = Field(default_factory=list)


class ServedTip(BaseModel):
    """A tip as served for a task, with the score and the signals that selected it."""

    tip: Tip
    score: float
    signals: dict[str, float] = Field(default_factory=dict)


class Guidance(BaseModel):
    """What `tips()` returns: the selected tips and a prompt-ready block."""

    task: str
    tips: list[ServedTip] = Field(default_factory=list)
    text: str = ""

    @property
    def tip_ids(self) -> list[str]:
        return [s.tip.id for s in self.tips if s.tip.id]

    def __str__(self) -> str:
        return self.text
