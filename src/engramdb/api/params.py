"""The input of each operation, defined once.

These models are the one typed surface of EngramDB: `Memory` validates its keyword arguments through them,
the REST request models are these models (server/models.py), the MCP tools take their parameters from the
same annotated types (mcp/server.py), and the CLI's help texts come from the same descriptions
(cli/). So a limit, a default or a description changes in one place, and the same bad input gets the same
message everywhere.

Models refuse unknown fields, and an optional field is left out rather than sent as null. Types follow
JSON: an integer is 5 (not "5", not true), a time is ISO-8601 with a zone. The Python API also takes
datetimes and epoch seconds: `Memory` turns those into aware datetimes before it validates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from ..errors import ValidationError
from ..ingest.normalize import MAX_METADATA_DEPTH, _scan
from ..model import MAX_ID_CHARS, MAX_TEXT_CHARS
from ..store.base import MAX_META_KEY_CHARS, META_KEY_PATTERN
from ..timeutil import parse_time

# -- limits: one set, for every interface ------------------------------------------------------------
MAX_LIMIT = 1000  # results of one search or context query
MAX_PAGE = 10_000  # memories of one `list` page (a listing reads rows, it does not rank them)
MAX_OFFSET = 2**62  # far past any store, and inside SQLite's 64-bit integers once a page is added
DEFAULT_SEARCH_LIMIT = 10
DEFAULT_CONTEXT_LIMIT = 50
MIN_TOKENS = 16  # a context block's budget
MAX_TOKENS = 100_000
DEFAULT_MAX_TOKENS = 1000
MAX_KINDS = 20
MAX_FILTER_KEYS = 32
MAX_MESSAGES = 1000  # turns in one add
MAX_IDS = 10_000  # ids in one forget or purge
MAX_TIPS = 100
ORDERS = ("relevance", "time", "-time")
MODES = ("default", "bm25", "dense", "rrf")
LIST_ORDERS = ("occurred_at", "-occurred_at", "recorded_at", "-recorded_at")

# What the engine accepts, written so a client (or a fuzzer) that follows the spec is never refused:
# text has a non-blank character and no NUL, ids are short, kinds are identifiers, times carry a zone.
TEXT_RE = r"^[^\x00]*[^\s\x00][^\x00]*$"
KIND_RE = r"^[a-z][a-z0-9_]{0,31}$"
META_KEY_RE = META_KEY_PATTERN  # no empty dot segments ('a.', 'a..b'): the store's own rule


def _text_length(value: str, info: ValidationInfo) -> str:
    # The length limit is the store's configuration (MemoryConfig.max_text_chars); the spec states the default.
    limit = (info.context or {}).get("max_text_chars", MAX_TEXT_CHARS)
    if len(value) > limit:
        raise ValueError(f"{len(value):,} characters is over the limit of {limit:,}")
    return value


Text = Annotated[
    str,
    StringConstraints(min_length=1, pattern=TEXT_RE),
    AfterValidator(_text_length),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": TEXT_RE}),
]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=TEXT_RE)]
Kind = Annotated[str, StringConstraints(pattern=KIND_RE)]
NO_NUL_RE = r"^[^\x00]*$"
NoNul = Annotated[str, StringConstraints(pattern=NO_NUL_RE)]
# Metadata: any JSON object whose strings (keys included) hold no NUL character.
MetaValue = TypeAliasType(
    "MetaValue", "NoNul | int | float | bool | None | list[MetaValue] | dict[NoNul, MetaValue]"
)


def _shallow(value: Any) -> Any:
    # Before pydantic walks the tree: a very deep one would end in its recursion limit, not in our message.
    if isinstance(value, dict) and _scan(value)[0] > MAX_METADATA_DEPTH:
        raise ValueError(f"nested more than {MAX_METADATA_DEPTH} levels deep")
    return value


Metadata = Annotated[dict[NoNul, MetaValue], BeforeValidator(_shallow)]
MetaKey = Annotated[str, StringConstraints(max_length=MAX_META_KEY_CHARS, pattern=META_KEY_RE)]


def _utc(dt: datetime) -> datetime:
    try:
        return dt.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise ValueError("time out of range once converted to UTC") from exc


_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would also read numbers (and numeric strings) as epoch seconds; the spec says ISO-8601 text.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_RE.match(value):
        raise ValueError("expected an ISO-8601 date-time with a time zone, e.g. 2024-05-08T13:56:00Z")
    return value


When = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_utc)]


def _json_int(value: Any) -> Any:
    # JSON Schema's "integer": 5 and 5.0 are integers; "5" and true are not (pydantic's lax mode takes both).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    return value


# -- the annotated field types: constraints and the one description of each ------------------------------
UserId = Annotated[Ident, Field(description="Whose memory (a user).")]
AgentId = Annotated[Ident, Field(description="Which agent.")]
SessionId = Annotated[Ident, Field(description="Which conversation/session.")]
Query = Annotated[Text, Field(description="What to look for, in natural language.")]
Limit = Annotated[
    int,
    Field(ge=1, le=MAX_LIMIT, description=f"How many results at most (1 to {MAX_LIMIT})."),
    BeforeValidator(_json_int),
]
MaxTokens = Annotated[
    int,
    Field(ge=MIN_TOKENS, le=MAX_TOKENS, description=f"Token budget of the block ({MIN_TOKENS} to {MAX_TOKENS:,})."),
    BeforeValidator(_json_int),
]
Threshold = Annotated[
    float,
    Field(ge=0, le=1, description="Drop results whose score (0 to 1) is below this."),
    BeforeValidator(_json_number),
]
AUDIENCE_ID_RE = r"^[A-Za-z0-9_.:@-]{1,256}$"  # privacy/policy.py's rule for agent ids and purposes
AudienceId = Annotated[str, StringConstraints(pattern=AUDIENCE_ID_RE)]


class AudienceSpec(BaseModel):
    """An audience as an object: an agent, a purpose, or both (the spec says what privacy/policy.py accepts)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "anyOf": [
                {"required": ["agent_id"], "properties": {"agent_id": {"type": "string"}}},
                {"required": ["purpose"], "properties": {"purpose": {"type": "string"}}},
            ]
        },
    )

    agent_id: AudienceId | None = None
    purpose: AudienceId | None = None

    @model_validator(mode="after")
    def _one(self) -> AudienceSpec:
        if not (self.agent_id or self.purpose):
            raise ValueError("an audience needs an agent_id or a purpose")
        return self


