"""Procedural-memory methods of `Memory` (trajectories, tips, outcomes).

Mixed into `Memory`; see issue "Procedural memory".
"""

from __future__ import annotations


class ProceduralMixin:
    """Filled in by the procedural-memory work: add_trajectory(), tips(), report_outcome()..."""
