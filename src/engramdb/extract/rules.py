# ruff: noqa: E501 - the rule table reads best one pattern per line
"""Rule-based extraction: first-person statements -> structured facts. No LLM, no model.

It prefers missing a fact to inventing one. Per sentence:

1. framing is removed ("I'd say ...", "honestly, ...") and a subjectless chat fragment gets its implied
   subject back ("Been living in Porto since May" -> "I've been living ...");
2. the rule table (`_RULES`, then the wider `_RULES_MORE`) and the multi-capture readers (`_special`:
   names, lists and appositives of people, "I teach X at Y") propose facts;
3. a fact is dropped when its clause is hedged ("if I moved..."), a plan ("... next spring") or a bygone
   state ("I used to be ..."), unless it is timeless (origins, relatives);
4. `_reconcile` drops a value the same sentence ends ("let go from my job at Uber") and duplicates.

Measured precision/recall on six hand-labelled sets is in docs/lifecycle.md
(`python -m engramdb.extract.evaluate tests/fixtures/extraction_*.jsonl`).

No NLP library: spaCy was considered but not measured. Its English models are not
on PyPI from the spaCy authors (only third-party re-uploads), and it would add
~100 MB of dependencies to a core that needs none, so these are plain rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..model import MemoryRecord
from ..regex_gates import Gates
from .base import Fact, norm_value, render, subject_of
from .lexicon import (
    CAR_MAKES,
    CAR_MODELS,
    INSTRUMENTS,
    LANGUAGES,
    NOT_NAMES,
    NUMBER_RE,
    OCCUPATIONS,
    PLURALS,
    RELATIONS,
    is_place,
    parse_number,
)

_SENT_RE = re.compile(r"[^.!?\n]+[.!?]*")
_ADV = (
    r"(?:(?i:just|recently|finally|now|actually|also|officially|eventually|then|currently|still|really|absolutely|happily|newly|mostly|always|"
    r"totally|honestly|truly|kind of|kinda|sort of|so|literally|already|even)\s+){0,3}"
)
_I = r"\b(?i:I)\s+" + _ADV
_I_AND = r"(?:\b(?i:I)|(?<=\bI\b)[^,;.!?]*?\b(?i:and|but|then|and then|so))\s+" + _ADV  # "I moved to X and started..."
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
    r"tbh|lol|haha|imo|tho|though|honestly|too|as well|either|here|to be honest|"
    r"downtown|these days|by far|a lot|so much|very much|right now|at the moment|someday|one day|part time|part-time|"
    r"full time|full-time|online|"
    r"in (?:the )?(?:morning|evening|afternoon|summer|winter|spring|fall|autumn)|in (?:19|20)\d\d|in (?:"
    + _MONTHS
    + r")|"
    r"on (?:" + _DAYS + r")|(?:a few|a couple of|a|one|two|three|four|five|six|few|several|\d+) (?:days?|weeks?|months?|years?))\b.*$",
    re.I,
)
_IN_PLACE_RE = re.compile(
    r"^(?:a|an|the|my|our|this|that)\s+[a-z][\w\s-]*?\s+(?:in|near|outside)\s+(?P<p>(?:the\s+)?[A-Z].*)$"
)
_HEDGE_RE = re.compile(
    r"\b(?:if|whether|unless|wish|maybe|might|would|could|should|want|wanna|hope|plan|planning|thinking|"
    r"considering|dream|imagine|pretend|not sure)\b|\b(?:I'd|I’d)\b",
    re.I,
)
_BAD_OBJECT_RE = re.compile(
    r"^(?:it|that|this|you|u|ya|them|him|her|us|to see|to hear|when|how|what|the way|being|your|ur|those|these|not|"
    r"everything|everyone|all of)\b",
    re.I,
)
_NOT_NAMES = frozenset(
    "I And But The A An Is Was Has Had Just So Who What When Where Our Your My His Her Their Its To In On At For With".split()
)
_OCCUPATIONS = OCCUPATIONS
_RELATIONS = RELATIONS
_REL_ALT = "|".join(sorted(_RELATIONS, key=len, reverse=True))
_PLURAL_ALT = "|".join(sorted(PLURALS, key=len, reverse=True))
_MOD_WORDS = (
    "best|older|younger|little|big|baby|twin|step|new|old|dear|lovely|sweet|oldest|youngest|eldest|rescue|golden|"
    "adopted|beautiful|grumpy|lazy|sweet|two|three|four|black|white|ginger|tabby|senior|teenage|grey|gray|brown|tiny|fat|"
    "german|border|cocker|jack|yorkshire|french|english|labrador|long-haired|fluffy"
)
_REL_MOD = r"(?:(?i:" + _MOD_WORDS + r")\s+){0,2}"

# (attribute, pattern, value kind). Value kinds: place, org, phrase, name, num, object; "=X" is a constant value.
_RULES: list[tuple[str, str, str]] = [
    # where the subject lives
    ("lives_in", _I + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", _IVE + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", r"\b(?i:we)\s+" + _ADV + r"(?i:moved|relocated)(?:\s+(?i:back))?\s+(?i:to)\s+" + _PLACE, "place"),
    ("lives_in", _I + r"(?i:live|reside)\s+(?i:in)\s+" + _PLACE, "place"),
    ("lives_in", _IM + r"(?i:living|based|settled)\s+(?i:in)\s+" + _PLACE, "place"),
    ("lives_in", _IVE + r"(?i:been living|lived)\s+(?i:in)\s+" + _PLACE + r"(?=\s+(?i:for|since))", "place"),
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
    ("works_at", r"\b(?i:I|I'll|I\s+will)\s+" + _ADV + r"(?i:work|am working)\s+(?:(?i:remotely|full-time|part-time|from home)\s+)?"
     r"(?i:at|for)\s+" + _VAL, "org"),
    ("works_at", _IM + r"(?i:working|employed)\s+(?i:at|for|by)\s+" + _VAL, "org"),
    ("works_at", _IVE + r"(?i:been working|worked)\s+(?i:at|for)\s+" + _VAL + r"(?=\s+(?i:for|since))", "org"),
    ("works_at", _I + r"(?i:joined)\s+(?P<v>(?:the\s+)?[A-Z][^,;.!?]*)", "org"),
    ("works_at", _I + r"(?i:got|landed|accepted|took|scored)\s+(?i:a|an|the)\s+(?i:new\s+)?(?i:job|position|offer|internship|role|gig|contract|post)"
     r"\s+(?i:at|with|from)\s+" + _VAL, "org"),
    ("works_at", _I + r"(?i:was|got)\s+(?i:hired)\s+(?i:by|at)\s+" + _VAL, "org"),
    ("works_at-end", _I + r"(?i:quit|left|lost)\s+(?i:my)\s+(?i:job)(?:\s+(?i:at|with)\s+" + _VAL + ")?", "org"),
    ("works_at-end", _I + r"(?i:got fired|was fired|got laid off|was laid off)(?:\s+(?i:from)\s+" + _VAL + ")?", "org"),
    ("works_at-end", _I + r"(?i:gave|handed in|put in|submitted|turned in)\s+(?i:my\s+)?(?i:notice|resignation)\s+(?i:at|to)\s+" + _VAL, "org"),
    ("works_at-end", _I + r"(?i:retired)\b(?:\s+(?i:from)\s+" + _VAL + ")?", "org"),
    ("job_title", _I_AND + r"(?i:work|am working)\s+(?:(?i:nights|weekends|days|shifts|part-time|full-time|remotely|from home)\s+)?(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:working)\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _I + r"(?i:started|began|joined)[^,;.!?]*?\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:a|an|the)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r")(?:\s+(?i:in|on)\s+(?i:the)\s+[\w-]+)?\s+(?i:at)\s+(?:[A-Z]|(?i:a|an|the)\s+[a-z])[^,;.!?]*)", "phrase"),
    ("job_title", _I + r"(?i:became)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _I + r"(?i:got promoted|was promoted)\s+(?i:to)\s+" + _VAL, "phrase"),
    ("job_title", _IM + r"(?i:a|an|the)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r"))\b", "phrase"),
    ("job_title", r"\b(?i:my)\s+(?i:job|profession|occupation)\s+(?i:is)\s+" + _VAL, "phrase"),
    # people and pets
    ("rel", r"\b(?i:my|our)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))(?:'s\s+(?i:name)\s+(?i:is)|\s+(?i:is\s+called|"
     r"is\s+named|named|called)|,)?\s+" + _NAME, "name"),
    ("rel", _I + r"(?i:have|got|adopted)\s+(?i:a|an)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))\s+(?i:named|called)\s+"
     + _NAME, "name"),
    ("rel", r"\b(?i:we)\s+" + _ADV + r"(?i:have|got|adopted)\s+(?i:a|an)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT
     + r"))\s+(?i:named|called)\s+" + _NAME, "name"),
    # identity
    ("name", r"\b(?i:my)\s+(?i:name\s+is)\s+" + _NAME, "name"),
    ("name", r"\b(?i:calls?\s+me)\s+" + _NAME, "name"),
    ("age", _IM + r"(?P<v>\d{1,3})\s+(?i:years?\s+old|yo)\b", "num"),
    ("age", _I + r"(?i:turned)\s+(?P<v>" + NUMBER_RE + r")\b", "num"),
    ("relationship_status", _I + r"(?i:got)\s+(?P<v>(?i:married|engaged|divorced|separated))\b", "status"),
    ("relationship_status", _IM + r"(?P<v>(?i:single|married|engaged|divorced|separated|widowed))\b", "status"),
    ("studies", _IM + r"(?i:studying|majoring in)\s+" + _VAL, "phrase"),
    ("studies", _I + r"(?i:study|major in)\s+" + _VAL, "phrase"),
    ("education", _I + r"(?i:graduated)\s+(?i:from)\s+" + _VAL, "org"),
    ("learning", _IM + r"(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", _I + r"(?i:started|began)\s+(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", _IVE + r"(?i:started|begun)\s+(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", r"(?<=\bI'm\b)[^,;.!?]*?\b(?i:and)\s+" + _ADV + r"(?i:learning)\s+(?i:to\s+)?" + _VAL, "phrase"),
    ("learning", _IVE + r"(?i:been learning)\s+" + _VAL, "phrase"),
    ("diet", _IM + r"(?i:a\s+)?(?P<v>(?i:vegetarian|vegan|pescatarian|keto))\b", "status"),
    ("allergy", _IM + r"(?i:allergic)\s+(?i:to)\s+" + _VAL, "phrase"),
    # preferences (objects)
    ("favorite", r"\b(?i:my|our)\s+(?:(?i:all-time|all time|absolute|current|personal|very|new)\s+)?(?i:favorite|favourite|fave|go-to)\s+"
     r"(?P<c>[a-zA-Z]+(?:\s+[a-zA-Z]+)?)\s+(?:(?i:to)\s+[a-z]+(?:\s+(?i:to|at|on))?\s+)?(?:(?i:in town|of all time|ever|right now|at the moment|"
     r"these days|on weekends|on the weekend|in the world|in the city)\s+)?"
     r"(?i:is|has to be|would be|'s)\s+" + _VAL, "phrase"),
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
    ("opinion=likes", _I + r"(?i:prefer)\s+(?![^.!;]*\b(?i:over|instead of|rather than|to)\b)(?P<v>[\w -]+?)\s*(?:$|[.!;])", "object"),
]  # fmt: skip
# Wider wording, written as general forms: "we"/"X and I" subjects, possessive homes, copular
# statements ("Home is X", "X is my thing"), negations that end a value, and lists of names.
_WE = (
    r"\b(?:(?i:we)|(?i:my|our)\s+(?:[a-z]+\s+){0,2}?(?i:and)\s+I|[A-Z][a-z]+\s+(?i:and)\s+I|(?i:me\s+and\s+my)\s+[a-z]+)\s+"
    + _ADV
)
# "We packed up everything and moved to X": a "we" clause carried on by "and"/"then"
_WE_AND = r"\b(?i:we)\b[^,;.!?]*?\b(?i:and|then|and then|so)\s+" + _ADV
_SUBJ = r"(?:" + _WE + r"|" + _I_AND + r"|" + _WE_AND + r")"
_CAR_NAMES = r"(?:(?:" + "|".join(CAR_MAKES) + r")\s+)?(?:" + CAR_MODELS + r")\b|(?:" + "|".join(CAR_MAKES) + r")\b(?!\s+[A-Z0-9])"
_CAR = r"(?P<v>" + _CAR_NAMES + r")"
_CAR_ANY = r"(?:" + _CAR_NAMES + r")"
_CAR_MOD = r"(?:(?i:new|used|brand[ -]new|second-hand|secondhand|electric|hybrid|red|blue|black|white|silver|grey|gray|green)\s+){0,2}"
_PET_ALT = "|".join(sorted((w for w, r in RELATIONS.items() if r == "pet"), key=len, reverse=True))
_NOT_SPLIT_THING = r"(?!\s+(?i:the|a|an|it|our|my|his|her|their|that|this|costs?|bills?|rent|shifts?)\b)"  # "split the bill"
_PET_NAME = r"(?P<v>[A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?!['’])"  # one word: "Sadly Pepper passed away" names Pepper
_PET_WORD_RE = re.compile(r"\b(?:" + _PET_ALT + r"|pets|vet|leash|adopt(?:ed)?|rehomed|re-homed)\b", re.I)
_WE_HAVE = r"\b(?i:I've|I’ve|I\s+have|we've|we’ve|we\s+have)\s+" + _ADV
_WE_ARE = r"\b(?i:I'm|I’m|I\s+am|Im|we're|we’re|we\s+are)\s+" + _ADV
_NP = r"(?P<v>(?:[\w'’-]+\s+){0,3}?[\w'’-]+)"  # a short noun phrase at the start of a clause
_HOME = (
    r"(?i:home|place|flat|apartment|house|address|condo|room|studio|digs|base|loft|townhouse|cottage|bungalow|"
    r"farmhouse|cabin|villa|houseboat|caravan|duplex|penthouse)"
)
_HOME_MOD = r"(?:(?i:new|current|own|little|tiny|first|lovely|rented|shared)\s+){0,2}"
_ENDS_NOW = r"(?=[^,;.!?]*\b(?i:anymore|any more|now|these days|nowadays)\b)"
_POS_ADJ = (
    "relaxing|fun|amazing|great|fascinating|calming|enjoyable|interesting|satisfying|therapeutic|delicious|awesome|"
    "wonderful|soothing|addictive|exciting|rewarding|beautiful|inspiring"
)
_NEG_ADJ = (
    "boring|tedious|annoying|exhausting|stressful|overrated|gross|disgusting|pointless|dull|unbearable|frustrating|"
    "tiresome|awful|terrible|horrible|depressing|scary|revolting|pretentious"
)
_DEG = r"(?:(?i:really|so|very|pretty|quite|super|incredibly|kind of|kinda|a bit|rather|extremely|totally|deeply)\s+)?"
_DIETS = r"vegan|vegetarian|pescatarian|keto|paleo|gluten-free|dairy-free|plant-based"
_DEGREES = (
    r"master's|masters|master|bachelor's|bachelors|degree|phd|ph\.d|doctorate|ba|bsc|msc|ma|mba|diploma|mfa|jd|md|"
    r"certificate|course|major|minor"
)

_RULES_MORE: list[tuple[str, str, str]] = [
    # home: moves, residence verbs, possessive homes, copular statements
    ("lives_in", _SUBJ + r"(?i:moved|relocated|emigrated)(?:\s+(?i:out|back|over|away|home|abroad|across the country|"
     r"across the world|all the way|from\s+[^,;.!?]+?)){0,2}\s+(?i:to|into)\s+" + _VAL, "pplace"),
    ("lives_in", _SUBJ + r"(?i:moved|relocated)\s+(?:(?i:back)\s+)?(?i:in)\s+(?:(?i:together)|(?i:with)\s+[^,;.!?]*?)\s(?i:in)\s+" + _VAL, "pplace"),
    ("lives_in", _SUBJ + r"(?i:made the move|made the big move|finally made the move)\s+(?i:to)\s+" + _VAL, "pplace"),
    ("lives_in", _WE_ARE + r"(?:(?i:a|an)\s+)?(?P<v>[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})\s+(?i:resident|local|homeowner)\b", "pplace"),
    ("lives_in", _SUBJ + r"(?i:live|reside|rent|settled|ended up|landed)\b[^,;.!?]{0,30}?\s(?i:in|near|outside|around|on)\s+" + _VAL, "pplace"),
    ("lives_in", _WE_ARE + r"(?i:living|based|settled|located|renting|residing)\b[^,;.!?]{0,25}?\s(?i:in|near|outside)\s+" + _VAL, "pplace"),
    ("lives_in", _WE_HAVE + r"(?i:been living|been based|been staying|been renting)\b[^,;.!?]{0,25}?\s(?i:in|near|outside)\s+" + _VAL
     + r"(?=\s+(?i:for|since|now)\b)", "pplace"),
    ("lives_in", _WE_HAVE + r"(?i:been|lived|been living|been based|been settled|made a home)\s+(?i:in|near|outside)\s+" + _VAL
     + r"(?=\s+(?i:for|since|now|all my life)\b)", "pplace"),
    ("lives_in", r"\b(?i:my|our)\s+" + _HOME_MOD + _HOME + r"\s+(?:(?i:is|'s)\s+(?:(?i:now|still)\s+)?)?(?i:in|near|outside)\s+" + _VAL, "pplace"),
    ("lives_in", _SUBJ + r"(?i:bought|rented|found|got|signed a lease (?:on|for)|got the keys to|moved into|are renting|rent)\s+"
     r"(?i:a|an|our|my|the)\s+" + _HOME_MOD + r"(?:[a-z]+\s+)?" + _HOME + r"\s+(?i:in|near|outside)\s+" + _VAL, "pplace"),
    ("lives_in", r"(?:^|[,;]\s*)(?i:home)\s+(?:(?i:these days|now|nowadays|for now|right now)\s+)?(?i:is|has been)\s+"
     r"(?:(?i:now)\s+)?(?:[^,;.!?]*?\s(?i:in)\s+)?" + _VAL, "pplace"),
    ("lives_in", r"(?:^|[,;]\s*|\b(?i:but|and|so|now)\s+)(?P<v>[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})\s+(?i:is|has been|'s)\s+(?:(?i:now|officially)\s+)?"
     r"(?:(?i:my|our)\s+)?(?:(?i:new)\s+)?(?i:home|base|home base)\b(?!\s+(?i:to|of)\b)", "gplace"),
    ("lives_in", _SUBJ + r"(?i:call)\s+(?P<v>[A-Za-z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})\s+(?i:home)\b", "pplace"),
    ("lives_in", r"\b(?i:before|after)\s+(?i:moving|relocating)\s+(?:(?i:back)\s+)?(?i:to)\s+" + _VAL, "pplace"),
    ("lives_in-end", r"\b(?i:I|we)\s+(?i:don't|do not|don’t|no longer)\s+(?i:live|reside)\s+(?i:in|near)\s+" + _VAL, "pplace"),
    ("lives_in-end", _WE_ARE + r"(?i:no longer)\s+(?:(?i:living|based)\s+)?(?i:in)\s+" + _VAL, "pplace"),
    ("lives_in-end", _WE_ARE + r"(?i:not)\s+(?:(?i:living|based)\s+)?(?i:in)\s+" + _VAL + _ENDS_NOW, "pplace"),
    ("lives_in-end", _SUBJ + r"(?i:moved|moved away|moved out)\s+(?i:of|from)\s+" + _VAL + r"(?![^,;.!?]*\s(?i:to|into)\s)", "pplace"),
    ("lives_in-end", _SUBJ + r"(?i:left)\s+" + _VAL, "leftplace"),
    # where the subject is from
    ("from", r"\b(?i:my|our)\s+(?i:home ?town|home city|home country)\s+(?i:is|was)\s+" + _VAL, "pplace"),
    ("from", r"(?:^|[,;]\s*)(?P<v>[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})\s+(?i:is|was)\s+(?:(?i:my)\s+(?i:home ?town|home country)|"
     r"(?i:where)\s+I\s+(?i:grew up|was raised|come from|am from|'m from|was brought up))\b", "gplace"),
    ("born_in", r"(?:^|[,;]\s*)(?P<v>[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2})\s+(?i:is)\s+(?:(?i:my)\s+(?i:birthplace)|"
     r"(?i:where)\s+I\s+(?i:was born))\b", "gplace"),
    ("from", _SUBJ + r"(?i:was|were)\s+(?i:raised|brought up)\s+(?i:in|on)\s+" + _VAL, "pplace"),
    ("born_in", r"(?:^|[,;]\s*)(?i:born)(?:\s+(?i:and)\s+(?i:raised|bred))?\s+(?i:in)\s+" + _VAL, "pplace"),
    ("from", r"(?:^|[,;]\s*|(?i:born)\s+(?i:and)\s+|(?<=\bborn\b)[^.;!?]*?\b(?i:but|and)\s+)(?i:raised|bred|grew up|brought up)\s+(?i:in)\s+" + _VAL, "pplace"),
    ("lives_in", r"\b(?i:live|lived|living)\b[^.;!?]*\b(?i:now|these days)\s*,?\s+(?i:I'm|I’m|I\s+am|we're|we\s+are)\s+(?:(?i:in|based in|living in)\s+)" + _VAL, "pplace"),
    ("lives_in", r"\b(?i:my|our)\s+(?i:landlord|landlady|neighbourhood|neighborhood|street|building|block)\s+(?i:in)\s+" + _VAL, "pplace"),
    # work
    ("job_title", _WE_ARE + r"(?i:employed|working|hired|contracted|employed full-time)\s+(?i:as)\s+(?i:a|an|the)\s+" + _VAL, "phrase"),
    ("works_at", _WE_ARE + r"(?i:on|in|part of)\s+(?i:the|a)\s+[\w -]{1,25}?\b(?i:team|department|group|division|unit|office|staff|lab)"
     r"\s+(?i:at|of|for)\s+" + _VAL, "porg"),
    ("works_at", r"\b(?i:my|our)\s+(?:(?!(?i:old|former|previous|last|first|dream|ideal|future)\b)[a-z]+\s+)?(?i:boss|manager|colleagues|"
     r"coworkers|co-workers|team|office|job|role|position|shift|workplace|commute)\s+(?i:at|with)\s+" + _VAL, "porg"),
    ("works_at", r"(?:^|[,;]\s*)(?i:work)\s+(?i:is|has been)\b[^,;.!?]{0,25}?\s(?i:at|with)\s+" + _VAL, "porg"),
    ("works_at", _IVE + r"(?i:been|worked|been employed)\s+(?i:at|with|by)\s+" + _VAL + r"(?=\s+(?i:for|since|almost|nearly|about|over|now)\b)", "porg"),
    ("job_title", _IVE + r"(?i:been)\s+(?i:a|an)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r"))\s+(?=(?i:for|since|almost|nearly|about|over)\b)", "phrase"),
    ("job_title", _I_AND + r"(?i:work|am working)\s+(?i:at|for)\s+[^,;.!?]+?\s(?i:as)\s+(?i:a|an|the)\s+" + _VAL, "phrase"),
    ("works_at", _IM + r"(?i:still|now)\s+(?i:at|with)\s+" + _VAL, "porg"),
    ("works_at", r"(?:^|[,;]\s*)(?i:the)\s+(?i:new)\s+(?i:job|role|position|gig)\s+(?i:at|with)\s+" + _VAL, "porg"),
    ("works_at", _IM + r"(?i:the)\s+(?i:ceo|cto|cfo|coo|founder|co-founder|cofounder|director|head|owner|president|manager)\s+(?i:of|at)\s+" + _VAL, "porg"),
    ("job_title", _IM + r"(?i:in)\s+(?P<v>(?i:sales|marketing|finance|hr|it|tech|retail|consulting|healthcare|education|insurance|"
     r"real estate|hospitality|construction|publishing|advertising|accounting|banking|logistics|recruiting|recruitment|pr|law))\b"
     r"(?!\s+(?i:school|class|college))", "phrase"),
    ("works_at", _I_AND + r"(?i:started|began)\s+(?i:at|with)\s+" + _VAL, "porg"),
    ("works_at", r"\b(?i:my)\s+(?:(?i:new|current)\s+)?(?i:employer|company|workplace|firm)\s+(?i:is|'s)\s+(?:(?i:now)\s+)?" + _VAL, "org"),
    ("works_at", r"(?:^|[,;]\s*)(?P<v>(?:the\s+)?[A-Z][\w'’.&-]*(?:\s+[A-Z][\w'’.&-]*){0,3})\s+(?i:is)\s+(?:(?i:now)\s+)?(?i:my)\s+"
     r"(?:(?i:new|current)\s+)?(?i:employer)\b", "porg"),
    ("works_at", _I_AND + r"(?i:joined)\s+(?i:a|an|the)\s+[\w -]{0,25}?\b(?i:called|named)\s+" + _VAL, "porg"),
    # "Officially a Cyberdyne employee as of this week", "I'm now an Acme employee"
    ("works_at", r"(?:^|[,;:]\s*|" + _WE_ARE + r")(?:(?i:officially|now|finally|proudly)\s+)?(?i:a|an)\s+"
     r"(?P<v>[A-Z][\w'’.&-]*(?:\s+[A-Z][\w'’.&-]*){0,3})\s+(?i:employee|staffer|hire)\b", "porg"),
    ("job_title", _I_AND + r"(?i:landed|got|accepted|took)\s+(?i:a|an|the)\s+(?:(?i:new)\s+)?(?i:job|position|role|gig|post)[^,;.!?]*?\s(?i:as)\s+"
     r"(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _IVE + r"(?i:been working|been freelancing|been employed|worked|freelanced)\s+(?i:as)\s+(?i:a|an)\s+" + _VAL, "phrase"),
    ("job_title", _I_AND + r"(?i:joined|started|began)[^,;.!?]*?\s(?i:as)\s+(?i:their|its|our|the)\s+(?:(?i:first|new|only|lead)\s+)?" + _VAL, "phrase"),
    ("job_title", r"\b(?i:my)\s+(?:(?i:job title|title|role|position)|(?i:new)\s+(?i:job title|title|role))\s+(?i:is|'s)\s+(?:(?i:now)\s+)?"
     r"(?:(?i:a|an)\s+)?" + _VAL, "phrase"),
    ("works_at-end", _I_AND + r"(?i:resigned|quit|stepped down)\s+(?i:from|at)\s+" + _VAL, "org"),
    ("works_at-end", _I_AND + r"(?i:resigned)\b(?!\s+(?i:from|at|myself|to)\b)", "org"),
    ("works_at-end", _I_AND + r"(?i:was|got)\s+(?i:let go|made redundant|laid off|fired|sacked)\s+(?i:from|by|at)\s+" + _VAL, "org"),
    ("works_at-end", r"\b(?i:I)\s+(?i:don't|do not|don’t|no longer)\s+(?i:work)\s+(?i:at|for|with)\s+" + _VAL, "org"),
    ("works_at-end", _IM + r"(?i:no longer)\s+(?i:working|employed)\s+(?i:at|for|by|with)\s+" + _VAL, "org"),
    ("works_at-end", _IM + r"(?i:not)\s+(?i:working|employed)\s+(?i:at|for|by|with)\s+" + _VAL + _ENDS_NOW, "org"),
    ("works_at-end", _IM + r"(?i:between jobs|unemployed|out of work|jobless|retired|laid off|on the dole|job hunting|job-hunting|"
     r"looking for work)\b", "org"),
    ("works_at-end", _I_AND + r"(?i:quit|resigned)(?=\s*(?:$|[.!;,]|\s+(?i:today|yesterday|last|this)\b))", "org"),
    ("works_at-end", r"\b(?i:was|is|'s)\s+(?i:my)\s+(?i:last day)\s+(?i:at|with)\s+" + _VAL, "org"),
    ("works_at-end", _IM + r"(?i:no longer)\s+(?i:with|at)\s+" + _VAL, "porg"),
    ("job_title", _I_AND + r"(?i:was|got|been|have been|'ve been)\s+(?i:hired|taken on|brought on)\s+(?i:as)\s+(?i:a|an|the)\s+" + _VAL, "phrase"),
    ("works_at-end", _SUBJ + r"(?i:left)\s+" + _VAL, "leftorg"),
    # people and pets
    ("rel", r"\b(?i:my|our)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))(?:'s|’s)\s+(?i:called|named)\s+" + _NAME, "name"),
    ("rel", r"\b(?i:my|our)\s+" + _REL_MOD + r"(?P<r>(?i:" + _REL_ALT + r"))\s+(?i:from|at|in)\s+[^,;.!?]{1,30},\s+" + _NAME
     + r"(?=\s*(?:$|[,.!;]|\s+(?i:is|was|and|who|just)\b))", "name"),
    ("partner", _IM + r"(?i:happily\s+)?(?i:married|wed)\s+(?i:to)\s+" + _NAME, "name"),
    ("relationship_status=married", _IM + r"(?i:happily\s+)?(?i:married|wed)\s+(?i:to)\s+[A-Z]", "const"),
    ("relationship_status=married", _SUBJ + r"(?i:tied the knot|got hitched|got married|eloped)\b", "const"),
    ("relationship_status=engaged", _WE + r"(?i:got engaged|are engaged|just got engaged)\b", "const"),
    ("partner", r"(?:^|[,;]\s*|\b(?i:news|so|and|but)\s*,?\s+)" + _NAME + r"\s+(?i:and)\s+I\s+(?:(?i:are|got|just got|have been|'ve been)\s+)"
     r"(?i:getting married|engaged|married|dating|together|moving in together|a couple)\b", "name"),
    ("partner", r"(?:^|[,;]\s*|\b(?i:news|so|and|but)\s*,?\s+)" + _NAME + r"\s+(?i:and)\s+I\s+(?i:made it official|moved in together|"
     r"started dating|started seeing each other|got together)\b", "name"),
    ("relationship_status=single", _I_AND + r"(?i:split up|broke up|separated)\s+(?i:with)\s+(?i:my)\s+(?i:girlfriend|boyfriend|partner|"
     r"wife|husband|fiancee|fiancée|fiance|fiancé)\b", "const"),
    ("relationship_status=single", _IM + r"(?i:a)\s+(?i:single)\s+(?i:dad|mom|mum|parent|mother|father)\b", "const"),
    ("allergy=gluten", _I + r"(?i:have)\s+(?i:celiac|coeliac)(?:\s+(?i:disease))?\b", "const"),
    ("relationship_status=engaged", _I + r"(?i:proposed)\s+(?i:to)\s+[A-Z][^,;.!?]*\b(?i:said yes)", "const"),
    ("partner", _I + r"(?i:proposed)\s+(?i:to)\s+" + _NAME + r"(?=[^.;!?]*\b(?i:said yes))", "name"),
    ("relationship_status=separated", _WE + r"(?i:separated|are separating|have separated)\b", "const"),
    ("relationship_status=single", _WE + r"(?i:split up|broke up|split|called it quits)\b" + _NOT_SPLIT_THING, "const"),
    ("partner", r"(?:^|\b(?i:I|I'm|I’m|I\s+am|I've|I’ve|I\s+have)\s+)" + _ADV
     + r"(?:(?i:started|began|been)\s+(?i:going out with|dating)|(?i:dating))\s+" + _NAME, "name"),
    ("relationship_status=divorced", _WE + r"(?i:divorced|got divorced|are divorced)\b", "const"),
    ("relationship_status", _IVE + r"(?i:been)\s+(?P<v>(?i:single|married|engaged|divorced|separated))\b", "status"),
    ("relationship_status=widowed", _IM + r"(?i:a\s+)?(?i:widow|widower|widowed)\b", "const"),
    # preferences
    ("opinion=likes", r"\b(?i:we)\s+" + _ADV + r"(?i:love|adore|enjoy|like|are into|are obsessed with|are big fans of)\s+" + _VAL, "object"),
    ("opinion=dislikes", r"\b(?i:we)\s+" + _ADV + r"(?i:hate|dislike|can't stand|don't like|don't enjoy)\s+" + _VAL, "object"),
    ("opinion=likes", _IVE + r"(?i:always\s+)?(?i:loved|liked|enjoyed|adored|been into|been a fan of)\s+" + _VAL, "object"),
    ("opinion=dislikes", r"\b(?i:I've|I’ve|I\s+have|I)\s+(?i:never)\s+(?i:liked|enjoyed|been a fan of|been into|cared for|"
     r"understood the appeal of|been able to stand)\s+" + _VAL, "object"),
    ("opinion=dislikes", _IVE + r"(?i:always\s+)?(?i:hated|disliked|loathed|detested)\s+" + _VAL, "object"),
    ("opinion=dislikes", _I + r"(?i:used to)\s+(?i:love|like|enjoy|adore)\s+" + _VAL
     + r"(?=[^.;!?]*\b(?i:not anymore|no longer|anymore|any more|not now|but now I hate|these days I hate)\b)", "object"),
    ("opinion=likes", r"(?:^|[,;]\s*|\bI\s+)(?i:can't|cannot|can’t)\s+(?i:get enough of)\s+" + _VAL, "object"),
    ("opinion=likes", r"(?:^|[,;]\s*)(?i:nothing)\s+(?i:makes me happier than|beats|compares to|relaxes me more than|"
     r"makes me happier|is better than)\s+" + _VAL, "object"),
    ("opinion=likes", _IM + r"(?i:a\s+)?(?:(?i:huge|big|massive|total|die-hard|lifelong|great|loyal|diehard)\s+)?(?P<v>[\w'’ -]+?)\s+(?i:fan)\b(?!\s+(?i:of)\b)", "object"),
    ("opinion=likes", _IM + r"(?i:a\s+)?(?:(?i:real|total|huge|big)\s+)?(?i:sucker for)\s+" + _VAL, "object"),
    ("opinion=likes", _IM + r"(?i:a\s+)?(?:(?i:big|firm|huge|great|strong|true)\s+)?(?i:believer in)\s+" + _VAL, "object"),
    ("opinion=likes", _IM + r"(?i:keen on|fond of|hooked on|addicted to|mad about|nuts about|in love with)\s+" + _VAL, "object"),
    ("opinion=likes", r"\b(?i:I've|I’ve|I\s+have)\s+" + _ADV + r"(?i:gotten|got|become|grown)\s+" + _ADV + r"(?i:into|obsessed with|hooked on|"
     r"addicted to)\s+" + _VAL, "object"),
    ("opinion=dislikes", _I + r"(?i:don't|do not|don’t)\s+" + _ADV + r"(?i:care for|much care for|get the appeal of|see the appeal of)\s+"
     + _VAL, "object"),
    ("opinion=dislikes", _IM + r"(?i:not)\s+(?:(?i:really|very|that|too|so)\s+)?(?i:big on|keen on|fond of|crazy about|much into|"
     r"into|a fan of|a big fan of|much of a fan of)\s+" + _VAL, "object"),
    ("opinion=likes", _I + r"(?i:find)\s+(?P<v>[\w'’ -]+?)\s+" + _DEG + r"(?i:" + _POS_ADJ + r")\b", "object"),
    ("opinion=dislikes", _I + r"(?i:find)\s+(?P<v>[\w'’ -]+?)\s+" + _DEG + r"(?i:" + _NEG_ADJ + r")\b", "object"),
    ("opinion=likes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:is|are)\s+(?:(?i:really|totally|definitely|kind of|kinda|so)\s+)?(?i:my|our)\s+"
     r"(?i:thing|jam|passion|guilty pleasure|happy place|obsession|addiction|weakness|true love|comfort)\b", "np"),
    ("opinion=likes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:is|are)\s+(?i:a)\s+(?:(?i:real|big|true|great|huge|lifelong)\s+)?"
     r"(?i:passion|love|obsession|hobby)\s+(?i:of mine)\b", "np"),
    ("opinion=dislikes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:isn't|aren't|is not|are not|isn’t|aren’t)\s+(?:(?i:really|exactly)\s+)?"
     r"(?i:for me|my thing|my cup of tea|my scene|for us|my jam)\b", "np"),
    ("opinion=dislikes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:bores|bore|annoys|annoy|disgusts|disgust|irritates|irritate|bugs|drains|"
     r"grosses me out|gross me out|stresses me out|stress me out|gets on my nerves|get on my nerves)\b(?:\s+me)?", "np"),
    ("opinion=likes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:relaxes|relax|calms|calm|energizes|energises|makes me happy|make me happy|"
     r"cheers me up|cheer me up)\b", "np"),
    ("opinion=dislikes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:and)\s+(?i:I|me)\s+(?i:don't|do not|don’t|never)\s+(?i:get along|mix)\b", "np"),
    ("opinion=dislikes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:is|are)\s+(?i:my)\s+(?i:least favou?rite)\b", "np"),
    ("opinion=dislikes", r"(?:^|[,;]\s*)" + _NP + r"\s+(?i:is|are|tastes?|smells?)\s+" + _DEG + r"(?:(?i:like soap|" + _NEG_ADJ + r"))\s+"
     r"(?i:to me|for me|imo|in my opinion)\b", "np"),
    ("opinion=likes", r"(?:^|[,;]\s*)(?i:I|I\s+really|I\s+just)\s+(?i:can't|cannot|can’t|couldn't)\s+(?i:live without)\s+" + _VAL, "object"),
    ("opinion=dislikes", _I + r"(?i:avoid)\s+" + _VAL, "object"),
    ("favorite", r"(?:^|[,;]\s*)(?P<v>(?:[\w'’-]+\s+){0,3}?[\w'’-]+)\s+(?i:is|are|has always been|has been|was always|will always be|has become|'s become|became|is now|"
     r"has taken over as|took over as)\s+"
     r"(?:(?i:definitely|probably|still|easily|hands down|always|officially|now)\s+)?"
     r"(?i:my|our)\s+(?:(?i:all-time|all time|absolute|very|current|personal|new)\s+)?(?i:favorite|favourite|fave|go-to|number one|number-one)\s+(?P<c>[a-zA-Z]+(?:\s+[a-zA-Z]+)?)\b",
     "phrase"),
    # identity
    ("age", _IM + r"(?P<v>" + NUMBER_RE + r")(?:\s+(?i:years old|yrs old|yo|years young|now|this year|already))?"
     r"(?=\s*(?:$|[,.!;]|\s+(?i:and|but|now|so|btw|by the way|with|from)\b))", "num"),
    ("age", _I + r"(?:(?i:just|recently)\s+)?(?i:had|celebrated)\s+(?i:my)\s+(?P<v>\d{1,3}(?:st|nd|rd|th)|[a-z]+(?:-[a-z]+)?)\s+(?i:birthday)", "num"),
    ("studies", _IM + r"(?i:doing|taking|pursuing|working on|studying for|enrolled in|halfway through)\s+(?i:a|an|my)\s+(?:[\w'-]+\s+)?(?i:"
     + _DEGREES + r")\s+(?i:in)\s+" + _VAL, "phrase"),
    ("studies", _IM + r"(?i:a|an)\s+(?:(?i:first|second|third|fourth|final|1st|2nd|3rd|4th|last)[- ](?i:year)\s+|(?i:grad|graduate|phd|"
     r"undergrad|undergraduate|masters|master's)\s+)?(?P<v>(?!(?i:high school|college|university|grad|mature|exchange|international|"
     r"part-time|full-time|good|bad|great|poor)\b)[a-z][\w -]*?)\s+(?i:student|major)\b", "phrase"),
    ("education", _I + r"(?i:finished|completed|got|earned|did|received|have|hold)\s+(?i:my|a|an)\s+(?:[\w'-]+\s+)?(?i:" + _DEGREES
     + r")\s+(?i:at|from)\s+" + _VAL, "org"),
    ("learning", _IM + r"(?i:taking|doing)\s+(?P<v>[\w -]+?)\s+(?i:classes|lessons|class|lesson|courses|course)\b", "phrase"),
    ("learning", _I_AND + r"(?i:started|began)\s+(?i:taking)\s+(?P<v>[\w -]+?)\s+(?i:classes|lessons|courses)\b", "phrase"),
    ("learning", r"\b(?i:I've|I’ve|I\s+have|I)\s+" + _ADV + r"(?i:picked up|taken up|took up|started)\s+(?P<v>(?:(?i:the)\s+)?(?i:"
     + INSTRUMENTS + "|" + LANGUAGES + r"))\b", "phrase"),
    ("learning", _IM + r"(?i:teaching myself)\s+(?:(?i:to)\s+)?" + _VAL, "phrase"),
    ("diet=vegetarian", r"\b(?i:I|we)\s+" + _ADV + r"(?i:don't|do not|don’t|no longer|never)\s+(?i:eat)\s+(?i:meat)\b", "const"),
    ("diet=vegan", r"\b(?i:I|we)\s+" + _ADV + r"(?i:don't|do not|don’t|no longer)\s+(?i:eat)\s+(?i:animal products)\b", "const"),
    ("diet=vegetarian", _I_AND + r"(?i:stopped|quit|gave up|cut out)\s+(?:(?i:eating)\s+)?(?i:meat)\b", "const"),
    ("diet=vegetarian", _IVE + r"(?i:stopped|quit|given up|cut out)\s+(?:(?i:eating)\s+)?(?i:meat)\b", "const"),
    ("diet", r"\b(?i:I|we)\s+" + _ADV + r"(?i:went|turned|became|have gone|'ve gone|’ve gone)\s+(?:(?i:fully)\s+)?(?P<v>(?i:" + _DIETS + r"))\b", "status"),
    ("diet", _WE_HAVE + r"(?i:been)\s+(?:(?i:a)\s+)?(?P<v>(?i:" + _DIETS + r"))\b", "status"),
    ("diet", r"\b(?i:we're|we’re|we\s+are|we've\s+been|we\s+have\s+been)\s+" + _ADV + r"(?:(?i:both|all)\s+)?(?P<v>(?i:vegan|vegetarian|pescatarian))s?\b", "status"),
    ("diet", _IM + r"(?i:a\s+)?(?P<v>(?i:" + _DIETS + r"))\b", "status"),
    ("diet-end", _WE_ARE + r"(?i:no longer)\s+(?:(?i:a)\s+)?(?P<v>(?i:" + _DIETS + r"))\b", "status"),
    ("diet-end", _WE_ARE + r"(?i:not)\s+(?:(?i:a)\s+)?(?P<v>(?i:" + _DIETS + r"))\b" + _ENDS_NOW, "status"),
    ("allergy", _I + r"(?i:can't|cannot|can’t)\s+(?i:eat|have|drink|touch)\s+(?P<v>[\w -]+?)\s*(?:,|;|\s+(?i:because|since|as))\s*"
     r"(?i:I'm|I’m|I\s+am)\s+(?:(?i:severely|very)\s+)?(?i:allergic)\b", "phrase"),
    ("allergy", _IM + r"(?P<v>(?i:lactose|gluten|fructose|histamine|wheat))[ -](?i:intolerant)\b", "phrase"),
    ("allergy", _I + r"(?i:have)\s+(?i:a|an)\s+(?:(?i:severe|bad|mild)\s+)?(?P<v>[a-z]+(?:\s+[a-z]+)?)\s+(?i:allergy)\b", "phrase"),
    ("allergy=gluten", _IM + r"(?i:celiac|coeliac)\b", "const"),
    # cars (one at a time): "I drive a Civic", "picked up my new Model 3", "traded my Golf for a RAV4"
    ("car", r"(?:" + _I + r"|" + _IM + r")(?i:drive|driving|have been driving|'ve been driving)\s+(?i:a|an|my|the|our)\s+"
     + _CAR_MOD + _CAR, "car"),
    ("car", _SUBJ + r"(?i:bought|got|picked up|leased|purchased|ordered|collected)\s+(?:(?i:myself|ourselves)\s+)?"
     r"(?i:a|an|my|the|our)\s+" + _CAR_MOD + _CAR, "car"),
    ("car", r"\b(?i:my|our)\s+(?:(?i:new|current)\s+)?(?i:car|daily driver|ride|vehicle|wheels)\s+(?i:is|are)\s+"
     r"(?:(?i:a|an|the)\s+)?" + _CAR_MOD + _CAR, "car"),
    ("car", r"\b(?i:my|our)\s+(?:(?i:new|current|trusty|beloved)\s+)?" + _CAR + r"(?!['’])", "car"),
    ("car", r"\b(?i:a|an)\s+(?:(?i:good|great|fair|decent|sweet|solid|amazing|fantastic)\s+)?(?i:deal|price)\s+(?i:on)\s+"
     r"(?i:a|an|the|my|our)\s+" + _CAR_MOD + _CAR, "car"),
    ("car", r"\b(?i:new car)(?:\s+(?i:day))?\s*[:!,-]+\s*(?:(?i:a|an|the)\s+)?" + _CAR, "car"),
    ("car", r"\b(?i:traded|swapped|exchanged)\s+(?i:my|our|the)\s+(?:old\s+)?" + _CAR_ANY + r"\s+(?i:in\s+)?(?i:for)\s+"
     r"(?:(?i:a|an|the)\s+)?" + _CAR_MOD + _CAR, "car"),
    ("car-end", r"\b(?i:sold|traded|swapped|totaled|totalled|wrecked|scrapped|gave away|got rid of)\s+(?i:my|our|the)\s+"
     r"(?:old\s+)?" + _CAR, "car"),
    ("car-end", r"\b(?i:my|our|the)\s+old\s+" + _CAR + r"\s+(?i:went|is gone|was sold|got sold|now belongs)", "car"),
    ("car-end", r"\b(?i:goodbye|bye|farewell)\s+(?:(?i:to)\s+)?(?:(?i:my|our|the)\s+)?(?:old\s+)?" + _CAR, "car"),
    # a relationship that ended names the partner it ended
    ("partner-end", r"\b(?i:things|it)\s+(?i:with)\s+" + _PET_NAME + r"\s+(?i:are|is)\s+(?i:over|done|finished)\b", "name"),
    ("partner-end", r"(?:^|[,;]\s*|\b(?i:after|when|and|but|so)\s+)" + _PET_NAME + r"\s+(?i:and)\s+I\s+(?i:broke up|split up|split|"
     r"separated|called it quits)\b" + _NOT_SPLIT_THING, "name"),
    ("partner-end", _I + r"(?i:broke up|split up)\s+(?i:with)\s+" + _PET_NAME, "name"),
    # moves, jobs and favourites in other words
    ("works_at", r"^(?i:work|my work|my job|the job)\s+(?i:at|for)\s+(?P<v>(?:the\s+)?[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,3})\s+"
     r"(?i:has been|is|was|'s|keeps|has)\b", "porg"),
    ("works_at", r"\b(?i:long day|busy day|late night|another day|first day|last day)\s+(?i:at)\s+(?i:the)\s+"
     r"(?P<v>[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,3})\s+(?i:office|headquarters|hq|plant|store|factory|lab|labs)\b", "porg"),
    ("job_title", r"^(?:(?i:after)\s+)?(?:\w+|\d+)\s+(?i:years?|months?)\s+(?i:as)\s+(?i:a|an)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS
     + r"))\b", "phrase"),
    ("lives_in", r"\b(?i:my|our)?\s*(?i:new)\s+(?i:address|home|hometown|city)\s*(?::|(?i:is))\s+(?:(?i:in)\s+)?" + _PLACE, "place"),
    ("works_at", r"(?:^|[,;]\s*|\b(?i:and|so|then)\s+)(?P<v>[A-Z][\w&'-]*(?:\s+[A-Z][\w&'-]*){0,3})\s+(?i:hired|took on|offered)\s+"
     r"(?i:me)\b", "porg"),
    ("job_title", _SUBJ + r"(?i:took|accepted|started|got|landed)\s+(?i:a|an|the|my)\s+(?:(?i:new)\s+)?(?i:position|role|job|post)\s+"
     r"(?i:as)\s+(?i:a|an|the)\s+" + _VAL, "phrase"),
    ("job_title", _SUBJ + r"(?i:got|landed|accepted)\s+(?i:the)\s+(?P<v>[\w -]*?\b(?i:" + _OCCUPATIONS + r"))\s+(?i:job|role|position)\b",
     "phrase"),
    ("car", r"\b(?i:drove|driving|drive)\s+(?i:home|off|away)\s+(?i:in)\s+(?i:a|an|my|our|the)\s+" + _CAR_MOD + _CAR, "car"),
    ("car", _SUBJ + r"(?i:replaced)\s+(?i:the|my|our)\s+(?:old\s+)?" + _CAR_ANY + r"\s+(?i:with)\s+(?i:a|an|the)\s+" + _CAR_MOD
     + _CAR, "car"),
    ("car-end", _SUBJ + r"(?i:replaced)\s+(?i:the|my|our)\s+(?:old\s+)?" + _CAR, "car"),
    # a pet named in apposition ("Say hello to Nacho, our new puppy", "Mochi the rabbit") or newly taken in
    ("rel", _PET_NAME + r",\s+(?i:my|our)\s+(?:[a-z]+\s+){0,2}?(?P<r>(?i:" + _PET_ALT + r"))\b", "name"),
    ("rel", _PET_NAME + r"\s+(?i:the)\s+(?P<r>(?i:" + _PET_ALT + r"))\b", "name"),
    ("rel", _SUBJ + r"(?i:rescued|brought home|took in|welcomed)\s+(?i:a|an)\s+(?:[a-z]+\s+){0,2}?(?P<r>(?i:" + _PET_ALT
     + r"))\s+(?i:named|called)\s+" + _NAME, "name"),
    # a pet that is gone: only where the text speaks of pets (_PET_WORD_RE), since people pass away too
    ("pet-end", _PET_NAME + r"\s+(?i:passed away|died|has died|ran away|went missing|went to live with|now lives with|is living with|"
     r"(?:lives|is|is staying)\s+with\s+[^,;.!?]{1,40}?\s+now)\b", "name"),
    ("pet-end", _SUBJ + r"(?i:rehomed|re-homed|gave away|had to give away|had to rehome|had to put down|put down)\s+" + _NAME,
     "name"),
]  # fmt: skip
_COMPILED = [(attr, re.compile(pat), kind) for attr, pat, kind in [*_RULES, *_RULES_MORE]]
_GATES = Gates([rx for _, rx, _ in _COMPILED])  # skips the patterns a sentence lacks the words for (regex_gates.py)


def _trim(value: str) -> str:
    v = value.strip()
    prev = None
    while prev != v:
        prev = v
        v = _STOP_RE.sub("", v).strip(" '\"’-")
    return v


_TITLE_IN_ORG_RE = re.compile(
    r"^(?P<t>.+?)\s+(?:in|with|for)\s+(?P<o>(?:a|an|the)\s+(?:[a-z-]+\s+){0,2}(?:firm|company|agency|startup|bank|hospital|"
    r"school|clinic|shop|store|restaurant|bakery|lab|studio|office|practice|factory|warehouse|charity|nonprofit))\b"
)
_CAP_RUN_RE = re.compile(
    r"^(?:(?:the|The)\s+)?[A-Z0-9][\w'’.&-]*(?:\s+(?:(?:of|de|del|la|le|du|and|&|on|upon|am|im)\s+)?[A-Z0-9][\w'’.&-]*)*"
)
_CALLED_RE = re.compile(r"^(?:a|an|the)\s+[\w\s-]*?\b(?:called|named)\s+(?P<n>.+)$", re.I)
_ORG_LEAD_RE = re.compile(r"^(?:my|our)\s+(?:old\s+|former\s+)?(?:job|position|role|post)\s+(?:at|with)\s+", re.I)


def _cap_run(v: str) -> str | None:
    m = _CAP_RUN_RE.match(v)
    return m.group(0).strip() if m else None


def _place_span(v: str) -> str | None:
    """A place at the start of `v`: a capitalised run ("Jersey City"), else a known place typed in lower case."""
    v = _PLACE_ADJ_RE.sub("", v)
    m = _IN_PLACE_RE.match(v)  # "a tiny apartment in Queens" -> Queens
    if m:
        v = m.group("p")
    words = v.split()
    if not words:
        return None
    if words[0][0].isupper() or (words[0].lower() == "the" and len(words) > 1 and words[1][0].isupper()):
        run = _cap_run(v)
        if run and run.split()[0].lower() not in _NOT_PLACE_WORDS:
            return run
        return None
    for n in (3, 2, 1):
        if len(words) >= n and is_place(" ".join(words[:n])):
            return " ".join(words[:n])
    return None


_NOT_PLACE_WORDS = frozenset(
    "i it there here home the my our your his her their this that a an monday tuesday wednesday thursday friday "
    "saturday sunday january february march april may june july august september october november december".split()
)
_PLACE_ADJ_RE = re.compile(
    r"^(?:rural|downtown|central|northern|southern|eastern|western|north|south|east|west|upstate|sunny|rainy|"
    r"beautiful|little|small|lovely|coastal|suburban|inner-city)\s+(?=[A-Z])"
)
_AFTER_LEFT_RE = re.compile(
    r"^\s*(?:$|[.!;,]|for good|behind|in\b|last\b|this\b|after\b|to\b|because\b|when\b|and\b|so\b|"
    r"back\b|early\b|\d|on\b|at\b|two|three|a few|several|years|months|weeks)",
    re.I,
)


def _clean(value: str, kind: str, rest: str = "") -> str | None:
    if kind in ("leftplace", "leftorg"):
        # what follows the name decides: "I left Google in March" is a job; "I left Sam a message" is not
        head = _cap_run(value.strip()) or ""
        rest = value.strip()[len(head) :] + rest
    if kind in ("pplace", "gplace", "leftplace"):
        v = _place_span(_trim(value))
        if not v:
            return None
        if kind == "gplace" and len(v.split()) == 1 and not is_place(v):
            return None  # a capitalised word opening a sentence is not a place unless it is a known one
        if kind == "leftplace" and (not is_place(v) or not _AFTER_LEFT_RE.match(rest)):
            return None  # "I left Chicago": a place; "I left Google": an employer (leftorg)
        return v
    if kind in ("porg", "leftorg"):
        v = _ORG_LEAD_RE.sub("", _trim(value))
        m = _CALLED_RE.match(v)
        if m:
            v = m.group("n")
        run = _cap_run(v)
        if not run or run.split()[0].lower() in _NOT_PLACE_WORDS - {"the"} or run.split()[0] in _NOT_NAMES:
            return None
        if kind == "leftorg" and not _AFTER_LEFT_RE.match(rest):
            return None  # "I left Sam a message": not a job
        if is_place(run) or run.casefold().removeprefix("the ") in NOT_NAMES:
            return None
        return run
    v = _trim(value)
    if not v:
        return None
    if kind == "place":
        m = _IN_PLACE_RE.match(v)
        if m:
            v = m.group("p")
        v = _PLACE_ADJ_RE.sub("", v)
        if v.split()[0].lower() in ("there", "here", "it", "that", "this", "somewhere", "where"):
            return None
    elif kind in ("object", "np"):
        if _OWN_PEOPLE_RE.match(v):
            return None
        if (
            _BAD_OBJECT_RE.match(v)
            or re.match(r"(?i)an?\s", v)
            or re.match(r"(?i)\S+(?:\s+\S+)?\s+(?:who|which|that)\s", value.strip())
        ):
            return None
        if v.lower().startswith("to "):
            v = v[3:]
        # "running along the river in the mornings" -> "running": the thing liked, not where or when
        if kind == "object":
            v = re.sub(
                r"\s+(?:in|at|on|during|along|around|near|by|through|across|from|into|every|outside|inside)\s+.*$",
                "",
                v,
            )
        if v.lower() in _NOT_OBJECTS:
            return None
    elif kind == "org":
        v = _ORG_LEAD_RE.sub("", v)
        m = _CALLED_RE.match(v)
        if m:
            v = m.group("n")
        if v.split()[0].lower() in ("it", "there", "that", "this", "them", "home"):
            return None
    elif kind == "phrase" and re.match(r"(?i)(?:to|for|towards?)\s", v):
        return None  # "I'm studying to become a nurse", "studying for my exams"
    elif kind == "num":
        n = parse_number(v)
        if n is None or not 5 <= n <= 110:
            return None
        v = str(n)
    if len(v.split()) > 6:
        return None  # long captures are usually mis-parses: prefer a miss
    return v


_OWN_PEOPLE_RE = re.compile(
    r"^(?:my|our)\s+(?:[a-z-]+\s+)?(?:"
    + "|".join(sorted({*RELATIONS, *PLURALS, "grandkids", "family", "parents"}, key=len, reverse=True))
    + r")\b",
    re.I,
)
_NOT_OBJECTS = frozenset(
    "it that this something anything everything nothing one mine yours idea ideas stuff things thing life me myself".split()
)


def _sentences(text: str) -> Iterator[str]:
    for m in _SENT_RE.finditer(text):
        s = m.group(0).strip()
        if s and not s.endswith("?"):
            yield s


# Phrases that only frame a statement ("I'd say my favourite is X"): removed so they do not read as a wish.
_DISCOURSE_RE = re.compile(
    r"\b(?:I'd|I’d|I would|I have to|I gotta|I must|I've got to)\s+(?:say|admit)\b,?\s*|"
    r"^(?:honestly|tbh|to be honest|frankly|anyway|anyways|well|so|oh|ok|okay|guess what|fun fact|btw|by the way|lately|"
    r"these days|nowadays|then)\b[,:]?\s*",
    re.I,
)
_ELLIPSIS_ADV = r"(?:(?:just|finally|recently|also|still|currently|now|officially|really)\s+)*"
# Chat drops the subject ("Just moved to Leeds!", "Been living in Porto since May", "Big fan of jazz"):
# such fragments read as the speaker's, so the implied subject is put back before the rules run.
_ELLIPSIS = [
    (re.compile(r"^(?=" + _ELLIPSIS_ADV + r"been\b)", re.I), "I've "),
    (re.compile(r"^(?=(?:big|huge|massive)\s+fan\b)", re.I), "I'm a "),
    # "Officially a nurse as of this month": the title rules then read "I'm officially a nurse"
    (re.compile(r"^(?=(?:officially|now|finally|currently)\s+(?:a|an)\s)", re.I), "I'm "),
    (
        re.compile(
            r"^(?="
            + _ELLIPSIS_ADV
            + r"(?:living|working|based|studying|learning|obsessed|allergic|married|single|engaged|"
            r"divorced|vegan|vegetarian|not a|not into|not big on|moving|retired|unemployed|employed|settled)\b)",
            re.I,
        ),
        "I'm ",
    ),
    (
        re.compile(
            r"^(?="
            + _ELLIPSIS_ADV
            + r"(?:moved|relocated|started|joined|got|turned|quit|left|graduated|adopted|landed|took|accepted|traded|sold|"
            r"replaced|picked|drove|rescued|rehomed|"
            r"became|switched|signed|bought|finished|retired|resigned|love|hate|adore|enjoy|teach)\b)",
            re.I,
        ),
        "I ",
    ),
]
_REPEAT_RE = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.I)  # "I hate hate hate flying"
_CLAUSE_CUT_RE = re.compile(r"[,;]|\s(?:but|though|although|whereas)\s", re.I)
_FUTURE_RE = re.compile(
    r"\b(?:will|'ll|’ll|going to|gonna|about to|next\s+(?:week|month|year|spring|summer|fall|autumn|winter|weekend|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|time)|tomorrow|soon|someday|one day|"
    r"in\s+(?:a|one|two|three|four|five|six|a few|\d+)\s+(?:days?|weeks?|months?|years?))\b",
    re.I,
)
_PAST_RE = re.compile(
    r"\b(?:used to|when I was|back (?:when|then|in (?:the day|college|school|high school|uni|my|19\d\d|20\d\d))|as a (?:kid|child|teenager|student)|in (?:high school|college|"
    r"uni|university)|was going to|were going to|had planned)\b",
    re.I,
)
_PURPOSE_RE = re.compile(
    r"\bfor\s+(?:a|an|my|our|the)\s+(?:trip|holiday|vacation|wedding|exam|move|job|visit)\b.*$", re.I
)
_FOR_NOW_RE = re.compile(r"\bfor\s+(?:now|the time being|the moment)\b", re.I)
_TEMPORARY_RE = re.compile(r"\b(?:for lent|temporarily|as a trial|for a (?:week|few days|couple of days))\b", re.I)
# attributes a future or bygone clause must not assert as true now (people and origins stay true)
_TIMELESS = frozenset({"lived_in", "from", "born_in", "education", "name"})


def _clause(sentence: str, start: int, end: int) -> str:
    """The clause around a match: from the last separator before it to the next one after it."""
    cuts_before = [m.end() for m in _CLAUSE_CUT_RE.finditer(sentence, 0, start)]
    after = _CLAUSE_CUT_RE.search(sentence, end)
    return sentence[(cuts_before[-1] if cuts_before else 0) : (after.start() if after else len(sentence))]


def _hedged(sentence: str, start: int) -> bool:
    """True when the match sits in a conditional/wish clause ("if I moved to...", "I'd love to...")."""
    before = sentence[:start]
    cut = max(before.rfind(","), before.rfind(";"), before.rfind(" but "))
    return bool(_HEDGE_RE.search(before[cut + 1 :] + sentence[start : start + 12]))


def _not_now(attribute: str, sentence: str, start: int, end: int) -> bool:
    """A plan ("I'm moving to Tokyo next spring"), a bygone state ("I used to be a teacher") or a background
    event ("...after Priya and I split"): not true now."""
    if attribute == "relationship_status" and _BACKGROUND_RE.search(sentence[:start]):
        return True
    if attribute in _TIMELESS or attribute in _RELATION_ATTRS:
        return False
    clause = _PURPOSE_RE.sub("", _clause(sentence, start, end))
    if _FUTURE_RE.search(clause) and not _FOR_NOW_RE.search(sentence):  # "for now I'll work at X" holds now
        return True
    if _TEMPORARY_RE.search(clause):
        return True
    return bool(_PAST_RE.search(clause)) and not attribute.startswith("opinion:")


_RELATION_ATTRS = frozenset(RELATIONS.values()) | frozenset(PLURALS.values())
_BACKGROUND_RE = re.compile(r"\b(?:after|since|before|once|when|until)\s*$", re.I)
_NAME_TOKEN = r"[A-Z][a-z'’-]+"
_GREETING = r"(?:(?i:hi|hello|hey|hiya|heya|morning|evening|hi there|hey there|hello again|hey again)\s*[,!.]?\s+)?"
_NAME_RULES = [
    re.compile(
        r"^"
        + _GREETING
        + r"(?:(?i:so|well|oh|ok|okay|yeah|yes)[,]?\s+)?(?i:I'm|I’m|I\s+am|Im)\s+(?P<n>"
        + _NAME_TOKEN
        + r"(?:\s+"
        + _NAME_TOKEN
        + r")?)(?=\s*(?:$|[,.!;:]|\s+(?i:and|from|here|by the way|btw|again|btw)\b))"
    ),
    re.compile(r"^" + _GREETING + r"(?P<n>" + _NAME_TOKEN + r")\s+(?i:here)(?=\s*(?:$|[,.!;:]))"),
    re.compile(
        r"^(?:(?i:hi|hello|hey|hiya)\s*[,!.]?\s+(?i:it's|it’s|it\s+is)\s+(?P<n>"
        + _NAME_TOKEN
        + r")(?=\s*(?:$|[,.!;:]|\s+(?i:again|here)\b))"
        r"|(?i:it's|it’s|it\s+is)\s+(?P<m>" + _NAME_TOKEN + r")\s+(?i:again|here)\b)"
    ),
    re.compile(r"\b(?i:I)\s+(?i:go\s+by)\s+(?P<n>" + _NAME_TOKEN + r")\b"),
    re.compile(
        r"^"
        + _GREETING
        + r"(?i:this\s+is)\s+(?P<n>"
        + _NAME_TOKEN
        + r")(?=\s*(?:$|[.!;:]|,(?!\s*(?i:my|our|the\s+new)\b)))"
    ),
    re.compile(r"(?:^|[,;]\s*)(?:(?i:the|my)\s+)?(?i:name's|name’s)\s+(?P<n>" + _NAME_TOKEN + r")\b"),
]
# "I have two kids, Mia and Leo", "our dogs, Bella and Max", "Tom, my husband", "a son, Arjun"
_NAME_LIST = (
    r"(?P<list>" + _NAME_TOKEN + r"(?:\s*,\s*" + _NAME_TOKEN + r")*(?:\s*,?\s+(?i:and|&)\s+" + _NAME_TOKEN + r")?)"
)
_HAVE = (
    r"(?:\b(?i:I|we)\s+"
    + _ADV
    + r"(?i:have|have got|got|adopted|raise|are raising|also have)|\b(?i:I've|I’ve|we've|we’ve)\s+"
    + _ADV
    + r"(?i:got|adopted))\s+"
)
_COUNT = r"(?:(?i:two|three|four|five|six|\d|a|an|a pair of)\s+)"
_PEOPLE_RULES = [
    re.compile(
        _HAVE
        + _COUNT
        + "?"
        + _REL_MOD
        + r"(?P<r>(?i:"
        + _PLURAL_ALT
        + "|"
        + _REL_ALT
        + r"))\b\s*(?:[,:(-]|(?i:called|named))\s*"
        + _NAME_LIST
    ),
    re.compile(
        r"\b(?i:my|our)\s+(?:(?i:two|three|four|five|six|\d)\s+)?"
        + _REL_MOD
        + r"(?P<r>(?i:"
        + _PLURAL_ALT
        + r"))\b\s*[,:(-]?\s*"
        + _NAME_LIST
    ),
    re.compile(
        r"(?:^|[,;]\s*|\b(?i:meet|this is)\s+)(?P<list>"
        + _NAME_TOKEN
        + r"),\s+(?i:my|our)\s+"
        + _REL_MOD
        + r"(?P<r>(?i:"
        + _REL_ALT
        + r"))\b"
    ),
    re.compile(
        _HAVE
        + r"(?i:a|an)\s+"
        + _REL_MOD
        + r"(?:[a-z]+\s+)?(?P<r>(?i:"
        + _REL_ALT
        + r"))\b[^.;!?]{0,25}?,?\s+(?i:his|her|its|their)\s+"
        r"(?i:name is|name's|name’s)\s+" + _NAME_LIST
    ),
]
_PEOPLE_RULES += [
    re.compile(
        r"(?:^|(?<![’'s])\s)(?P<r>(?i:grandma|grandpa|granny|nana|aunt|auntie|uncle|cousin))\s+(?P<list>"
        + _NAME_TOKEN
        + r")\b"
    ),
    re.compile(
        r"(?:^|[,;]\s*)"
        + _NAME_LIST
        + r"\s+(?i:are|is)\s+(?i:my|our)\s+"
        + _REL_MOD
        + r"(?P<r>(?i:"
        + _PLURAL_ALT
        + "|"
        + _REL_ALT
        + r"))\b"
    ),
    re.compile(
        r"\b(?i:I'm|I’m|I\s+am|we're|we\s+are)\s+(?i:a\s+)?(?:(?i:proud|happy|busy|single|tired|new)\s+)?(?i:mom|mum|dad|mother|"
        r"father|parent|mama|papa)s?\s+(?i:of|to)\s+"
        + _COUNT
        + "?"
        + r"(?P<r>(?i:"
        + _PLURAL_ALT
        + r"))\b\s*[,:(-]?\s*"
        + _NAME_LIST
    ),
]
_INTRO_AGE_RE = re.compile(r",\s*(?P<a>[1-9]\d)\s*(?=,|$|\.|!)")
_INTRO_FROM_RE = re.compile(r",\s*(?i:from)\s+(?P<p>[^,;.!?]+)")
_AND_A_REL = re.compile(
    r"\b(?i:a|an)\s+"
    + _REL_MOD
    + r"(?:[a-z]+\s+)?(?P<r>(?i:"
    + _REL_ALT
    + r"))\b\s*(?:,|\s+(?i:called|named))\s*(?P<list>"
    + _NAME_TOKEN
    + r")"
)
_TEACH_RE = re.compile(
    _I_AND
    + r"(?i:teach)\s+(?P<s>[a-z][a-z -]{1,25}?)(?:\s+(?i:at|for)\s+(?P<o>[^,;.!?]+))?(?=$|[,;.!?]|\s+(?i:at|for|and|to|in|on)\b)"
)
_FIELD_RE = re.compile(_I_AND + r"(?i:work)\s+(?i:in)\s+(?P<s>[a-z][a-z &-]{1,25}?)\s+(?i:at|for)\s+(?P<o>[^,;.!?]+)")
_DO_FOR_RE = re.compile(
    _I_AND + r"(?i:do)\s+(?P<s>[A-Za-z][\w &-]{1,25}?)\s+(?i:for)\s+(?P<o>(?:a|an|the)\s+[^,;.!?]+|[A-Z][^,;.!?]*)"
)


def _split_names(names: str) -> list[str]:
    return [n for n in re.split(r"\s*,\s*|\s*,?\s+(?:and|&)\s+", names.strip()) if n]


def _is_name(n: str) -> bool:
    first = n.split()[0]
    return first not in _NOT_NAMES and first.casefold() not in NOT_NAMES


def _special(sentence: str) -> Iterator[tuple[str, str, int, int]]:
    """Facts that need more than one capture: names, lists of people, 'I teach X at Y'. (attribute, value, start, end)"""
    for rx in _NAME_RULES:
        for m in rx.finditer(sentence):
            n = m.groupdict().get("n") or m.groupdict().get("m")
            if n and _is_name(n) and not (rx is _NAME_RULES[4] and is_place(n)):  # "This is Paris!"
                yield "name", n, m.start(), m.end()
    if any(rx.search(sentence) for rx in _NAME_RULES[:1]):
        for m in _INTRO_AGE_RE.finditer(sentence):
            yield "age", m.group("a"), m.start(), m.end()
        for m in _INTRO_FROM_RE.finditer(sentence):
            place = _place_span(m.group("p"))
            if place:
                yield "from", place, m.start(), m.end()
    for rx in _PEOPLE_RULES:
        for m in rx.finditer(sentence):
            rel = m.group("r").lower()
            attr = PLURALS.get(rel) or RELATIONS.get(rel)
            if not attr:
                continue
            for n in _split_names(m.group("list")):
                if _is_name(n):
                    yield attr, n, m.start(), m.end()
            if rx is _PEOPLE_RULES[0]:  # "I have a brother called Sam and a sister called Ella"
                for m2 in _AND_A_REL.finditer(sentence, m.end()):
                    a2 = RELATIONS.get(m2.group("r").lower())
                    if a2 and _is_name(m2.group("list")):
                        yield a2, m2.group("list"), m.start(), m2.end()
    for m in _TEACH_RE.finditer(sentence):
        subj = _trim(m.group("s"))
        if subj and len(subj.split()) <= 3 and subj not in ("myself", "people", "kids", "them", "it"):
            yield "job_title", f"{subj} teacher", m.start(), m.end()
        if m.group("o"):
            org = _clean(m.group("o"), "org")
            if org:
                yield "works_at", org, m.start(), m.end()
    for rx in (_FIELD_RE, _DO_FOR_RE):
        for m in rx.finditer(sentence):
            field = _trim(m.group("s"))
            org = _clean(m.group("o"), "org")
            if field and org and not is_place(field) and not is_place(org) and len(field.split()) <= 3:
                yield "job_title", field, m.start(), m.end()
                yield "works_at", org, m.start(), m.end()


def _norm_category(c: str) -> str:
    c = re.sub(r"\s+(?:now|today|lately|currently|nowadays|again|too|though|anyway)$", "", c.lower())
    return {"colour": "color", "colours": "colors", "movie": "movie", "favourite": "favorite"}.get(c, c)


def extract_statements(text: str, subject: str) -> list[Fact]:
    """Facts stated in `text` by `subject` (first person)."""
    found: dict[tuple[str, str, bool], Fact] = {}

    def add(attribute: str, value: str, ends: bool) -> None:
        key = (attribute, value.casefold(), ends)
        if key not in found:
            text_ = (
                render(subject, attribute, value, ends=ends) if value != "*" else f"{subject}: no longer {attribute}"
            )
            found[key] = Fact(subject=subject, attribute=attribute, value=value, ends=ends, text=text_, confidence=0.7)

    for raw_sentence in _sentences(text):
        sentence = _REPEAT_RE.sub(r"\1", _DISCOURSE_RE.sub("", raw_sentence).strip())
        if not sentence:
            continue
        for rx_e, subj in _ELLIPSIS:
            if rx_e.match(sentence):
                sentence = subj + sentence[0].lower() + sentence[1:]
                break
        cands: list[tuple[str, str, bool]] = []
        for i in _GATES.open(sentence):
            attr, rx, kind = _COMPILED[i]
            for m in rx.finditer(sentence):
                if _hedged(sentence, m.start()):
                    continue
                groups = m.groupdict()
                raw = groups.get("v")
                ends = "-end" in attr
                attribute, _, const = attr.replace("-end", "").partition("=")
                value: str | None
                if attribute == "opinion":
                    const = ""  # opinion=likes|dislikes: the constant is the value, the object names the attribute
                if raw is None:
                    if const:
                        value = const
                    elif ends:
                        value = "*"  # "I quit my job": ends whatever the current value is
                    else:
                        continue
                else:
                    value = _clean(raw, kind, sentence[m.end("v") :])
                if not value:
                    continue
                if kind == "name" and value.split()[0] in _NOT_NAMES:
                    continue
                if attr == "pet-end" and not _PET_WORD_RE.search(text):
                    continue
                if attribute == "rel":
                    attribute = _RELATIONS[groups["r"].lower()]
                elif attribute == "favorite":
                    category = _norm_category(groups["c"])
                    if category.split()[0] in ("goal", "goals", "priority", "priorities", "pick", "choice", "reason"):
                        continue  # "my number one goal": an aim, not a liking
                    if category.split()[0] in ("way", "thing", "things", "part", "kind", "sort", "time"):
                        attribute, value = "opinion:" + value.lower(), "likes"  # "X is my favourite way to relax"
                    else:
                        attribute = "favorite:" + category
                elif attribute == "opinion":
                    attribute, value = "opinion:" + value.lower(), attr.split("=", 1)[1]
                elif kind == "status":
                    value = value.lower()
                    if (
                        attribute == "diet"
                        and value.endswith("s")
                        and value[:-1] in ("vegan", "vegetarian", "pescatarian")
                    ):
                        value = value[:-1]
                if _not_now(attribute, sentence, m.start(), m.end()):
                    continue
                facts = [(attribute, value)]
                if groups.get("t"):
                    facts.append(("job_title", _trim(groups["t"])))
                if attribute == "job_title" and " at " in value:  # "a developer at Shopify"
                    title, org = value.split(" at ", 1)
                    facts = [("job_title", title.strip()), ("works_at", org.strip())]
                elif attribute == "job_title" and (
                    m_in := _TITLE_IN_ORG_RE.match(value)
                ):  # "a paralegal in a law firm"
                    facts = [("job_title", m_in.group("t")), ("works_at", m_in.group("o"))]
                cands.extend((a, v, ends) for a, v in facts if v)
        for attribute, value, start, end in _special(sentence):
            if not _hedged(sentence, start) and not _not_now(attribute, sentence, start, end):
                cands.append((attribute, value, False))
        for a, v, ends in _reconcile(cands):
            add(a, v, ends)
    return list(found.values())


def _same_value(a: str, b: str) -> bool:
    ta, tb = norm_value(a).split(), norm_value(b).split()
    short, long_ = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    return bool(short) and long_[: len(short)] == short


def _reconcile(cands: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """One sentence's facts: a value it also ends is not asserted ("I was let go from my job at Uber"), and two
    rules reading the same value ("Austin, Texas" / "Austin") give one fact, the first."""
    out: list[tuple[str, str, bool]] = []
    for a, v, ends in cands:
        if a == "name" and any(a2 == "name" for a2, _, _ in out):
            continue  # the first name a sentence gives is the speaker's; later ones are nicknames or others
        if not ends and any(e and a2 == a and _same_value(v, v2) for a2, v2, e in cands):
            continue
        if any(a2 == a and e == ends and _same_value(v, v2) for a2, v2, e in out):
            continue
        out.append((a, v, ends))
    return out


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
