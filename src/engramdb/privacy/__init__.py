"""Privacy: sensitivity labels, secrets kept out of the store, disclosure policies, an audit log of what went to
whom, and shared memory spaces for many agents. See docs/privacy.md.

- labels.py: the categories, and the offline classifier (embedding prototypes + patterns) or the LLM
- secrets.py: credentials and identifiers found on write: refused, masked or encrypted (AES-GCM)
- policy.py: who may see which category (allow / deny / redact per audience), per tenant and per user
- audit.py: each disclosure to an audience, queryable per user, with retention
- spaces.py: private / shared-with / space visibility and per-agent grants
- engine.py: the hooks the Memory API calls on write and before results leave
"""

from __future__ import annotations

from .config import PrivacyConfig
from .labels import CATEGORIES
from .policy import Audience, Policy, Rule

__all__ = ["CATEGORIES", "Audience", "Policy", "PrivacyConfig", "Rule"]
