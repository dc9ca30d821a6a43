"""`/v1/privacy/...`: disclosure policies, space grants and the audit log of disclosures, over REST.

Reading a policy or the grants needs read; a user's policy needs write, the tenant's policy and the grants
need admin, and so does the audit log (it says who saw what). A key bound to an audience changes nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ..api.params import When
from ..errors import ForbiddenError
from ..privacy.audit import Disclosure
from ..privacy.policy import describe_defaults
from .auth import Principal
from .keys import permits

NAME_RE = r"^[A-Za-z0-9_.:@-]{1,128}$"  # user ids, spaces, agent ids (privacy/spaces.py)
CATEGORY_RE = r"^[a-z][a-z0-9_]{0,31}$"
AUDIENCE_RE = r"^(purpose:|agent:)?[A-Za-z0-9_.@-][A-Za-z0-9_.:@-]{0,255}$"
IdQ = Annotated[str | None, Query(pattern=NAME_RE)]
NameP = Annotated[str, Path(pattern=NAME_RE)]
CategoryQ = Annotated[str | None, Query(pattern=CATEGORY_RE)]


class RuleIn(BaseModel):
    """One rule: for a category (or every one, `*`), to an audience, an action."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(pattern=r"^(\*|[a-z][a-z0-9_]{0,31})$", description="A category, or '*' for all.")
    audience: str = Field("any", pattern=r"^(any|(agent|purpose):[A-Za-z0-9_.:@-]{1,256})$",
                          description="'any', 'agent:<id>' or 'purpose:<label>'.")
    action: Literal["allow", "deny", "redact"]


class PolicyBody(BaseModel):
    """A policy: its rules replace the ones in place (an empty list clears it)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=1000, description="The rules (the most specific matching one wins).")


class PolicyOut(BaseModel):
    user_id: str | None = None
    rules: list[RuleIn]
    defaults: dict[str, Any]


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access: Literal["read", "write"] = "read"


class GrantsOut(BaseModel):
    grants: dict[str, dict[str, str]] = Field(description="space -> agent_id -> read | write")


class AuditOut(BaseModel):
    disclosures: list[Disclosure]


class SeenBy(BaseModel):
    agent_id: str | None
    purpose: str | None
    count: int
    last: datetime
    memory_ids: list[str]


class WhoHasSeenOut(BaseModel):
    user_id: str
    category: str | None
    audiences: list[SeenBy]


def _no_audience(p: Principal) -> None:
    if p.audience:
        raise ForbiddenError("a key bound to an audience cannot change privacy settings")


def router(memory: Callable[[Principal], Any], reader: Any, writer: Any, admin: Any) -> APIRouter:
    r = APIRouter(prefix="/v1/privacy", tags=["privacy"])

    def _policy_out(p: Principal, user_id: str | None) -> PolicyOut:
        pol = memory(p).privacy.get_policy(user_id=user_id)
        return PolicyOut(user_id=user_id, rules=[RuleIn(**x.model_dump()) for x in pol.rules],
                         defaults=describe_defaults())

    def _may_set(p: Principal, user_id: str | None) -> None:
        _no_audience(p)
        if user_id is None and not permits(p.permissions, "admin"):
            raise ForbiddenError("this key lacks the 'admin' permission (the tenant's policy)")

    @r.get("/policy", response_model=PolicyOut)
    def get_policy(p: Principal = reader, user_id: IdQ = None) -> PolicyOut:
        """The tenant's policy, or a user's (`user_id`), with the defaults that apply when no rule speaks."""
        return _policy_out(p, user_id)

    @r.put("/policy", response_model=PolicyOut)
    def set_policy(body: PolicyBody, p: Principal = writer, user_id: IdQ = None) -> PolicyOut:
        """Replace the tenant's policy (needs admin) or a user's (`user_id`, needs write)."""
        _may_set(p, user_id)
        memory(p).privacy.set_policy(body.model_dump(), user_id=user_id)
        return _policy_out(p, user_id)

    @r.delete("/policy", response_model=PolicyOut)
    def delete_policy(p: Principal = writer, user_id: IdQ = None) -> PolicyOut:
        """Remove the tenant's policy (needs admin) or a user's: the defaults apply again."""
        _may_set(p, user_id)
        memory(p).privacy.delete_policy(user_id=user_id)
        return _policy_out(p, user_id)

    @r.get("/grants", response_model=GrantsOut)
    def grants(p: Principal = reader) -> GrantsOut:
        """Every space's grants: which agents may read or write it."""
        return GrantsOut(grants=memory(p).privacy.grants())

    @r.put("/grants/{space}/{agent_id}", response_model=GrantsOut)
    def grant(space: NameP, agent_id: NameP, body: GrantBody | None = None, p: Principal = admin) -> GrantsOut:
        """Give an agent read or write (write includes read) on a space. Needs admin."""
        _no_audience(p)
        return GrantsOut(grants=memory(p).privacy.grant(space, agent_id, (body or GrantBody()).access))

    @r.delete("/grants/{space}/{agent_id}", response_model=GrantsOut)
    def revoke(space: NameP, agent_id: NameP, p: Principal = admin) -> GrantsOut:
        """Take an agent's grant on a space away. Needs admin."""
        _no_audience(p)
        return GrantsOut(grants=memory(p).privacy.revoke(space, agent_id))

    @r.get("/audit", response_model=AuditOut)
    def audit(
        p: Principal = admin,
        user_id: IdQ = None,
        category: CategoryQ = None,
        audience: Annotated[str | None, Query(pattern=AUDIENCE_RE)] = None,
        memory_id: Annotated[str | None, Query(max_length=256)] = None,
        since: Annotated[When | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> AuditOut:
        """Which memories went out to which audience, newest first. Needs admin."""
        return AuditOut(disclosures=memory(p).privacy.disclosures(
            user_id=user_id, category=category, audience=audience, memory_id=memory_id, since=since, limit=limit))

    @r.get("/audit/who", response_model=WhoHasSeenOut)
    def who_has_seen(
        user_id: Annotated[str, Query(pattern=NAME_RE)],
        p: Principal = admin,
        category: CategoryQ = None,
    ) -> WhoHasSeenOut:
        """Who has seen a user's memories (of one category): per audience, how many and the latest. Needs admin."""
        rows = memory(p).privacy.who_has_seen(user_id, category)
        return WhoHasSeenOut(user_id=user_id, category=category, audiences=[SeenBy(**x) for x in rows])

    return r
