"""Sensitivity labels: which categories of personal information a memory holds.

Offline, no LLM: the embedding model compares a memory with a few prototype sentences per category (and with
prototypes of everyday talk that is no category), and patterns catch the unambiguous words and identifiers
(secrets.py findings included). With an LLM configured, it can label instead (PrivacyConfig.labels).

Labels live in metadata["sensitivity"] (a sorted list). A caller who passes that key sets the labels itself.
Derived memories (facts, summaries) carry the union of their sources' labels: `inherit`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..embed.base import Embedder
from ..regex_gates import Gates
from .secrets import scan

META_KEY = "sensitivity"

# id -> what it covers (docs/privacy.md)
CATEGORIES: dict[str, str] = {
    "health": "physical and mental health, diagnoses, treatment, medication, pregnancy, addiction",
    "finance": "income, debt, savings, loans, taxes, account and card numbers",
    "location": "where someone lives or is right now: addresses, home, lodging, coordinates",
    "relationships": "family and intimate relationships: partners, marriage, divorce, children, relatives",
    "identity": "identity documents and numbers: passport, national id, licence, date of birth",
    "credentials": "passwords, PINs, access codes, API keys and tokens, private keys",
    "sexuality": "sexual orientation, gender identity, sex life",
    "religion_politics": "religious beliefs and practice, political views, party and union membership",
}
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

PROTOTYPES: dict[str, tuple[str, ...]] = {
    "health": (
        "the doctor diagnosed me with a chronic illness", "I take medication every day for my condition",
        "I have an appointment with my therapist about my depression", "she had surgery at the hospital",
        "my test results came back from the lab", "I have been dealing with anxiety and mental health issues",
        "he is undergoing treatment for cancer", "I am pregnant and seeing a midwife",
        "my prescription needs to be refilled", "I am in recovery from drug addiction",
        "the specialist said my symptoms are getting worse", "I broke my leg and it is in a cast",
    ),
    "finance": (
        "I earn a salary of so much per year", "I am in debt and struggling to pay it back",
        "our mortgage payments are due each month", "my bank account balance is low",
        "I took out a loan from the bank", "I owe money on my credit cards",
        "my investments and retirement savings", "I could not afford to pay the bills this month",
        "my tax return and what I owe the government", "how much money I make at my job",
        "I declared bankruptcy", "my paycheck barely covers the rent",
    ),
    "location": (
        "my home address is on this street", "I live in this apartment in the city",
        "we moved into a house in a new neighbourhood", "I am staying at a hotel in this room",
        "I am currently at this exact place right now", "my postal code and street number",
        "you can find me at my house", "I rent a flat near the station",
        "we relocated to another country and live there now", "my location coordinates",
    ),
    "relationships": (
        "my husband and I are having marriage problems", "my wife is pregnant with our child",
        "I am getting divorced", "my boyfriend and I broke up", "my girlfriend moved in with me",
        "my kids live with their mother", "my father and I do not talk anymore",
        "my sister is getting married", "we are raising our children together",
        "my partner cheated on me", "family conflict with my parents and siblings",
        "I got engaged to my fiancé",
    ),
    "identity": (
        "my passport number is", "my social security number", "my driver's licence number",
        "my national identity card", "my date of birth is", "my visa and residence permit",
        "my mother's maiden name", "my government issued ID document", "my tax identification number",
        "my full legal name as on my documents",
    ),
    "credentials": (
        "my password is", "the login and password for the account", "the PIN code for my card",
        "the access code to open the door", "my API key and secret token", "the combination to the safe",
        "the username and passphrase", "the private key for the server", "my two-factor backup codes",
        "the wifi password",
    ),
    "sexuality": (
        "I am gay", "I came out as lesbian to my family", "I am bisexual", "he is transgender",
        "my sexual orientation", "my gender identity is non-binary", "our sex life",
        "I am attracted to people of the same sex", "we are a same-sex couple", "I am queer",
    ),
    "religion_politics": (
        "I go to church every Sunday", "I pray at the mosque", "my religious faith and beliefs",
        "I am an atheist", "I vote for this political party", "my political views are conservative",
        "I support the left wing party", "I attended a political protest", "I converted to another religion",
        "I am a member of the union", "I observe the religious holiday by fasting", "I volunteer for a campaign",
    ),
}
# Everyday talk that is no category: a memory closer to these than to a category's prototypes gets no label.
NONE_PROTOTYPES: tuple[str, ...] = (
    "I went hiking over the weekend", "we watched a movie last night", "I cooked pasta for dinner",
    "I am reading a good book", "my team won the game", "I started a painting class",
    "the weather is lovely today", "I bought new shoes", "we went to a concert with friends",
    "I am learning to play the piano", "work was busy this week", "I took photos at the beach",
    "we adopted a puppy", "I love gardening", "my favourite food is sushi", "I am planning a trip",
    "I went for a run in the park", "the meeting was moved to next week", "I finished my project",
    "we had coffee and talked about movies",
)

# Words that name a category outright (a hit labels the memory whatever the embedding says).
PATTERNS: dict[str, str] = {
    "health": r"\b(diagnos\w*|therap(y|ist)|psychiatri\w*|chemo\w*|oncolog\w*|insulin|diabet\w*|antidepressant\w*"
              r"|depress(ed|ion)|anxiety|panic attacks?|cancer|tumou?r|biopsy|surgery|hospital\w*|rehab|addiction"
              r"|medication|prescription|dose of|pregnan\w*|miscarriage|migraines?|asthma|epilep\w*|alzheimer\w*"
              r"|dementia|sclerosis|hiv|covid|insomnia|disorder|allergic|physio\w*|transplant|blood pressure"
              r"|cholesterol|heart attack|stroke|sick leave|mri|ivf|doctor'?s?|treatment|diseases?|illness"
              r"|chronic|arthritis|symptoms?|syndrome|clinic|infection|medical|psychologist|counsell?ing)\b",
    "finance": r"\b(salary|mortgage|debt|loans?|bankrupt\w*|credit score|401k|pension|paycheck|savings|taxes"
               r"|tax refund|owe|overdrawn|income|net worth|wage|bonus|irs|invest\w*|brokerage|food stamps"
               r"|bank account|down payment|out of pocket|in the red|interest rates?|loan balance|account balance"
               r"|repay\w*|paying back"
               r"|pay (it|them|him|her) back|borrow\w*|arrears|credit cards?|overdraft|in debt)\b",
    "location": r"(\b\d{1,5}\s+[A-Z][a-z]+\s+(Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way"
                r"|Court|Ct|Place|Pl)\b|\b(zip code|postcode|postal code|home address|my address|gps coordinates"
                r"|room \d+|apartment \d+\w?)\b"
                r"|\b(i|we|he|she|they) (now )?(live|lives|living|reside|resides) (in|at|on|near|with)\b"
                r"|\b(moved|moving|relocat\w*) (in)?to\b|\bbased in\b|\bstaying (at|in|with)\b"
                r"|\b(flat|apartment|house|condo|studio|cabin|cottage|farmhouse) (in|on|at|near|off|outside)\b"
                r"|\b(signed a lease|checked into|gps|my (home|place|house|flat|apartment) (is|in))\b)",
    "relationships": r"\b(my (wife|husband|boyfriend|girlfriend|partner|ex|fianc[ée]e?|son|daughter|kids|children"
                     r"|mom|mum|mother|dad|father|parents|brother|sister|stepfather|stepmother|mother-in-law"
                     r"|father-in-law|cousin|nephew|niece|grandmother|grandfather)|divorc\w*|custody|engaged"
                     r"|married|widow\w*|cheating on|broke up|couples counsell?or|split up|separated|been together"
                     r"|together for \w+ years|our (son|daughter|kids|children|baby|twins)|(little|baby) (boy|girl)"
                     r"|my (ex|wife|husband|spouse|boyfriend|girlfriend)\b)\b",
    "identity": r"\b(passport|social security|driver'?s licen[cs]e|national insurance number|id card|date of birth"
                r"|born on|maiden name|green card|residence permit|visa|birth certificate|tax id|citizenship"
                r"|asylum|alien number|legal name|aadhaar|nhs number|medicare number|student id|badge number|dob"
                r"|birth ?date|my birthday is|ssn|social insurance|id number)\b",
    "credentials": r"\b(passwords?|passcode|passphrase|pin\b|login|2fa|backup codes|recovery phrase|api key|token"
                   r"|private (ssh )?key|combination|alarm code|door code|keypad|lockbox|security question"
                   r"|unlock|credentials)",
    "sexuality": r"\b(gay|lesbian|bisexual|pansexual|asexual|demisexual|queer|transgender|trans (woman|man)"
                 r"|non-binary|came out|coming out|in the closet|outed|lgbtq?\+?|pride|same-sex|polyamor\w*"
                 r"|sex life|sexual\w*|hookups?|gender-affirming|transitioned|deadname|kink|open marriage)\b",
    "religion_politics": r"\b(church|mosque|synagogue|temple|pray\w*|rosary|ramadan|kosher|mass|bapti[sz]ed"
                         r"|atheist|agnostic|buddhis\w*|muslim|islam|christian|catholic|mormon|hindu|sikh|quaker"
                         r"|jehovah\W?s|imam|faith in|republicans?|democrats?|labour|conservatives?|libertarian"
                         r"|communist|socialis\w*|liberals?|parish\w*|congregation|elections?|ballot|political"
                         r"|green party|brexit|referendum|vote[ds]?|campaign|canvass\w*|protests?|rally|strike"
                         r"|union|pro-(choice|life)|government)\b",
}
_PATTERN_RE = {c: re.compile(p, re.IGNORECASE if c != "location" else 0) for c, p in PATTERNS.items()}
_PATTERN_RE["location"] = re.compile(PATTERNS["location"], re.IGNORECASE)
_PATTERN_LIST = list(_PATTERN_RE.items())
_PATTERN_GATES = Gates([rx for _, rx in _PATTERN_LIST])  # skips the patterns a text lacks the words for

# Tuned on the dev half of tests/fixtures/privacy_labels.jsonl (docs/privacy.md has the held-out figures).
MIN_SIM = 0.50  # a category's best prototype must reach this cosine...
MARGIN = 0.05  # ...and beat the best no-category prototype by this much


@dataclass(frozen=True)
class _Protos:
    names: tuple[str, ...]
    matrix: np.ndarray  # (n, d)
    owner: np.ndarray  # index into names, -1 for a no-category prototype


@lru_cache(maxsize=8)
def _protos(embedder: Embedder) -> _Protos:
    names = tuple(PROTOTYPES)
    rows = [(i, s) for i, n in enumerate(names) for s in PROTOTYPES[n]] + [(-1, s) for s in NONE_PROTOTYPES]
    mat = np.asarray(embedder.embed([s for _, s in rows]), dtype=np.float32)
    return _Protos(names, mat, np.array([i for i, _ in rows]))


def warm(embedder: Embedder) -> None:
    """Embed the prototypes now (once per model and process) rather than on the first write."""
    _protos(embedder)


def pattern_labels(text: str) -> set[str]:
    out = {_PATTERN_LIST[i][0] for i in _PATTERN_GATES.open(text) if _PATTERN_LIST[i][1].search(text)}
    out.update(f.category for f in scan(text))
    return out


def embedding_labels(embedder: Embedder, vectors: np.ndarray, *, min_sim: float = MIN_SIM,
                     margin: float = MARGIN) -> list[set[str]]:
    if not len(vectors):
        return []
    p = _protos(embedder)
    sims = np.asarray(vectors, dtype=np.float32) @ p.matrix.T
    none_best = sims[:, p.owner == -1].max(axis=1)
    out: list[set[str]] = []
    for r, row in enumerate(sims):
        labels = set()
        for i, name in enumerate(p.names):
            best = float(row[p.owner == i].max())
            if best >= min_sim and best - float(none_best[r]) >= margin:
                labels.add(name)
        out.append(labels)
    return out


def classify(embedder: Embedder, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[list[str]]:
    """Offline labels for each text: the patterns' categories plus the embedding's."""
    if not texts:
        return []
    vecs = np.asarray(embedder.embed(list(texts)) if vectors is None else vectors)
    emb = embedding_labels(embedder, vecs)
    return [sorted(pattern_labels(t) | e) for t, e in zip(texts, emb, strict=True)]


class _LLMLabels(BaseModel):
    labels: list[list[str]] = Field(default_factory=list)


def classify_llm(llm: Any, texts: Sequence[str], extra: Sequence[str] = ()) -> list[list[str]]:
    """Labels from the LLM, one list per text (raises LLMError on failure; the caller falls back)."""
    cats = {**CATEGORIES, **{c: "a category the user added" for c in extra}}
    prompt = (
        "Label each numbered memory with the sensitive categories it reveals about a person, from this list:\n"
        + "\n".join(f"- {c}: {d}" for c, d in cats.items())
        + "\nA memory with nothing sensitive gets []. Answer JSON: {\"labels\": [[...], [...], ...]}, one list per "
        "memory, in order.\n\n" + "\n".join(f"{i + 1}. {t[:1000]}" for i, t in enumerate(texts))
    )
    got = llm.complete_json(prompt, _LLMLabels, op="privacy_labels")
    if len(got.labels) != len(texts):
        from ..llm.client import LLMError

        raise LLMError(f"the LLM labelled {len(got.labels)} memories, expected {len(texts)}")
    return [sorted({c for c in row if c in cats}) for row in got.labels]


def check_labels(value: object) -> list[str]:
    """A caller's labels: a list of category identifiers (known ones or the user's own)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and _LABEL_RE.match(v) for v in value):
        from ..errors import ValidationError

        raise ValidationError(
            f"metadata.{META_KEY} must be a list of category names (lowercase identifiers such as "
            f"{', '.join(list(CATEGORIES)[:3])}), got {value!r}"
        )
    return sorted(set(value))


def labels_of(metadata: dict[str, Any]) -> set[str]:
    raw = metadata.get(META_KEY)
    return set(raw) if isinstance(raw, list) else set()
