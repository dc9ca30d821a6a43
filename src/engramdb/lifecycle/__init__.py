"""Memory lifecycle: knowledge update (update.py), consolidation (consolidate.py), forgetting and purge (forget.py)."""
