"""Disclosure policies (contextual integrity): which sensitivity categories may flow to which audience.

A rule says, for a category (or "*" for every category), to an audience ("any", "agent:<agent_id>" or
"purpose:<label>"): allow, deny, or redact (the memory is used, its sensitive sentences masked).
Policies are kept per tenant (the store) and per user; the first that speaks decides, in this order:

1. credentials never flow, whatever a policy says;
2. the user's own rules;
3. the tenant's rules, except that a tenant cannot open health or sexuality: those need the user's allow;
4. the defaults: health and sexuality denied, every other category allowed.

Within one policy the most specific matching rule wins (agent over purpose over any); among equally specific
ones, the most restrictive (deny over redact over allow). A memory with several categories gets the most
restrictive of their actions.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ValidationError

Action = Literal["allow", "deny", "redact"]
RESTRICTIVENESS: dict[str, int] = {"allow": 0, "redact": 1, "deny": 2}
NEVER_FLOW = frozenset({"credentials"})
USER_CONSENT = frozenset({"health", "sexuality"})  # closed unless the user allows them
_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,256}$")
_CAT_RE = re.compile(r"^(\*|[a-z][a-z0-9_]{0,31})$")


class Audience(BaseModel):
    """Who receives memories: an agent, a purpose (task label), or both. None of them is not an audience."""

    model_config = ConfigDict(frozen=True)

    agent_id: str | None = None
    purpose: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Audience:
        if not (self.agent_id or self.purpose):
            raise ValueError("an audience needs an agent_id or a purpose")
        for v in (self.agent_id, self.purpose):
            if v is not None and not _ID_RE.match(v):
                raise ValueError(f"audience ids are 1-256 characters of letters, digits and _.:@-, got {v!r}")
        return self

    @classmethod
    def parse(cls, value: object) -> Audience:
        """'agent-7' (an agent), 'purpose:billing', 'agent:a7', {'agent_id': ..., 'purpose': ...}, or an Audience."""
        try:
            if isinstance(value, Audience):
                return value
            if isinstance(value, str):
                if value.startswith("purpose:"):
                    return cls(purpose=value[len("purpose:") :])
                return cls(agent_id=value[len("agent:") :] if value.startswith("agent:") else value)
            if isinstance(value, dict):
                return cls(**value)
        except ValueError as exc:
            errors = getattr(exc, "errors", None)
            msg = str(errors()[0]["msg"]).removeprefix("Value error, ") if callable(errors) else str(exc)
            raise ValidationError(f"audience: {msg}") from exc
        raise ValidationError(f"audience must be an agent id, 'purpose:<label>' or a dict, got {value!r}")

    def label(self) -> str:
        parts = ([f"agent:{self.agent_id}"] if self.agent_id else []) + (
            [f"purpose:{self.purpose}"] if self.purpose else []
        )
        return " ".join(parts)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str
    audience: str = "any"  # any | agent:<id> | purpose:<label>
    action: Action

    @field_validator("category")
    @classmethod
    def _cat(cls, v: str) -> str:
        if not _CAT_RE.match(v):
            raise ValueError(f"category must be '*' or a lowercase identifier, got {v!r}")
        return v

    @field_validator("audience")
    @classmethod
    def _aud(cls, v: str) -> str:
        if v != "any" and not (v.startswith(("agent:", "purpose:")) and _ID_RE.match(v.split(":", 1)[1] or "!")):
            raise ValueError(f"audience must be 'any', 'agent:<id>' or 'purpose:<label>', got {v!r}")
        return v

    def specificity(self, audience: Audience) -> int:
        """3 agent, 2 purpose, 1 any; 0 when the rule does not match this audience."""
        if self.audience == "any":
            return 1
        kind, _, value = self.audience.partition(":")
        if kind == "agent":
            return 3 if audience.agent_id == value else 0
        return 2 if audience.purpose == value else 0


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)

    def decide(self, category: str, audience: Audience) -> str | None:
        """This policy's action for one category and audience, or None when no rule speaks."""
        best: tuple[int, int, str] | None = None
        for r in self.rules:
            if r.category not in (category, "*"):
                continue
            spec = r.specificity(audience) * 2 + (r.category == category)  # a named category beats '*'
            if r.specificity(audience) == 0:
                continue
            cand = (spec, RESTRICTIVENESS[r.action], r.action)
            if best is None or cand[:2] > best[:2]:
                best = cand
        return best[2] if best else None

    @classmethod
    def parse(cls, value: object) -> Policy:
        try:
            if isinstance(value, Policy):
                return value
            if isinstance(value, list):
                return cls(rules=value)
            if isinstance(value, dict):
                return cls(**value)
            if isinstance(value, str):
                return cls(**json.loads(value))
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"policy: {_one_line(exc)}") from exc
        raise ValidationError(f"policy must be a list of rules or {{'rules': [...]}}, got {type(value).__name__}")


def _one_line(exc: Exception) -> str:
    """A pydantic error's first problem as one line ("rules.0.action: Input should be ..."), else the text."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and (errs := errors()):
        loc = ".".join(str(x) for x in errs[0].get("loc", ()))
        msg = str(errs[0].get("msg", "")).removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    return " ".join(str(exc).split())


def decide(category: str, audience: Audience, tenant: Policy | None, user: Policy | None) -> str:
    if category in NEVER_FLOW:
        return "deny"
    if user is not None and (a := user.decide(category, audience)) is not None:
        return a
    if tenant is not None and (a := tenant.decide(category, audience)) is not None:
        if not (category in USER_CONSENT and a == "allow"):
            return a
    return "deny" if category in USER_CONSENT else "allow"


def decide_all(categories: set[str], audience: Audience, tenant: Policy | None, user: Policy | None) -> dict[str, str]:
    return {c: decide(c, audience, tenant, user) for c in sorted(categories)}


def strictest(actions: dict[str, str]) -> str:
    return max(actions.values(), key=RESTRICTIVENESS.__getitem__, default="allow")


def describe_defaults() -> dict[str, Any]:
    return {"never": sorted(NEVER_FLOW), "user_consent": sorted(USER_CONSENT), "otherwise": "allow"}
