"""Which changeable state a question asks about (where one lives, who one works for...), and which memories
state it, read with the embedding model against a few prototype sentences per slot. No LLM.

Used by the current-truth order (retrieve/currency.py): a present-tense question about a slot should be
answered by the newest statement of that slot, and by the facts of that slot's attributes. Slots are the
extractor's single-valued attributes plus the everyday things people replace (a car, a phone, a pet).
An attribute the table does not know is matched through its own name ("favorite:band" -> "favorite band").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..embed.base import Embedder
from ..extract.lexicon import OCCUPATIONS

# slot -> (attributes it covers, question prototypes, statement prototypes)
SLOTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "home": (
        ("lives_in",),
        ("where does she live", "which city is he based in", "where is home for them", "what is your address"),
        ("I live in a city", "we moved to a new town", "my apartment is in the city", "I relocated to another place"),
    ),
    # employer and job title answer the same question often enough ("where does Jon work?") to share a slot
    "work": (
        ("works_at", "job_title"),
        ("which company does he work for", "who is her employer", "where does she work", "what is his job",
         "what does she do for a living", "what is their occupation", "what is her role", "what position does he hold",
         "what does he do these days", "who employs her"),
        ("I work at a company", "I started a new job at a firm", "I joined a company", "I was hired by a company",
         "I work as an engineer", "I got promoted to manager", "first day at my new job",
         "I am now an employee of a firm", "I became a researcher"),
    ),
    "favorite": (
        (),  # every favorite:<thing> attribute
        ("what is her favorite band", "which food does he like best", "what is their favourite movie"),
        ("my favourite band is", "this is my favorite food now", "I love this group the most",
         "it has become my number one"),
    ),
    "car": (
        ("car", "drives"),
        ("what car does he drive", "which vehicle does she own"),
        ("I drive a car", "I bought a new car", "I traded my car for another", "my vehicle is a sedan"),
    ),
    "phone": (
        ("phone",),
        ("what phone does she use", "which smartphone does he have"),
        ("I got a new phone", "I switched to another smartphone"),
    ),
    "partner": (
        ("partner", "wife", "husband", "relationship_status"),
        ("who is she dating", "who is his partner", "is he married", "what is her relationship status",
         "who is she with these days"),
        ("I am dating someone", "my partner and I", "we got married", "I broke up with my boyfriend"),
    ),
    "pet": (
        ("pet",),
        ("what pet does she have", "what is his dog called"),
        ("I have a dog", "we adopted a cat", "my pet is a puppy"),
    ),
    "studies": (
        ("studies", "education"),
        ("what does she study", "which school does he attend"),
        ("I study biology", "I enrolled at a university", "I am a student at a college"),
    ),
    "diet": (
        ("diet",),
        ("what diet does she follow", "does he eat meat"),
        ("I am vegetarian", "I went vegan", "I stopped eating meat"),
    ),
    # not a state: what people do, feel, plan and remember. A question or memory closest to these is read as
    # no slot, so activities and events keep their plain ranking.
    "_other": (
        (),
        ("what are her hobbies", "what does he like to do for fun", "what did she do last weekend",
         "how does he feel about it", "who are her friends", "what events did they attend", "what is she planning"),
        ("I went hiking last weekend", "we had a great time at the party", "I love painting", "I feel happy today",
         "my friend and I went to a concert", "I am planning a trip"),
    ),
}
# Words that name a slot outright. The sentence model reads a question or statement as a whole, and a name
# or an unrelated clause ("Eden's current role", "...and a family with a big garden") can pull it towards
# another slot; a cue word adds CUE_BONUS to its slot's cosine, so the two readings vote together.
SLOT_CUES: dict[str, re.Pattern[str]] = {
    name: re.compile(rf"\b(?:{words})\b", re.I)
    for name, words in {
        "home": r"liv(?:e|es|ed|ing)|moved?|moving|relocat\w*|city|town|hometown|based|home|address|apartment|"
                r"flat|house|lease|neighbou?rhood",
        "work": r"work(?:s|ed|ing)?|job|jobs|employer|employs?|employed|employee|company|firm|hired|role|position|"
                r"occupation|career|promot\w+|office|boss|colleagues?|coworkers?|team|teammates|manager|onboarding|badge|"
                r"salary|payroll|profession|for\s+a\s+living|" + OCCUPATIONS,
        "favorite": r"favou?rites?|band|bands|group|number\s+one|obsessed",
        "car": r"car|cars|drives?|driving|drove|vehicle|dealer(?:ship)?|sedan|suv|truck",
        "phone": r"phone|smartphone|iphone|android",
        "partner": r"partner|dating|date|seeing|girlfriend|boyfriend|wife|husband|married|marry|engaged|"
                   r"fianc[eé]e?|spouse|broke\s+up|split\s+up|relationship|significant\s+other",
        "pet": r"pets?|dog|dogs|cat|cats|puppy|kitten|rabbit|bunny|hamster|parrot|leash|vet|adopt(?:ed)?|"
               r"rescued?|rehomed",
        "studies": r"stud(?:y|ies|ying|ied)|student|school|university|college|degree|major|enrolled",
        "diet": r"diet|vegan|vegetarian|meat|keto|gluten",
    }.items()
}
CUE_BONUS = 0.12
QUERY_MIN = 0.40  # a question's best slot prototype must reach this cosine...
QUERY_MARGIN = 0.08  # ...and beat every other slot by this much, or no slot is read
STATEMENT_MIN = 0.20  # a memory states the slot whose prototypes it is closest to, from this cosine on


@dataclass(frozen=True)
class _Protos:
    names: tuple[str, ...]
    questions: np.ndarray  # (n, d) with owners in q_owner
    q_owner: np.ndarray
    statements: np.ndarray
    s_owner: np.ndarray


@lru_cache(maxsize=8)
def _protos(embedder: Embedder) -> _Protos:
    names = tuple(SLOTS)
    qs = [(i, q) for i, n in enumerate(names) for q in SLOTS[n][1]]
    ss = [(i, s) for i, n in enumerate(names) for s in SLOTS[n][2]]
    qv = embedder.embed([q for _, q in qs])
    sv = embedder.embed([s for _, s in ss])
    return _Protos(names, np.asarray(qv), np.array([i for i, _ in qs]), np.asarray(sv), np.array([i for i, _ in ss]))


def _best(scores: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -1.0)
    np.maximum.at(out, owner, scores)
    return out


def _cues(names: Sequence[str], text: str) -> np.ndarray:
    """CUE_BONUS for each slot one of whose cue words the text holds."""
    found = _cue_slots(text)
    return np.array([CUE_BONUS if n in found else 0.0 for n in names])


@lru_cache(maxsize=8192)
def _cue_slots(text: str) -> frozenset[str]:
    return frozenset(n for n, rx in SLOT_CUES.items() if rx.search(text))


@lru_cache(maxsize=256)
def _attribute_question(embedder: Embedder, attribute: str) -> np.ndarray:
    words = attribute.replace(":", " ").replace("_", " ")
    return np.asarray(embedder.embed_one(f"what is her {words}"))


def query_slots(embedder: Embedder, qvec: np.ndarray, attributes: Sequence[str] = (), text: str = "") -> list[str]:
    """The slots a question (its vector, and its `text` for cue words) asks about, best first: the best one
    when it reaches QUERY_MIN and beats the next by QUERY_MARGIN, or the two best when both reach QUERY_MIN
    within the margin of each other and beat the third ("where does Sam live and work?"); else none.
    `attributes`: fact attributes the table does not know, read through their names; such a slot is named
    "attr:<attribute>"."""
    p = _protos(embedder)
    best = list(_best(p.questions @ qvec, p.q_owner, len(p.names)) + _cues(p.names, text))
    names = list(p.names)
    for a in dict.fromkeys(attributes):
        if a and attribute_slot(a) is None:
            names.append(f"attr:{a}")
            best.append(float(_attribute_question(embedder, a) @ qvec))
    order = [int(i) for i in np.argsort(-np.asarray(best))]
    score = [best[i] for i in order] + [-1.0, -1.0]
    if score[0] < QUERY_MIN:
        return []
    if score[0] - score[1] >= QUERY_MARGIN:
        chosen = order[:1]
    elif score[1] >= QUERY_MIN and score[1] - score[2] >= QUERY_MARGIN:
        chosen = order[:2]
    else:
        return []
    if any(names[i].startswith("_") for i in chosen):
        return []  # closest to "not a state": activities, events, feelings
    return [names[i] for i in chosen]


def statement_slots(embedder: Embedder, vectors: np.ndarray, texts: Sequence[str] = ()) -> list[str | None]:
    """For each memory vector (and its text, for cue words), the slot it states (best statement prototype
    over STATEMENT_MIN), or None."""
    if not len(vectors):
        return []
    p = _protos(embedder)
    sims = vectors @ p.statements.T  # (m, n_protos)
    per_slot = np.stack([sims[:, p.s_owner == k].max(axis=1) for k in range(len(p.names))], axis=1)
    out: list[str | None] = []
    for i, row in enumerate(per_slot):
        best = row + _cues(p.names, texts[i] if i < len(texts) else "")
        k = int(np.argmax(best))
        out.append(p.names[k] if best[k] >= STATEMENT_MIN and not p.names[k].startswith("_") else None)
    return out


@lru_cache(maxsize=64)
def slot_centroid(embedder: Embedder, slot: str) -> np.ndarray | None:
    """The normalised mean of a slot's statement prototypes: a query vector for memories stating the slot."""
    p = _protos(embedder)
    if slot not in p.names:
        return None
    v = p.statements[p.s_owner == p.names.index(slot)].mean(axis=0)
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n else None


def attribute_slot(attribute: str) -> str | None:
    if attribute.startswith("favorite:"):
        return "favorite"
    for name, (attrs, _, _) in SLOTS.items():
        if attribute in attrs:
            return name
    return None


# Inside the work slot a question may ask for the employer or for the job itself; the other attribute's
# memories then follow (the newest job title must not bury the employer of "who employed Kai in July?").
_FOCUS: dict[str, re.Pattern[str]] = {
    "works_at": re.compile(r"\b(?:employs?|employed|employer|company|firm|organi[sz]ation|work(?:ing)?\s+(?:for|at)|"
                           r"where\s+(?:do|does|did|is|was)\s+\w+(?:'s)?\s+work)\b", re.I),
    "job_title": re.compile(r"\b(?:job|role|occupation|position|title|profession|career|work(?:ing)?\s+as|"
                            r"do\s+for\s+(?:work|a\s+living)|what\s+(?:do|does|did)\s+\w+\s+do)\b", re.I),
}


def attribute_focus(query: str) -> frozenset[str]:
    """The one attribute of a shared slot a question names ("who employs Sam" -> works_at), else none."""
    hits = [a for a, rx in _FOCUS.items() if rx.search(query)]
    return frozenset(hits) if len(hits) == 1 else frozenset()