Audience = Annotated[
    Annotated[str, StringConstraints(pattern=r"^(purpose:|agent:)?[A-Za-z0-9_.:@-]{1,256}$")] | AudienceSpec,
    Field(description="Who receives the results: an agent id, 'purpose:<label>', or {\"agent_id\": ..., "
                      "\"purpose\": ...}. Disclosure policies are enforced for it and each result served is "
                      "audited; leave it out when the caller owns the data."),
]
Importance = Annotated[
    float, Field(ge=0, le=1, description="0 (trivial) to 1 (critical)."), BeforeValidator(_json_number)
]
# Metadata filters: top-level keys, matched by equality on scalar values.
MetaFilter = Annotated[
    dict[MetaKey, str | int | float | bool | None],
    Field(
        max_length=MAX_FILTER_KEYS,
        json_schema_extra={"additionalProperties": False},
        description="Metadata equality, e.g. {'topic': 'work'}.",
    ),
]
Kinds = Annotated[
    list[Kind], Field(max_length=MAX_KINDS, description="Only these kinds (episode, fact, summary, ...).")
]
Since = Annotated[When, Field(description="Only memories that occurred at or after this time (ISO-8601).")]
Until = Annotated[When, Field(description="Only memories that occurred before this time (ISO-8601).")]
AsOf = Annotated[When, Field(description="Answer as of this time: what was valid (and said) then (ISO-8601).")]
Order = Annotated[
    Literal["relevance", "time", "-time"],
    Field(description="relevance (best first), time (oldest first) or -time (newest first)."),
]
Mode = Annotated[
    Literal["default", "bm25", "dense", "rrf"],
    Field(description="default (the full pipeline), or a baseline: bm25, dense, rrf."),
]
MemoryId = Annotated[Ident, Field(description="A memory id.")]
MemoryIds = Annotated[list[Ident], Field(min_length=1, max_length=MAX_IDS, description="Memory ids.")]


