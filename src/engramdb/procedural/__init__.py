"""Procedural memory: learn strategy, recovery, optimization tips and warnings from agent trajectories,
and serve them for new tasks. See docs/procedural.md.

    mem.add_trajectory("Order 2 mugs", steps=[...], outcome="success", agent_id="shopper")
    mem.learn_tips(agent_id="shopper")
    g = mem.tips("Order a lamp", tools=["search", "checkout"], agent_id="shopper")
    print(g.text)                        # prompt-ready guidance block
    mem.report_outcome(g.tip_ids, "success", agent_id="shopper")
"""

from __future__ import annotations

from .learn import error_signature, mine
from .model import (
    MAX_OBSERVATION_CHARS,
    MAX_STEPS,
    OUTCOMES,
    TIP_TYPES,
    Guidance,
    Metrics,
    ServedTip,
    Step,
    Tip,
    Trajectory,
)
from .parse import parse_trajectory
from .validate import RuleValidator, Validator

__all__ = [
    "MAX_OBSERVATION_CHARS",
    "MAX_STEPS",
    "OUTCOMES",
    "TIP_TYPES",
    "Guidance",
    "Metrics",
    "RuleValidator",
    "ServedTip",
    "Step",
    "Tip",
    "Trajectory",
    "Validator",
    "error_signature",
    "mine",
    "parse_trajectory",
]
