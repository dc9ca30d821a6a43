# ruff: noqa: E501 - the rule table reads best one pattern per line
"""Rule-based extraction: clear first-person statements -> structured facts. No LLM, no model.

Deliberately narrow: it looks for explicit statements ("I moved to Berlin", "my
sister Anna", "I started working at X", "I love/hate Y") and prefers missing a
fact to inventing one. Questions, conditionals ("if I moved...") and wishes
("I'd love to live in...") are skipped. Measured precision/recall on a
hand-labelled set is in docs/lifecycle.md (tests/test_extract_rules.py prints it).

No NLP library: spaCy was considered but not measured. Its English models are not
on PyPI from the spaCy authors (only third-party re-uploads), and it would add
~100 MB of dependencies to a core that needs none, so these are plain rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..model import MemoryRecord
from .base import Fact, render, subject_of

_SENT_RE = re.compile(r"[^.!?\n]+[.!?]*")
_ADV = (
    r"(?:(?i:just|recently|finally|now|actually|also|officially|eventually|then|currently|still|really|absolutely|"
    r"totally|honestly|truly|kind of|kinda|sort of|so|literally|already|even)\s+){0,3}"
)
_I = r"\b(?i:I)\s+" + _ADV
_I_AND = r"(?:\b(?i:I)|(?<=\bI\b)[^,;.!?]*?\b(?i:and))\s+" + _ADV  # "I moved to X and started..."
_IM = r"\b(?i:I'm|I’m|I\s+am|Im)\s+" + _ADV
_IVE = r"\b(?i:I've|I’ve|I\s+have)\s+" + _ADV
_VAL = r"(?P<v>[^,;.!?]+)"
_PLACE = r"(?P<v>[^,;.!?]+(?:,\s*[A-Z][\w.-]*(?:\s+[A-Z][\w.-]*)*)?)"
_NAME = r"(?P<v>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|weekend"
_STOP_RE = re.compile(
    r"\s+(?:and|but|with|because|since|for|after|before|when|while|so|which|who|where|as|last|next|this|"
    r"yesterday|today|tomorrow|tonight|recently|now|ago|again|already|anymore|any more|lately|originally|"
    r"downtown|these days|by far|a lot|so much|very much|right now|at the moment|someday|one day|"
    r"in (?:the )?(?:morning|evening|afternoon|summer|winter|spring|fall|autumn)|in (?:19|20)\d\d|in (?:"
    + _MONTHS
    + r")|"
    r"on (?:" + _DAYS + r")|(?:a|one|two|three|four|five|six|few|several|\d+) (?:days?|weeks?|months?|years?))\b.*$",
    re.I,
)
_IN_PLACE_RE = re.compile(r"^(?:a|an|the|my)\s+[a-z][\w\s-]*?\s+in\s+(?P<p>[A-Z].*)$")
_HEDGE_RE = re.compile(
    r"\b(?:if|whether|unless|wish|maybe|might|would|could|should|want|wanna|hope|plan|planning|thinking|"
    r"considering|dream|imagine|pretend|not sure)\b|\b(?:I'd|I’d)\b",
    re.I,
)
_BAD_OBJECT_RE = re.compile(
    r"^(?:it|that|this|you|u|ya|them|him|her|us|to see|to hear|when|how|what|the way|being|your|ur|those|these|"
    r"everything|everyone|all of)\b",
    re.I,
)
_NOT_NAMES = frozenset(
    "I And But The A An Is Was Has Had Just So Who What When Where Our Your My His Her Their Its To In On At For With".split()
)
_OCCUPATIONS = (
    "accountant|actor|actress|architect|artist|baker|barista|carpenter|cashier|chef|cook|consultant|dentist|designer|"
    "developer|doctor|driver|economist|editor|electrician|engineer|farmer|firefighter|journalist|lawyer|librarian|"
    "manager|mechanic|musician|nurse|painter|pharmacist|photographer|physician|pilot|plumber|professor|programmer|"
    "psychologist|researcher|scientist|student|surgeon|teacher|therapist|translator|veterinarian|vet|waiter|"
    "waitress|writer|analyst|counselor|counsellor|paramedic|police officer|social worker|software engineer|tutor"
)
_RELATIONS = {
    "mom": "mother", "mum": "mother", "mother": "mother", "mommy": "mother",
    "dad": "father", "father": "father", "daddy": "father",
    "sister": "sister", "sis": "sister", "brother": "brother", "bro": "brother",
    "wife": "wife", "husband": "husband", "partner": "partner", "spouse": "partner",
    "girlfriend": "partner", "boyfriend": "partner", "fiance": "partner", "fiancé": "partner",
    "fiancee": "partner", "fiancée": "partner",
    "son": "son", "daughter": "daughter", "kid": "child", "child": "child",
    "friend": "friend", "buddy": "friend", "bestie": "friend",
    "cousin": "cousin", "aunt": "aunt", "uncle": "uncle", "niece": "niece", "nephew": "nephew",
    "grandma": "grandmother", "grandmother": "grandmother", "granny": "grandmother", "nana": "grandmother",
    "grandpa": "grandfather", "grandfather": "grandfather",
    "roommate": "roommate", "flatmate": "roommate", "boss": "boss", "colleague": "colleague", "coworker": "colleague",
    "dog": "pet", "cat": "pet", "puppy": "pet", "kitten": "pet", "pet": "pet", "bunny": "pet", "rabbit": "pet",
    "parrot": "pet", "hamster": "pet", "horse": "pet",
}  # fmt: skip
_REL_ALT = "|".join(sorted(_RELATIONS, key=len, reverse=True))
_REL_MOD = r"(?:(?i:best|older|younger|little|big|baby|twin|step|new|old|dear|lovely|sweet)\s+)?"

# (attribute, pattern, value kind). Value kinds: place, org, phrase, name, num, object; "=X" is a constant value.
_RULES: list[tuple[str, str, str]] = [
    # where the subject lives
    ("lives_in", _I + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", _IVE + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", r"\b(?i:we)\s+" + _ADV + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", _I + r"(?i:live|reside)\s+(?i:in)\s+" + _PLACE, "place"),
    ("lives_in", _IM + r"(?i:living|based|settled)\s+(?i:in)\s+" + _PLACE, "place"),
    ("lives_in", _IVE + r"(?i:been living|lived)\s+(?i:in)\s+" + _PLACE + r"(?=\s+(?i:for|since))", "place"),
    ("lives_in", r"\b(?i:I'll|I\s+will)\s+(?i:be\s+)?(?i:moving|relocating)\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", _IM + r"(?i:moving|relocating)\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", r"\b(?i:my)\s+(?i:new\s+)?(?i:home|apartment|flat|house|place)\s+(?i:is)\s+(?i:in)\s+" + _PLACE, "place"),
    ("lived_in", _I + r"(?i:used to live|lived)\s+(?i:in)\s+" + _PLACE, "place"),
    ("from", _IM + r"(?i:originally\s+)?(?i:from)\s+" + _PLACE, "place"),
    ("from", _I + r"(?i:come|came)\s+(?i:from)\s+" + _PLACE, "place"),
    ("from", _I + r"(?i:grew up)\s+(?i:in)\s+" + _PLACE, "place"),
    ("born_in", _I + r"(?i:was born)\s+(?i:in)\s+" + _PLACE, "place"),
    # work
    ("works_at", _I_AND + r"(?i:started|began|start)\s+(?i:working|work|a new job|a job|my new job|an internship|"
     r"a new position|a position)(?:\s+(?i:as)\s+(?i:a|an)\s+(?P<t>[\w -]+?))?\s+(?i:at|for|with)\s+" + _VAL, "org"),
    ("works_at", _I + r"(?i:started|began|start)\s+(?i:a new job|a job|my new job|a new position)\s+(?i:at|with)\s+"
     + _VAL, "org"),
    ("works_at", r"\b(?i:I|I'll|I\s+will)\s+" + _ADV + r"(?i:work|am working)\s+(?:(?i:remotely|full-time|part-time)\s+)?"
     r"(?i:at|for)\s+" + _VAL, "org"),
    ("works_at", _IM + r"(?i:working|employed)\s+(?i:at|for|by)\s+" + _VAL, "org"),
    ("works_at", _IVE + r"(?i:been working|worked)\s+(?i:at|for)\s+" + _VAL + r"(?=\s+(?i:for|since))", "org"),
    ("works_at", _I + r"(?i:joined)\s+(?P<v>(?:the\s+)?[A-Z][^,;.!?]*)", "org"),
    ("works_at", _I + r"(?i:got|landed|accepted)\s+(?i:a|an|the)\s+(?i:new\s+)?(?i:job|position|offer|internship)"
     r"\s+(?i:at|with|from)\s+" + _VAL, "org"),
    ("works_at", _I + r"(?i:was|got)\s+(?i:hired)\s+(?i:by|at)\s+" + _VAL, "org"),
    ("works_at-end", _I + r"(?i:quit|left|lost)\s+(?i:my)\s+(?i:job)(?:\s+(?i:at|with)\s+" + _VAL + ")?", "org"),
    ("works_at-end", _I + r"(?i:got fired|was fired|got laid off|was laid off)(?:\s+(?i:from)\s+" + _VAL + ")?", "org"),
    ("works_at-end", _I + r"(?i:gave|handed in|put in)\s+(?i:my\s+)?(?i:notice)\s+(?i:at|to)\s+" + _VAL, "org"),
    ("works_at-end", _I + r"(?i:retired)\b(?:\s+(?i:from)\s+" + _VAL + ")?", "org"),
    ("job_title", _I + r"(?i:work|am working)\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:working)\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _I + r"(?i:started|began|joined)[^,;.!?]*?\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:a|an)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r")\s+(?i:at)\s+[A-Z][^,;.!?]*)", "phrase"),
    ("job_title", _I + r"(?i:became)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _I + r"(?i:got promoted|was promoted)\s+(?i:to)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:a|an)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r"))\b", "phrase"),
    ("job_title", r"\b(?i:my)\s+(?i:job|profession|occupation)\s+(?i:is)\s+" + _VAL, "phrase"),
    # people and pets
    ("rel", r"\b(?i:my)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))(?:'s\s+(?i:name)\s+(?i:is)|\s+(?i:is\s+called|"
     r"is\s+named|named|called)|,)?\s+" + _NAME, "name"),
    ("rel", _I + r"(?i:have|got|adopted)\s+(?i:a|an)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))\s+(?i:named|called)\s+"
     + _NAME, "name"),
    ("rel", r"\b(?i:we)\s+" + _ADV + r"(?i:have|got|adopted)\s+(?i:a|an)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT
     + r"))\s+(?i:named|called)\s+" + _NAME, "name"),
    # identity
    ("name", r"\b(?i:my)\s+(?i:name\s+is)\s+" + _NAME, "name"),
    ("name", r"\b(?i:call\s+me)\s+" + _NAME, "name"),
    ("age", _IM + r"(?P<v>\d{1,3})\s+(?i:years?\s+old|yo)\b", "num"),
    ("age", _I + r"(?i:turned)\s+(?P<v>\d{1,3})\b", "num"),
    ("relationship_status", _I + r"(?i:got)\s+(?P<v>(?i:married|engaged|divorced|separated))\b", "status"),
    ("relationship_status", _IM + r"(?P<v>(?i:single|married|engaged|divorced|separated|widowed))\b", "status"),
    ("studies", _IM + r"(?i:studying|majoring in)\s+" + _VAL, "phrase"),
    ("studies", _I + r"(?i:study|major in)\s+" + _VAL, "phrase"),
    ("education", _I + r"(?i:graduated)\s+(?i:from)\s+" + _VAL, "org"),
    ("learning", _IM + r"(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", _I + r"(?i:started|began)\s+(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", _IVE + r"(?i:been learning)\s+" + _VAL, "phrase"),
    ("diet", _IM + r"(?i:a\s+)?(?P<v>(?i:vegetarian|vegan|pescatarian|keto))\b", "status"),
    ("allergy", _IM + r"(?i:allergic)\s+(?i:to)\s+" + _VAL, "phrase"),
    # preferences (objects)
    ("favorite", r"\b(?i:my)\s+(?i:favorite|favourite)\s+(?P<c>[a-zA-Z]+(?:\s+[a-zA-Z]+)?)\s+(?i:is)\s+" + _VAL, "phrase"),
    ("opinion=dislikes", _I + r"(?i:hate|dislike|detest|despise|loathe|can't stand|cannot stand|can’t stand|"
     r"don't like|do not like|don’t like|don't enjoy|do not enjoy|no longer like|no longer enjoy|"
     r"don't really like|am not into)\s+" + _VAL, "object"),
    ("opinion=dislikes", _IM + r"(?i:not a (?:big |huge )?fan of|not into|sick of|tired of|over)\s+" + _VAL, "object"),
    ("opinion=likes", _I + r"(?i:love|adore|enjoy|like|am into|am obsessed with|am a fan of)\s+" + _VAL, "object"),
    ("opinion=likes", _IM + r"(?i:a (?:big |huge )?fan of|into|obsessed with|passionate about|crazy about)\s+" + _VAL,
     "object"),
    ("opinion=likes", _IVE + r"(?i:grown to love|come to love|fallen in love with|started to like|started liking|come around on|"
     r"warmed up to)\s+"
     + _VAL, "object"),
    ("opinion=likes", _I + r"(?i:prefer)\s+(?P<v>[\w ]+?)\s+(?i:over|to|instead of)\b", "object"),
]  # fmt: skip
_COMPILED = [(attr, re.compile(pat), kind) for attr, pat, kind in _RULES]


def _trim(value: str) -> str:
    v = value.strip()
    prev = None
    while prev != v:
        prev = v
        v = _STOP_RE.sub("", v).strip(" '\"’-")
    return v


def _clean(value: str, kind: str) -> str | None:
    v = _trim(value)
    if not v:
        return None
    if kind == "place":
        m = _IN_PLACE_RE.match(v)
        if m:
            v = m.group("p")
        if v.split()[0].lower() in ("there", "here", "it", "that", "this", "somewhere", "where"):
            return None
    elif kind == "object":
        if _BAD_OBJECT_RE.match(v):
            return None
        if v.lower().startswith("to "):
            v = v[3:]
        # "running along the river in the mornings" -> "running": the thing liked, not where or when
        v = re.sub(
            r"\s+(?:in|at|on|during|along|around|near|by|through|across|from|into|every|outside|inside)\s+.*$", "", v
        )
    elif kind == "org" and v.split()[0].lower() in ("it", "there", "that", "this", "them", "home"):
        return None
    if len(v.split()) > 6:
        return None  # long captures are usually mis-parses: prefer a miss
    return v


def _sentences(text: str) -> Iterator[str]:
    for m in _SENT_RE.finditer(text):
        s = m.group(0).strip()
        if s and not s.endswith("?"):
            yield s


def _hedged(sentence: str, start: int) -> bool:
    """True when the match sits in a conditional/wish clause ("if I moved to...", "I'd love to...")."""
    before = sentence[:start]
    cut = max(before.rfind(","), before.rfind(";"), before.rfind(" but "))
    return bool(_HEDGE_RE.search(before[cut + 1 :] + sentence[start : start + 12]))


def extract_statements(text: str, subject: str) -> list[Fact]:
    """Facts stated in `text` by `subject` (first person)."""
    found: dict[tuple[str, str, bool], Fact] = {}
    for sentence in _sentences(text):
        for attr, rx, kind in _COMPILED:
            for m in rx.finditer(sentence):
                if _hedged(sentence, m.start()):
                    continue
                groups = m.groupdict()
                raw = groups.get("v")
                ends = attr.endswith("-end")
                attribute = attr.removesuffix("-end")
                value: str | None
                if raw is None:
                    if not ends:
                        continue
                    value = "*"  # "I quit my job": ends whatever the current value is
                else:
                    value = _clean(raw, kind)
                if not value:
                    continue
                if kind == "name" and value.split()[0] in _NOT_NAMES:
                    continue
                if attribute == "rel":
                    attribute = _RELATIONS[groups["r"].lower()]
                elif attribute == "favorite":
                    attribute = "favorite:" + groups["c"].lower()
                elif attribute.startswith("opinion="):
                    attribute, value = "opinion:" + value.lower(), attribute.split("=", 1)[1]
                elif kind == "status":
                    value = value.lower()
                facts = [(attribute, value)]
                if groups.get("t"):
                    facts.append(("job_title", _trim(groups["t"])))
                if attribute == "job_title" and " at " in value:  # "a developer at Shopify"
                    title, org = value.split(" at ", 1)
                    facts = [("job_title", title.strip()), ("works_at", org.strip())]
                for a, v in facts:
                    if not v:
                        continue
                    key = (a, v.casefold(), ends)
                    if key not in found:
                        found[key] = Fact(
                            subject=subject,
                            attribute=a,
                            value=v,
                            ends=ends,
                            text=render(subject, a, v, ends=ends) if v != "*" else f"{subject}: no longer {a}",
                            confidence=0.7,
                        )
    return list(found.values())


class RuleExtractor:
    """The default extractor: cheap, deterministic, offline."""

    name = "rules"

    def extract(self, episodes: list[MemoryRecord]) -> list[Fact]:
        out: list[Fact] = []
        for ep in episodes:
            subject = subject_of(ep)
            if subject is None:
                continue
            for fact in extract_statements(ep.text, subject):
                fact.source_ids = [ep.id]
                out.append(fact)
        return out