class StrictModel(BaseModel):
    """Unknown fields are refused; an optional field is omitted, never sent as null."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None]
            if nulls:
                raise ValueError(f"{', '.join(map(str, nulls))}: null is not allowed; leave the field out instead")
        return data


# An optional field: None in Python (left out of JSON), and absent from the spec's types.
ANY_SCOPE: list[JsonValue] = [{"required": ["user_id"]}, {"required": ["agent_id"]}, {"required": ["session_id"]}]


class Scope(StrictModel):
    """Whose memories: a user, an agent, a session, or a combination."""

    user_id: UserId | SkipJsonSchema[None] = None
    agent_id: AgentId | SkipJsonSchema[None] = None
    session_id: SessionId | SkipJsonSchema[None] = None


class Turn(StrictModel):
    """One chat message ({role, content}) or speaker turn ({speaker, text, timestamp})."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["content"]}]}
    )

    role: Ident | SkipJsonSchema[None] = None
    content: Text | SkipJsonSchema[None] = None
    name: Ident | SkipJsonSchema[None] = None
    speaker: Ident | SkipJsonSchema[None] = None
    text: Text | SkipJsonSchema[None] = None
    timestamp: When | SkipJsonSchema[None] = None
    metadata: Metadata | SkipJsonSchema[None] = None
    source_ref: Ident | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _one_text(self) -> Turn:
        if (self.text is None) == (self.content is None):
            raise ValueError("a turn needs exactly one of 'text' or 'content'")
        return self


class AddOptions(Scope):
    """Everything about an add but the messages (the Python API takes more message shapes than JSON)."""

    timestamp: When | SkipJsonSchema[None] = Field(None, description="When it happened (ISO-8601 with a zone).")
    metadata: Metadata | SkipJsonSchema[None] = Field(None, description="Your tags, a JSON object.")
    kind: Kind = Field("episode", description="episode, fact, profile, summary, procedure, or your own identifier.")
    source_ref: Ident | SkipJsonSchema[None] = Field(None, description="Your reference for the source.")
    importance: Importance | SkipJsonSchema[None] = None
    expires_at: When | SkipJsonSchema[None] = Field(None, description="Forget it after this time (ISO-8601).")


