"""Who may read a memory among agents: private to the agent that wrote it, shared with named agents, or in a
space (a team or project scope) that agents are granted read or write on.

On a memory (metadata): "space": "<name>" or "shared_with": ["agent-b", ...]; neither means private to its
agent_id (a memory with no agent_id belongs to the user and is not agent-private). The writing agent is the
record's agent_id, kept as provenance. Grants are kept in the store: {space: {agent_id: "read" | "write"}}.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from ..errors import ValidationError
from ..model import MemoryRecord

GRANTS_KEY = "privacy.grants"
SPACE_KEY = "space"
SHARED_KEY = "shared_with"
Access = Literal["read", "write"]
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


class AccessDenied(ValidationError):
    """An agent wrote to a space it holds no write grant on."""


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValidationError(f"{what} must be 1-128 characters of letters, digits and _.:@-, got {value!r}")
    return value


def load_grants(store: Any) -> dict[str, dict[str, str]]:
    raw = store.get_meta(GRANTS_KEY)
    return json.loads(raw) if raw else {}


def set_grant(store: Any, space: str, agent_id: str, access: str | None) -> dict[str, dict[str, str]]:
    """Give `agent_id` read or write on `space` (write includes read); None revokes."""
    check_name(space, "space")
    check_name(agent_id, "agent_id")
    if access not in ("read", "write", None):
        raise ValidationError(f"access must be 'read' or 'write', got {access!r}")
    with store.transaction():  # read-modify-write under the store's write lock
        grants = load_grants(store)
        if access is None:
            grants.get(space, {}).pop(agent_id, None)
            if not grants.get(space):
                grants.pop(space, None)
        else:
            grants.setdefault(space, {})[agent_id] = access
        store.set_meta(GRANTS_KEY, json.dumps(grants, sort_keys=True))
    return grants


def check_visibility(meta: dict[str, Any]) -> None:
    if SPACE_KEY in meta:
        check_name(meta[SPACE_KEY], "metadata.space")
    if SHARED_KEY in meta:
        shared = meta[SHARED_KEY]
        if not isinstance(shared, list) or not shared:
            raise ValidationError("metadata.shared_with must be a non-empty list of agent ids")
        for a in shared:
            check_name(a, "metadata.shared_with entries")


def check_write(rec: MemoryRecord, grants: dict[str, dict[str, str]]) -> None:
    """A write into a space needs the writing agent's write grant (a memory without agent_id is the user's own)."""
    space = rec.metadata.get(SPACE_KEY)
    if space is None or rec.agent_id is None:
        return
    if grants.get(space, {}).get(rec.agent_id) != "write":
        raise AccessDenied(f"agent {rec.agent_id!r} has no write grant on space {space!r}")


def can_read(rec: MemoryRecord, agent_id: str | None, grants: dict[str, dict[str, str]]) -> bool:
    """Whether an audience (agent_id, or None for a purpose-only audience) may see this memory at all."""
    if agent_id is not None and rec.agent_id == agent_id:
        return True  # its own memory
    space = rec.metadata.get(SPACE_KEY)
    if space is not None:
        return agent_id is not None and grants.get(space, {}).get(agent_id) in ("read", "write")
    shared = rec.metadata.get(SHARED_KEY)
    if isinstance(shared, list):
        return agent_id is not None and agent_id in shared
    return rec.agent_id is None  # private to its agent unless it has none
