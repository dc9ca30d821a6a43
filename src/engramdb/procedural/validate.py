"""The validator that gates what enters procedural memory and what leaves it (after PREPING's Validator).

Admission: a plan or a shortcut (strategy, optimization) needs `min_support` trajectories behind it; a lesson
from an error (recovery, warning) needs `lesson_support` (1: a lesson seen once is served, labelled with its
support, until a better-supported recovery for the same error replaces it); and a recovery tip must have
helped more often than the same change failed to help.

Retirement: a tip is retired only when its outcomes after serving are both numerous and bad, and the evidence
against it outweighs the trajectories that support it: a single unlucky task cannot erase a well-supported
tip, and a tip nobody has tried yet is never retired.
"""

from __future__ import annotations

from typing import Any, Protocol

from .model import Tip


class Validator(Protocol):
    def admit(self, tip: Tip, *, contra: int = 0, trajectories: list[Any] | None = None) -> tuple[bool, str]: ...

    def retire(self, tip: Tip) -> tuple[bool, str]: ...


class RuleValidator:
    def __init__(
        self,
        *,
        min_support: int = 2,
        lesson_support: int = 1,
        min_reports: int = 5,
        retire_below: float = 0.35,
    ) -> None:
        if min_support < 1 or lesson_support < 1 or min_reports < 1 or not 0 < retire_below < 1:
            raise ValueError("min_support, lesson_support and min_reports must be >= 1, retire_below in (0, 1)")
        self.min_support = min_support
        self.lesson_support = lesson_support
        self.min_reports = min_reports
        self.retire_below = retire_below

    def admit(self, tip: Tip, *, contra: int = 0, trajectories: list[Any] | None = None) -> tuple[bool, str]:
        if tip.origin == "llm":
            # an LLM generalises from one run, so no support threshold; but it must cite real steps and tools
            if not tip.source_steps:
                return False, "the LLM cited no existing step (no provenance)"
            used = {s.tool for t in trajectories or [] for s in t.steps if s.tool}
            named = {x for x in (tip.tool, tip.call_before, *tip.plan, *tip.skip) if x}
            if trajectories and named - used:
                return False, f"the LLM named tools the runs never used: {', '.join(sorted(named - used))}"
            return True, "ok"
        # a lesson from an error (recovery, warning) is kept from its first run, its support shown with it:
        # with few runs it is all there is; plans and shortcuts need `min_support` runs to be a pattern
        need = min(self.lesson_support, self.min_support) if tip.type in ("recovery", "warning") else self.min_support
        if tip.support < need:
            return False, f"support {tip.support} < {need}"
        if tip.type == "recovery" and contra >= tip.support:
            return False, f"the same change failed to help {contra} times vs {tip.support} successes"
        if tip.type == "strategy" and len(tip.plan) < 2:
            return False, "a one-tool plan is not a strategy"
        return True, "ok"

    def retire(self, tip: Tip) -> tuple[bool, str]:
        reports = tip.successes_after + tip.failures_after
        if reports < self.min_reports:
            return False, f"only {reports} outcomes reported (< {self.min_reports})"
        if tip.utility >= self.retire_below:
            return False, f"utility {tip.utility:.2f} >= {self.retire_below}"
        if tip.failures_after <= tip.support:
            return False, f"{tip.failures_after} failures after serving do not outweigh support {tip.support}"
        return True, (
            f"utility {tip.utility:.2f} < {self.retire_below} after {reports} outcomes "
            f"({tip.failures_after} failures > support {tip.support})"
        )