class AddRequest(AddOptions):
    """`Memory.add`: text, a message, or a list of them, stored in one transaction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": ANY_SCOPE})

    messages: Text | Turn | Annotated[list[Text | Turn], Field(min_length=1, max_length=MAX_MESSAGES)] = Field(
        ..., description="Text, one message/turn, or a list of them: stored in one transaction."
    )


class SearchQuery(Scope):
    """`Memory.search`: hybrid search with the signals behind each hit."""

    query: Query
    limit: Limit = DEFAULT_SEARCH_LIMIT
    filters: MetaFilter | SkipJsonSchema[None] = None
    kinds: Kinds | SkipJsonSchema[None] = None
    since: Since | SkipJsonSchema[None] = None
    until: Until | SkipJsonSchema[None] = None
    mode: Mode = "default"
    as_of: AsOf | SkipJsonSchema[None] = None
    order: Order = "relevance"
    threshold: Threshold | SkipJsonSchema[None] = None
    audience: Audience | SkipJsonSchema[None] = None


class ContextQuery(Scope):
    """`Memory.context`: a prompt-ready block of the most relevant memories within a token budget."""

    query: Query
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS
    limit: Limit = DEFAULT_CONTEXT_LIMIT
    filters: MetaFilter | SkipJsonSchema[None] = None
    since: Since | SkipJsonSchema[None] = None
    until: Until | SkipJsonSchema[None] = None
    as_of: AsOf | SkipJsonSchema[None] = None
    threshold: Threshold | SkipJsonSchema[None] = None
    audience: Audience | SkipJsonSchema[None] = None


CLEARABLE = ("expires_at", "valid_to")
Clearable = Literal["expires_at", "valid_to"]


class UpdateRequest(StrictModel):
    """`Memory.update`: what to change; the previous version is kept in the history."""

    # at least one change; a time is either given or cleared, not both
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "allOf": [
        {"if": {"required": ["clear"], "properties": {"clear": {"contains": {"const": name}}}},
         "then": {"not": {"required": [name]}}} for name in CLEARABLE]})

    text: Text | SkipJsonSchema[None] = Field(None, description="The new text (re-embedded).")
    metadata: Metadata | SkipJsonSchema[None] = Field(None, description="The new metadata object.")
    importance: Importance | SkipJsonSchema[None] = None
    expires_at: When | SkipJsonSchema[None] = Field(None, description="Forget it after this time (ISO-8601).")
    occurred_at: When | SkipJsonSchema[None] = Field(None, description="When it happened (ISO-8601).")
    valid_to: When | SkipJsonSchema[None] = Field(None, description="When it stopped being true (ISO-8601).")
    clear: Annotated[list[Clearable], Field(min_length=1, max_length=len(CLEARABLE))] | SkipJsonSchema[None] = Field(
        None, description="Times to empty: expires_at (the memory no longer expires), valid_to (a fact closed "
                          "by mistake holds again).")

    @model_validator(mode="after")
    def _something(self) -> UpdateRequest:
        if not self.model_dump(exclude_none=True, exclude={"clear"}) and not self.clear:
            raise ValueError("update: nothing to change (give text, metadata, importance, a time or clear)")
        both = sorted({c for c in self.clear or () if getattr(self, c) is not None})
        if both:
            raise ValueError(f"update: {', '.join(both)} is both given and cleared")
        return self


class FactsQuery(StrictModel):
    """`Memory.facts`: structured facts, current ones by default."""

    user_id: UserId | SkipJsonSchema[None] = None
    agent_id: AgentId | SkipJsonSchema[None] = None
    subject: Ident | SkipJsonSchema[None] = Field(None, description="Only facts about this subject.")
    attribute: Ident | SkipJsonSchema[None] = Field(None, description="Only this attribute (lives_in, works_at...).")
    as_of: AsOf | SkipJsonSchema[None] = None
    include_history: bool = Field(False, description="Include superseded facts.")
    limit: Limit = MAX_LIMIT


_FORGET_SELECTORS: list[JsonValue] = [
    {"required": [k]} for k in ("ids", "user_id", "agent_id", "session_id", "kinds", "filters", "before")
]


class ForgetRequest(Scope):
    """`Memory.forget`: soft-delete by ids, or by a scope and filters; history keeps what was forgotten."""

    # something to select by: forgetting everything is not a default
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": _FORGET_SELECTORS
        },
    )

    ids: MemoryIds | SkipJsonSchema[None] = None
    kinds: Annotated[Kinds, Field(min_length=1)] | SkipJsonSchema[None] = None
    filters: Annotated[MetaFilter, Field(min_length=1)] | SkipJsonSchema[None] = None
    before: When | SkipJsonSchema[None] = Field(None, description="Only memories that occurred before this time.")
    cascade: bool = Field(True, description="Also forget memories derived only from the forgotten ones.")


class ExpireRequest(StrictModel):
    """`Memory.expire`: soft-delete memories whose expires_at has passed."""

    at: When | SkipJsonSchema[None] = Field(None, description="Expire as of this time (default: now).")


class ExtractRequest(StrictModel):
    """`Memory.extract`: facts from episodes not yet processed, or re-extracted from the given ones."""

    episode_ids: MemoryIds | SkipJsonSchema[None] = None
    extractor: Literal["rules", "llm"] | SkipJsonSchema[None] = Field(
        None, description="rules or llm (default: the configured one)."
    )


class TrajectoriesRequest(Scope):
    """`Memory.add_trajectories`: agent runs (native or framework JSON), stored in one transaction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": ANY_SCOPE})

    trajectories: Annotated[list[dict[str, Any] | list[Any]], Field(min_length=1, max_length=MAX_MESSAGES)] = Field(
        ..., description="Trajectories: {task, steps, outcome, ...} or a framework's message list."
    )
    metadata: Metadata | SkipJsonSchema[None] = None
    source_ref: Ident | SkipJsonSchema[None] = None
    embed_steps: bool = Field(False, description="Also embed each step (steps are always keyword-indexed).")


