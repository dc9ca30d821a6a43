"""Lifecycle methods of `Memory` (extraction, knowledge update, consolidation, forgetting, purge).

Mixed into `Memory`; see issue "Memory lifecycle".
"""

from __future__ import annotations


class LifecycleMixin:
    """Filled in by the lifecycle work: consolidate(), forget(), purge(), facts, as_of..."""