class LearnRequest(Scope):
    """`Memory.learn_tips`: mine tips from the stored trajectories of a scope."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": ANY_SCOPE})

    min_support: Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_json_int)] = Field(
        2, description="Runs a lesson must be seen in."
    )
    merge_threshold: Annotated[float, Field(gt=0, le=1), BeforeValidator(_json_number)] | SkipJsonSchema[None] = (
        Field(0.92, description="Similarity at which two tips merge.")
    )


class TipsQuery(Scope):
    """`Memory.tips`: what was learnt from past runs that applies to a new task."""

    task_description: Annotated[Text, Field(description="The task at hand, in words.")]
    tools: Annotated[list[Ident], Field(max_length=MAX_LIMIT)] | SkipJsonSchema[None] = Field(
        None, description="The tools at hand."
    )
    errors: Annotated[list[Text], Field(max_length=MAX_LIMIT)] | SkipJsonSchema[None] = Field(
        None, description="Errors being seen."
    )
    limit: Annotated[int, Field(ge=1, le=MAX_TIPS), BeforeValidator(_json_int)] = Field(
        5, description=f"How many tips at most (1 to {MAX_TIPS})."
    )
    types: Annotated[list[Literal["strategy", "recovery", "optimization", "warning"]], Field(max_length=4)] | (
        SkipJsonSchema[None]
    ) = Field(None, description="Only these tip types.")


class OutcomeRequest(StrictModel):
    """`Memory.report_outcome`: how the task the tips were served for went."""

    tip_ids: Annotated[list[Ident], Field(min_length=1, max_length=MAX_LIMIT)] = Field(
        ..., description="The tip ids that were served (Guidance.tip_ids)."
    )
    outcome: Literal["success", "failure", "partial"] = Field(..., description="success, failure or partial.")


class ImportRequest(StrictModel):
    """`Memory.import_`: records as written by export (one JSON object per JSONL line)."""

    records: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_IDS)] = Field(
        ..., description="The export's lines, each a JSON object."
    )
    recompute_embeddings: bool = Field(False, description="Re-embed instead of using the stored vectors.")
    skip_bad: bool = Field(False, description="Skip invalid records instead of importing nothing.")


# -- errors: one readable line, the same for the library and the REST API ------------------------------
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "union", "none"}


def _noise(error_type: str) -> bool:
    """A union branch of another type that did not match (the value was not meant as that type)."""
    return error_type.endswith(("_type", "_parsing")) or error_type == "none_required"
_PATTERN_HELP = {
    TEXT_RE: "must contain a visible character and no NUL character",
    KIND_RE: "must be a lowercase identifier such as episode, fact, profile, summary, procedure",
    META_KEY_RE: "keys must be simple identifiers (letters, digits, _ . -)",
    NO_NUL_RE: "contains a NUL character",
}


def error_message(err: Mapping[str, Any]) -> str:
    """pydantic's message for one error, with our regular expressions explained in words."""
    if err.get("type") == "timezone_aware":
        return "has no time zone; add one (e.g. Z or +00:00) so it is not misread"
    if err.get("type") == "string_pattern_mismatch":
        return _PATTERN_HELP.get(str((err.get("ctx") or {}).get("pattern")), str(err.get("msg")))
    msg = str(err.get("msg"))
    return msg.removeprefix("Value error, ")


def error_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": error_message(e), "type": str(e.get("type"))}
        for e in errors
    ]


def summary(details: list[dict[str, Any]], *, located: bool = True) -> str:
    """One readable line: 'limit: Input should be ...'. With `located` the first part of each location is
    where the value came from (body, query) and is dropped. Union-member tags (str, Turn, list[...]) are
    dropped, and the alternatives of a union are joined with 'or'."""
    if not details:
        return "invalid request"

    def where(d: dict[str, Any]) -> str:
        # keep field names and list indexes; drop pydantic's union-member tags (str, Turn, constrained-str...)
        parts = [p for p in d["loc"] if re.fullmatch(r"[a-z_][a-z0-9_]*|\d+", p) and p not in _TYPE_TAGS]
        # A whole-body check ('nothing to change') is located at just 'body': the library's message has no prefix.
        whole = len(parts) == 1 and d["type"] == "value_error"
        return ".".join(parts[1:] if located and (len(parts) > 1 or whole) else parts)

    # the error that says what is wrong beats a union's "not this type either" noise
    first = where(next((d for d in details if not _noise(d["type"])), details[0]))
    same = [d for d in details if where(d) == first]
    # In a union, the branches whose *type* did not match are noise when one branch of the right type failed.
    relevant = (
        [d for d in same if not _noise(d["type"])] or [d for d in same if d["type"] != "none_required"] or same
    )
    msgs = list(dict.fromkeys(d["msg"] for d in relevant))
    return f"{first}: {' or '.join(msgs)}" if first else msgs[0]


M = TypeVar("M", bound=BaseModel)


def check(model: type[M], values: Mapping[str, Any], *, max_text_chars: int | None = None) -> M:
    """Validate Python keyword arguments through `model` (None means "not given"), raising engramdb's
    `ValidationError` with the message the REST API gives for the same input."""
    data = {k: v for k, v in values.items() if v is not None}
    ctx = {"max_text_chars": max_text_chars} if max_text_chars is not None else None
    try:
        return model.model_validate(data, context=ctx)
    except PydanticValidationError as exc:
        raise ValidationError(summary(error_details(exc.errors()), located=False)) from None


_TIMES = ("timestamp", "expires_at", "since", "until", "as_of", "before", "at", "occurred_at", "valid_to")


def check_call(model: type[M], values: Mapping[str, Any], *, max_text_chars: int | None = None) -> M:
    """`check` for the Python API, which takes more than JSON: datetimes and epoch seconds for times (read
    here with the library's own messages; time strings are the model's to read, as in JSON), one kind as a
    string, and a list of kinds under filters' 'kind'."""
    data = dict(values)
    for name in _TIMES:
        # Text is left to the model, so a bad time string gets the message REST gives for it.
        if data.get(name) is not None and not isinstance(data[name], str):
            data[name] = parse_time(data[name], field=name)
    if isinstance(data.get("kinds"), str):
        data["kinds"] = [data["kinds"]]
    filters = data.get("filters")
    if isinstance(filters, dict) and "kind" in filters:
        data["filters"] = {k: v for k, v in filters.items() if k != "kind"}  # kinds, checked by Memory
    return check(model, data, max_text_chars=max_text_chars)


_SCHEMA_KEYS = ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern", "format", "enum",
                "minItems", "maxItems")


@functools.cache
def _properties(model: type[BaseModel]) -> dict[str, Any]:
    props: dict[str, Any] = model.model_json_schema()["properties"]
    return props


def schema_field(model: type[BaseModel], name: str, description: str | None = None) -> Any:
    """A `Field` that states one field's constraints and description in a JSON schema without enforcing
    them: for the MCP tools, whose arguments `Memory` validates (so a bad value gets the one message every
    interface gives, not the tool framework's)."""
    prop = _properties(model)[name]
    extra = {k: v for k, v in prop.items() if k in _SCHEMA_KEYS}
    return Field(description=description or prop.get("description"), json_schema_extra=extra or None)


def field_help(model: type[BaseModel], name: str) -> str:
    """The description of one field, for a CLI option's help."""
    return model.model_fields[name].description or ""


def above_threshold(results: list[Any], threshold: float | None) -> list[Any]:
    """Results whose `score` is at least `threshold` (all of them when it is None)."""
    return results if threshold is None else [r for r in results if r.score >= threshold]


__all__ = [
    "AddOptions",
    "AddRequest",
    "ContextQuery",
    "ExpireRequest",
    "ExtractRequest",
    "FactsQuery",
    "ForgetRequest",
    "ImportRequest",
    "LearnRequest",
    "OutcomeRequest",
    "Scope",
    "SearchQuery",
    "TipsQuery",
    "TrajectoriesRequest",
    "Turn",
    "UpdateRequest",
    "check",
    "field_help",
]
