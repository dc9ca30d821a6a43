"""Knowledge-update benchmark: does memory tell the current truth after values change?

A seeded generator writes people whose attributes (city, employer, car, favourite band, job title, pet,
partner) change over three sessions spread over a year, in varied wording, with later mentions ("echoes") of
the old values and small talk in between; half of them talk in chat messages (`{"role", "content"}`, introducing
themselves as "I'm Sam"), half in speaker turns (`{"speaker", "text", "timestamp"}`). Every wording template
(statements, changes, echoes, small talk, questions) lives in exactly one of two pools: `dev` (for tuning)
and `test` (for reporting only).

The engine sees only the conversation. The timeline (which value held when) is used after retrieval, to
score. Metrics, per attribute and overall:

- current_first@10: in `search(question, limit=10)`, the first memory naming any of the attribute's values
  names the current one (a memory naming both, like "traded my Civic for a Model 3", states the change and
  counts as current);
- context_current@150: `context(question, max_tokens=150)` names the current value;
- old_as_past: where the context names an old value, each such line is marked as past (`old_value_shown_as_past`);
- as_of_search: `search(past question, as_of=DATE)`: the first memory naming any value names the one valid then;
- as_of_facts: `facts(as_of=DATE)`, where a fact names one of the values: it names the valid one and no other;
- fact coverage (share of changes, and of initial statements, that some fact names) and search latency.
"""

from __future__ import annotations

import functools
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .metrics import percentile
from .report import svg_bars, table

ATTRS = ("lives_in", "works_at", "car", "band", "job_title", "pet", "partner")
SPLITS = ("dev", "test")
SESSION_DATES = (date(2024, 1, 15), date(2024, 6, 12), date(2024, 11, 6))
METRICS = ("current_first@10", "context_current@150", "old_as_past", "as_of_search", "as_of_facts")

# -- values (not wording: shared by both pools) -------------------------------------------------------
# No value is a word of another value, of a name, or of any template text.
VALUES: dict[str, tuple[str, ...]] = {
    "lives_in": ("Boston", "Seattle", "Denver", "Austin", "Chicago", "Portland", "Atlanta", "Toronto", "Lisbon",
                 "Berlin", "Dublin", "Melbourne", "Madrid", "Vancouver", "Nashville", "Minneapolis", "Pittsburgh",
                 "Edinburgh", "Montreal", "Oslo"),
    "works_at": ("Acme", "Globex", "Initech", "Hooli", "Vandelay Industries", "Wayne Enterprises", "Cyberdyne",
                 "Soylent", "Tyrell", "Wonka", "Pied Piper", "Dunder Mifflin", "Massive Dynamic", "Stark Labs"),
    "car": ("Civic", "Model 3", "Corolla", "Golf", "Outback", "Mustang", "Prius", "Miata", "Wrangler", "Camry",
            "Mini Cooper", "RAV4", "Bronco", "Ioniq 5"),
    "band": ("Radiohead", "Coldplay", "Arctic Monkeys", "Fleetwood Mac", "Tame Impala", "Daft Punk", "Bon Iver",
             "Vampire Weekend", "Beach House", "Portishead", "Khruangbin", "Fleet Foxes", "LCD Soundsystem",
             "The Strokes", "Metallica", "ABBA"),
    "job_title": ("nurse", "data analyst", "product manager", "graphic designer", "software engineer",
                  "accountant", "pharmacist", "architect", "paralegal", "sous chef", "UX researcher",
                  "electrician", "project coordinator", "marketing specialist"),
    "pet": ("Biscuit", "Pepper", "Mochi", "Waffles", "Ziggy", "Noodle", "Pickles", "Olive", "Juniper", "Tofu",
            "Pretzel", "Clementine", "Gizmo", "Nacho"),
    "partner": ("Priya", "Marcus", "Elena", "Tomas", "Aisha", "Kenji", "Sofia", "Daniel", "Leila", "Mateo",
                "Hannah", "Omar", "Ingrid", "Ravi"),
}
NAMES = ("Sam", "Jordan", "Alex", "Taylor", "Casey", "Riley", "Morgan", "Jamie", "Quinn", "Avery", "Harper",
         "Rowan", "Skyler", "Emerson", "Hayden", "Finley", "Logan", "Blake", "Cameron", "Dakota", "Elliot",
         "Frankie", "Jesse", "Kai", "Micah", "Nico", "Oakley", "Peyton", "Remy", "Tatum", "Wren", "Zion", "Ari",
         "Bailey", "Charlie", "Devon", "Eden", "Flynn", "Jules", "Marlowe", "Sasha", "Robin", "Noa", "Luca",
         "Mira", "Theo", "Iris", "Felix", "Nora", "Hugo")
FRIENDS = ("Chris", "Pat", "Lee", "Kim", "Dana", "Toni", "Mel", "Jo")

# -- wording pools ------------------------------------------------------------------------------------
# Placeholders: {v} the value, {old} the previous value, {a_v}/{a_old} with "a"/"an", {name}, {month}.
# test: written first, used only for reporting.
TEST_POOL: dict[str, Any] = {
    "intro": ["Hi, I'm {name}.", "Hey there, {name} here."],
    "small_talk": ["The weather has been awful this week.", "I finally finished that mystery novel.",
                   "Any tips for sleeping better?", "Made lasagna for dinner, it turned out great.",
                   "My knee has been bothering me after running.", "Thinking about learning the guitar."],
    "assistant": ["That sounds lovely.", "Thanks for sharing that!", "How are you feeling about it?",
                  "Good to know."],
    "friend": ["How have you been?", "No way, tell me more!", "That's wild.", "Haha, classic."],
    "lives_in": {
        "initial": ["I live in {v}.", "Home for me is {v}, been here a few years now.",
                    "I'm based in {v} at the moment."],
        "change": ["I moved to {v} last month!", "Just signed a lease in {v}, the move is done.",
                   "We finally relocated to {v}; the boxes are still everywhere."],
        "echo": ["I really miss the bagels back in {old}.", "An old neighbour from {old} sent me a postcard."],
        "present_1p": ["Where do I live now?", "Which city am I living in these days?"],
        "present_3p": ["Where does {name} live now?", "What city is {name} based in currently?"],
        "past": ["Where did I live back then?", "Which city was I living in in {month}?",
                 "Where was {name} living at that time?"],
    },
    "works_at": {
        "initial": ["I work at {v}.", "I've been at {v} for three years now.", "My employer is {v}."],
        "change": ["Started at {v} on Monday!", "I accepted the offer from {v} and handed in my notice.",
                   "First week at {v} done, new badge and everything."],
        "echo": ["Ran into my old boss from {old} at the gym.", "Got a farewell card from the {old} crew, so sweet."],
        "present_1p": ["Where do I work now?", "Which company am I working for these days?"],
        "present_3p": ["Which company does {name} work for these days?", "Who is {name}'s employer now?"],
        "past": ["Where was I working back then?", "Which company did {name} work for in {month}?"],
    },
    "car": {
        "initial": ["I drive {a_v}.", "My {v} is getting a bit old but it runs fine."],
        "change": ["Traded my {old} for {a_v}!", "Picked up my new {v} from the dealer yesterday.",
                   "Sold the {old}; I'm driving {a_v} now."],
        "echo": ["Found an old parking ticket from my {old} days.", "Sometimes I still miss the {old}'s heated seats."],
        "present_1p": ["What car do I drive now?", "Which car am I driving these days?"],
        "present_3p": ["What car does {name} drive?", "What does {name} drive now?"],
        "past": ["What car did I drive back then?", "What was {name} driving in {month}?"],
    },
    "band": {
        "initial": ["My favourite band is {v}.", "Nobody beats {v}, they're my all-time favourite band.",
                    "I've been listening to {v} nonstop, best band ever."],
        "change": ["Honestly {v} is my favourite band now.",
                   "I'm so into {v} these days, they've replaced {old} as my favourite.",
                   "New favourite band alert: {v}."],
        "echo": ["Heard {a_old} song in a café and felt nostalgic.", "Found my old {old} concert T-shirt."],
        "present_1p": ["What's my favourite band now?", "Which band do I like most these days?"],
        "present_3p": ["What is {name}'s favourite band?", "Which band does {name} love most right now?"],
        "past": ["What was my favourite band back then?", "Which band was {name}'s favourite in {month}?"],
    },
    "job_title": {
        "initial": ["I work as {a_v}.", "I'm {a_v} by trade.", "Being {a_v} keeps me busy."],
        "change": ["I got promoted to {v}!", "I switched careers and now work as {a_v}.",
                   "My new role is {v}, still getting used to it."],
        "echo": ["Back when I was {a_old} I never had free weekends.", "My {old} skills still come in handy."],
        "present_1p": ["What is my job now?", "What do I do for a living these days?"],
        "present_3p": ["What is {name}'s job title now?", "What does {name} work as?"],
        "past": ["What was my job back then?", "What was {name}'s role in {month}?"],
    },
    "pet": {
        "initial": ["I have a dog named {v}.", "My cat {v} sleeps on my keyboard all day."],
        "change": ["{old} went to live with my parents on their farm, and I adopted a puppy called {v}.",
                   "Sadly {old} passed away in the spring; we rescued a kitten named {v} last week."],
        "echo": ["Found one of {old}'s old toys under the couch.", "I still keep a photo of {old} on my desk."],
        "present_1p": ["What's my pet's name now?", "What is the name of my pet these days?"],
        "present_3p": ["What is the name of {name}'s pet?", "What pet does {name} have now?"],
        "past": ["What was my pet called back then?", "What was {name}'s pet's name in {month}?"],
    },
    "partner": {
        "initial": ["{v} and I have been together two years now.", "My partner {v} is an amazing cook."],
        "change": ["{old} and I broke up in the spring; I've been seeing {v} since.",
                   "I'm dating {v} now, things ended with {old}."],
        "echo": ["{old} texted me happy birthday, which was kind.",
                 "Walked past the restaurant where {old} and I had our first date."],
        "present_1p": ["Who is my partner now?", "Who am I dating these days?"],
        "present_3p": ["Who is {name}'s partner?", "Who is {name} seeing now?"],
        "past": ["Who was my partner back then?", "Who was {name} dating in {month}?"],
    },
}

# dev: for tuning; no sentence in common with the test pool.
DEV_POOL: dict[str, Any] = {
    "intro": ["Hello! My name is {name}.", "Call me {name}."],
    "small_talk": ["It's been raining nonstop.", "Just binge-watched a whole season of a baking show.",
                   "Do you know a good stretching routine?", "Baked sourdough for the first time.",
                   "I've been trying to drink more water.", "My neighbour's renovation is so loud."],
    "assistant": ["Interesting, tell me more.", "Got it, I'll keep that in mind.", "That must be exciting.",
                  "Noted!"],
    "friend": ["What's new with you?", "Oh nice!", "Seriously?", "Ha, sounds about right."],
    "lives_in": {
        "initial": ["I've lived in {v} for about five years.", "My apartment in {v} is tiny but I love it.",
                    "Greetings from rainy {v}, my hometown these days."],
        "change": ["Big news: I relocated to {v} a few weeks ago.", "Got the keys to our new place in {v} on Friday!",
                   "Living in {v} now, the move went smoothly."],
        "echo": ["Still think the coffee in {old} was better.",
                 "Flew back to {old} for a friend's wedding last weekend."],
        "present_1p": ["What city do I call home now?", "Where am I living currently?"],
        "present_3p": ["Where is {name} living these days?", "Which city does {name} live in?"],
        "past": ["Where was I living in {month}?", "Which city did {name} live in back then?"],
    },
    "works_at": {
        "initial": ["I'm a long-timer at {v}, nearly six years.", "Work at {v} has been hectic lately.",
                    "I'm employed by {v}."],
        "change": ["I joined {v} last month.", "Officially {a_v} employee as of this week!",
                   "Said goodbye to {old} and started my new job at {v}."],
        "echo": ["Had lunch with my former {old} teammates.",
                 "Still get {old} newsletters in my inbox, need to unsubscribe."],
        "present_1p": ["Who do I work for now?", "What's my current employer?"],
        "present_3p": ["Where does {name} work currently?", "What company is {name} at now?"],
        "past": ["Who was I working for in {month}?", "Where did {name} work back then?"],
    },
    "car": {
        "initial": ["My daily driver is {a_v}.", "Took the {v} in for an oil change today."],
        "change": ["Finally bought {a_v}, goodbye {old}!", "Just got {a_v}, the old {old} went to my nephew.",
                   "New car day: {a_v}!"],
        "echo": ["The mechanic who used to fix my {old} retired.",
                 "Saw {a_old} just like my old one in the parking lot."],
        "present_1p": ["What am I driving nowadays?", "What's my car these days?"],
        "present_3p": ["Which car does {name} have now?", "What is {name}'s current car?"],
        "past": ["What car was I driving in {month}?", "Which car did {name} have back then?"],
    },
    "band": {
        "initial": ["{v} is the band I always come back to.", "My favorite band is {v}.",
                    "I've seen {v} live four times, they're my favourite."],
        "change": ["These days my favourite band is {v}.", "Can't stop playing {v}, definitely my new favourite band.",
                   "{v} has become my number one band."],
        "echo": ["Someone played {old} at the party, brought back memories.", "Sold my {old} vinyl collection."],
        "present_1p": ["Who is my favourite band at the moment?", "What band am I obsessed with now?"],
        "present_3p": ["What band does {name} like best now?", "What's {name}'s favourite group currently?"],
        "past": ["What was my favourite band in {month}?", "Which band did {name} love back then?"],
    },
    "job_title": {
        "initial": ["My job title is {v}.", "I've been {a_v} for a while now."],
        "change": ["I'm {a_v} now, started the new role last week.", "Changed jobs: I'm now working as {a_v}.",
                   "Officially {a_v} as of this month."],
        "echo": ["An old colleague from my {old} years called me.",
                 "I don't miss the long shifts I had as {a_old}."],
        "present_1p": ["What's my role nowadays?", "What is my current position?"],
        "present_3p": ["What does {name} do for work now?", "What's {name}'s current role?"],
        "past": ["What was I working as in {month}?", "What job did {name} have back then?"],
    },
    "pet": {
        "initial": ["My dog {v} needs a long walk every morning.", "Meet {v}, my lazy old cat."],
        "change": ["We rehomed {old} with a family who has a big garden, and now {v} the rabbit lives with us.",
                   "Say hello to {v}, our new puppy! {old} lives with my sister now."],
        "echo": ["I still have {old}'s leash in the closet.", "Saw a cat that looked just like {old}."],
        "present_1p": ["What is my pet called nowadays?", "Which pet do I have now?"],
        "present_3p": ["What's {name}'s pet called?", "What's the name of {name}'s current pet?"],
        "past": ["What pet did I have in {month}?", "What was {name}'s pet back then?"],
    },
    "partner": {
        "initial": ["My significant other {v} is visiting this weekend.", "{v}, my partner, wants to adopt a cat."],
        "change": ["Started going out with {v} after {old} and I split.", "Meet my new partner, {v}!"],
        "echo": ["Bumped into {old} at the farmers market, a bit awkward.", "Still have the scarf {old} gave me."],
        "present_1p": ["Who is my current partner?", "Who am I in a relationship with now?"],
        "present_3p": ["Who is {name} dating now?", "Who's {name}'s partner these days?"],
        "past": ["Who was I seeing in {month}?", "Who was {name}'s partner back then?"],
    },
}
# A second round of dev wording, written after the first was tuned on, so tuning sees more than one style.
_DEV_MORE: dict[str, dict[str, list[str]]] = {
    'lives_in': {
        'initial': [
            "Our flat in {v} gets great light in the mornings.",
            "Walking to work through {v} is the best part of my day.",
        ],
        'change': [
            "We packed up everything and moved across the country to {v}.",
            "New address: {v}! Still unpacking.",
            "After years away I finally settled in {v}.",
        ],
        'echo': [
            "Watched a documentary about {old} and got homesick.",
            "My landlord back in {old} still owes me a deposit.",
        ],
        'present_1p': ["Which city am I in at the moment?"],
        'present_3p': ["What's {name}'s home city?", "Where's {name}'s home these days?"],
        'past': ["Which city was home for me in {month}?", "Where was {name} based in {month}?"],
    },
    'works_at': {
        'initial': ["Been with {v} since graduating.", "Another long day at the {v} office."],
        'change': ["I'm at {v} now, the team is great.", "Left my old job; {v} hired me on Monday."],
        'echo': ["The {old} holiday party photos just resurfaced.", "A recruiter from {old} keeps emailing me."],
        'present_1p': ["Which company employs me these days?"],
        'present_3p': ["Who employs {name} now?", "Which firm is {name} with?"],
        'past': ["Which company was I with in {month}?", "Who employed {name} in {month}?"],
    },
    'car': {
        'initial': ["Washed the {v} this morning, it looks brand new.", "Drove my {v} up the coast last weekend."],
        'change': [
            "Said goodbye to the {old} and drove home in {a_v}.",
            "We replaced the {old} with {a_v} this month.",
            "The dealer gave me a good deal on {a_v}.",
        ],
        'echo': ["Still have the {old}'s spare key on my keychain.", "Someone parked {a_old} like my old one outside."],
        'present_1p': ["What vehicle do I have now?"],
        'present_3p': ["What is {name} driving these days?", "Which vehicle does {name} own?"],
        'past': ["Which car did I own in {month}?", "What was {name}'s car in {month}?"],
    },
    'band': {
        'initial': ["Nothing relaxes me like {v}, my favourite band.", "{v} will always be my favourite band."],
        'change': [
            "My new favourite band? {v}, no question.",
            "Lately {v} has taken over as my favourite band.",
            "{v} is my top band right now, sorry {old}.",
        ],
        'echo': ["Put on an old {old} record while cooking.", "Skipped the {old} reunion tour this year."],
        'present_1p': ["Which band is my favourite right now?"],
        'present_3p': ["Who is {name}'s favourite band these days?"],
        'past': ["Which band did I like best in {month}?", "What was {name}'s favourite band in {month}?"],
    },
    'job_title': {
        'initial': ["Ten years as {a_v} and I still love it.", "Work as {a_v} keeps me on my feet."],
        'change': ["Took a new position as {a_v} last month.", "Retrained and now I'm {a_v}.", "Got the {v} job!"],
        'echo': ["Ran into my old team from my {old} days.", "Sometimes I miss the {old} routine."],
        'present_1p': ["What's my occupation now?"],
        'present_3p': ["What is {name}'s occupation these days?", "What does {name} do now?"],
        'past': ["What was my occupation in {month}?", "What did {name} do for work in {month}?"],
    },
    'pet': {
        'initial': ["Walked {v}, my beagle, around the park.", "{v} the cat knocked my coffee over again."],
        'change': [
            "{old} is with my parents now, and we brought home a kitten called {v}.",
            "After {old} died we adopted a dog named {v}.",
        ],
        'echo': ["Found {old}'s collar in a drawer.", "My neighbour asked about {old} today."],
        'present_1p': ["What's the name of my pet now?"],
        'present_3p': ["What's the name of {name}'s pet now?", "Which pet lives with {name} these days?"],
        'past': ["What was my pet's name in {month}?", "Which pet did {name} have in {month}?"],
    },
    'partner': {
        'initial': ["{v} and I are celebrating our anniversary soon.", "Date night with {v} tonight!"],
        'change': ["Things with {old} are over; I'm with {v} now.", "{v} and I made it official last week."],
        'echo': ["Deleted my old photos with {old}.", "Heard {old} moved to another city."],
        'present_1p': ["Who am I with these days?"],
        'present_3p': ["Who is {name} with now?", "Who's {name}'s significant other now?"],
        'past': ["Who was my partner in {month}?", "Who was {name} with in {month}?"],
    },
}
for _attr, _more in _DEV_MORE.items():
    for _k, _v in _more.items():
        DEV_POOL[_attr][_k] = [*DEV_POOL[_attr][_k], *_v]
POOLS: dict[str, dict[str, Any]] = {"dev": DEV_POOL, "test": TEST_POOL}


def pool_sentences(pool: dict[str, Any]) -> set[str]:
    """Every template of a pool (to check that the pools are disjoint)."""
    out: set[str] = set()
    for v in pool.values():
        if isinstance(v, list):
            out.update(v)
        else:
            for lst in v.values():
                out.update(lst)
    return out


# -- the generated data --------------------------------------------------------------------------------
@dataclass
class Turn:
    text: str
    who: str  # "self", "friend" or "assistant"
    at: str  # ISO-8601 time


@dataclass
class Session:
    index: int
    date: str  # ISO date
    turns: list[Turn] = field(default_factory=list)


@dataclass
class Span:
    """One value of one attribute and the session dates it held over (end None: still current)."""

    value: str
    start: str
    end: str | None


@dataclass
class Question:
    pid: str
    attr: str
    kind: str  # "present" or "as_of"
    text: str
    as_of: str | None
    expected: str  # scoring only
    values: list[str]  # every value the attribute had (scoring only)


@dataclass
class Person:
    pid: str
    name: str
    form: str  # "chat" or "turns"
    friend: str
    sessions: list[Session]
    timeline: dict[str, list[Span]]  # scoring only: never given to the engine
    changed: list[str]


def _article(x: str) -> str:
    return ("an " if x[0].lower() in "aeiou" else "a ") + x


def _fill(tpl: str, *, v: str = "", old: str = "", name: str = "", month: str = "") -> str:
    return tpl.format(v=v, old=old, a_v=_article(v) if v else "", a_old=_article(old) if old else "", name=name,
                      month=month)


def generate(people: int = 40, *, seed: int = 7, split: str = "test") -> tuple[list[Person], list[Question]]:
    """Deterministic per (people, seed, split): the people and their questions."""
    if split not in POOLS:
        raise ValidationError(f"split must be one of {', '.join(SPLITS)}")
    if not 1 <= people <= len(NAMES):
        raise ValidationError(f"people must be between 1 and {len(NAMES)}")
    pool = POOLS[split]
    rng = random.Random(f"{seed}:{split}")
    names = rng.sample(NAMES, people)
    persons: list[Person] = []
    questions: list[Question] = []
    for i, name in enumerate(names):
        pid = f"p{i:02d}"
        form = "chat" if i % 2 == 0 else "turns"
        dates = [d + timedelta(days=rng.randint(-5, 5)) for d in SESSION_DATES]
        # which attributes change, and when: 2-3 of them, once, sometimes twice (session 2 then 3)
        changed = rng.sample(ATTRS, rng.choice((2, 3)))
        plan: dict[str, list[int]] = {}
        for a in changed:
            s = rng.choice((1, 2))
            plan[a] = [1, 2] if s == 1 and rng.random() < 0.25 else [s]
        timeline: dict[str, list[Span]] = {}
        for a in ATTRS:
            vals = rng.sample(VALUES[a], 1 + len(plan.get(a, [])))
            starts = [0, *plan.get(a, [])]
            timeline[a] = [Span(v, dates[s].isoformat(), dates[starts[j + 1]].isoformat() if j + 1 < len(starts)
                                else None) for j, (v, s) in enumerate(zip(vals, starts, strict=True))]
        # what is said in each session (the person's own lines, before interleaving)
        lines: list[list[str]] = [[], [], []]
        lines[0].append(_fill(rng.choice(pool["intro"]), name=name))
        first = [_fill(rng.choice(pool[a]["initial"]), v=timeline[a][0].value) for a in ATTRS]
        rng.shuffle(first)
        lines[0] += first
        chunks_next: list[list[str]] = []
        for s in (1, 2):
            chunks: list[list[str]] = []
            for a in ATTRS:
                spans = timeline[a]
                for j in range(1, len(spans)):
                    if spans[j].start != dates[s].isoformat():
                        continue
                    old = spans[j - 1].value
                    chunk = [_fill(rng.choice(pool[a]["change"]), v=spans[j].value, old=old)]
                    if rng.random() < 0.3:  # an echo of the old value later in the same session
                        chunk.append(_fill(rng.choice(pool[a]["echo"]), old=old))
                    chunks.append(chunk)
                    if s == 1 and rng.random() < 0.7:  # and in the next session
                        chunks_next.append([_fill(rng.choice(pool[a]["echo"]), old=old)])
            if s == 2:
                chunks += chunks_next
            rng.shuffle(chunks)
            lines[s] = [x for c in chunks for x in c]
        for s in range(3):
            for talk in rng.sample(pool["small_talk"], 2 if s == 0 else 3):  # small talk at random places
                lines[s].insert(rng.randint(1 if s == 0 else 0, len(lines[s])), talk)
        friend = rng.choice(FRIENDS)
        sessions = []
        for s in range(3):
            t = datetime(dates[s].year, dates[s].month, dates[s].day, 18, 0, tzinfo=UTC)
            turns: list[Turn] = []
            for line in lines[s]:
                if form == "turns" and rng.random() < 0.5:
                    turns.append(Turn(rng.choice(pool["friend"]), "friend", t.isoformat()))
                    t += timedelta(minutes=1)
                turns.append(Turn(line, "self", t.isoformat()))
                t += timedelta(minutes=1)
                if form == "chat":
                    turns.append(Turn(rng.choice(pool["assistant"]), "assistant", t.isoformat()))
                    t += timedelta(minutes=1)
            sessions.append(Session(s + 1, dates[s].isoformat(), turns))
        persons.append(Person(pid, name, form, friend, sessions, timeline, changed))
        for a in changed:
            spans = timeline[a]
            values = [sp.value for sp in spans]
            for style in ("present_1p", "present_3p"):
                questions.append(Question(pid, a, "present", _fill(rng.choice(pool[a][style]), name=name), None,
                                          spans[-1].value, values))
            for sp in spans[:-1]:
                # a month after the last session before the change: the old value still held, and was said
                change = date.fromisoformat(sp.end or "")
                before = max(d for d in dates if d < change)
                when = before + timedelta(days=30)
                q = _fill(rng.choice(pool[a]["past"]), name=name, month=when.strftime("%B %Y"))
                questions.append(Question(pid, a, "as_of", q, datetime(when.year, when.month, when.day, 12,
                                                                        tzinfo=UTC).isoformat(), sp.value, values))
    return persons, questions


# -- ingestion: only the conversation reaches the engine -------------------------------------------------
def ingest(mem: Any, person: Person) -> int:
    """Add one person's three sessions. Chat people: one `add` per exchange; speaker-turn people: one per session."""
    n = 0
    for ses in person.sessions:
        sid = f"{person.pid}-s{ses.index}"
        if person.form == "chat":
            for j in range(0, len(ses.turns), 2):
                pair = ses.turns[j:j + 2]
                msgs = [{"role": "user" if t.who == "self" else "assistant", "content": t.text} for t in pair]
                mem.add(msgs, user_id=person.pid, session_id=sid, timestamp=pair[0].at)
                n += len(msgs)
        else:
            turns = [{"speaker": person.name if t.who == "self" else person.friend, "text": t.text,
                      "timestamp": t.at} for t in ses.turns]
            mem.add(turns, user_id=person.pid, session_id=sid)
            n += len(turns)
    return n


# -- scoring (after retrieval) -----------------------------------------------------------------------
def names(text: str, value: str) -> bool:
    """The value appears in the text, case-insensitive, not inside a longer word."""
    return re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text, re.IGNORECASE) is not None


def first_naming(texts: Sequence[str], values: Sequence[str]) -> str | None:
    """The first text (in rank order) that names any of the values."""
    return next((t for t in texts if any(names(t, v) for v in values)), None)


def current_first(texts: Sequence[str], current: str, olds: Sequence[str]) -> bool:
    """A memory naming the current value ranks above every memory naming only an old value."""
    top = first_naming(texts, [current, *olds])
    return top is not None and names(top, current)


def valid_first(texts: Sequence[str], expected: str, values: Sequence[str]) -> bool:
    """as_of: the first memory naming any of the attribute's values names the one valid then."""
    top = first_naming(texts, values)
    return top is not None and names(top, expected)


PAST_MARKERS = ("(until ", "before:", "(past)", "previously", "superseded", "no longer", "formerly")
_LINE_DATE = re.compile(r"\[(\d{4}-\d{2}-\d{2})")


def old_value_shown_as_past(context: str, current: str, olds: dict[str, str]) -> bool | None:
    """None when the context names no old value; else whether every line naming one shows it as past.

    `olds` maps each old value to the date (ISO) it stopped holding. A line passes when it is marked as
    historical (PAST_MARKERS), when it also names the current value (it tells the change), or when it is
    dated on/after the old value's end (a later mention of the past, like "I miss Boston's bagels")."""
    seen = False
    for line in context.splitlines():
        named = [v for v in olds if names(line, v)]
        if not named:
            continue
        seen = True
        low = line.casefold()
        if names(line, current) or any(m in low for m in PAST_MARKERS):
            continue
        m = _LINE_DATE.search(line)
        if m and all(m.group(1) >= olds[v] for v in named):
            continue
        return False
    return True if seen else None


def facts_as_of_ok(fact_texts: Sequence[str], expected: str, values: Sequence[str]) -> bool | None:
    """None when no fact names any of the values; else: some fact names the expected one, none another."""
    hit = [t for t in fact_texts if any(names(t, v) for v in values)]
    if not hit:
        return None
    others = [v for v in values if v != expected]
    return any(names(t, expected) for t in hit) and not any(names(t, v) for t in hit for v in others)


def _fact_texts(records: Sequence[Any]) -> list[str]:
    return [str((r.metadata or {}).get("value") or r.text) for r in records]


# -- running ------------------------------------------------------------------------------------------
def _method_configs(compare: bool) -> dict[str, Any]:
    from ..config import MemoryConfig

    # extraction="rules": the default without an LLM, whatever the environment configures
    cfgs: dict[str, Any] = {}
    if compare:
        cfgs["current_truth off"] = MemoryConfig(extraction="rules", lifecycle={"current_truth": False})
    cfgs["default"] = MemoryConfig(extraction="rules")
    return cfgs


def _rate(xs: Sequence[bool | None]) -> dict[str, Any]:
    vals = [x for x in xs if x is not None]
    return {"n": len(vals), "rate": sum(vals) / len(vals) if vals else None}


def run_method(mem: Any, persons: Sequence[Person], questions: Sequence[Question], *, keep_failures: int = 0,
               tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Ask every question of one ingested store and score it."""
    by_pid = {p.pid: p for p in persons}
    rows: dict[str, dict[str, list[bool | None]]] = {a: {m: [] for m in METRICS} for a in ATTRS}
    failures: list[dict[str, Any]] = []
    lat: list[float] = []

    def fail(q: Question, metric: str, shown: Any) -> None:
        if sum(1 for f in failures if f["attr"] == q.attr and f["metric"] == metric) < keep_failures:
            failures.append({"person": q.pid, "attr": q.attr, "metric": metric, "question": q.text,
                             "as_of": q.as_of, "expected": q.expected, "values": q.values, "shown": shown})

    for q in questions:
        p = by_pid[q.pid]
        r = rows[q.attr]
        if q.kind == "present":
            olds = [v for v in q.values if v != q.expected]
            t0 = time.perf_counter()
            res = mem.search(q.text, user_id=q.pid, limit=10)
            lat.append((time.perf_counter() - t0) * 1000)
            texts = [x.memory.text for x in res]
            ok = current_first(texts, q.expected, olds)
            r["current_first@10"].append(ok)
            if not ok:
                fail(q, "current_first@10", texts)
            ctx = mem.context(q.text, user_id=q.pid, max_tokens=150).text
            ok = names(ctx, q.expected)
            r["context_current@150"].append(ok)
            if not ok:
                fail(q, "context_current@150", ctx)
            ends = {sp.value: sp.end for sp in p.timeline[q.attr] if sp.end is not None}
            past = old_value_shown_as_past(ctx, q.expected, ends)
            r["old_as_past"].append(past)
            if past is False:
                fail(q, "old_as_past", ctx)
        else:
            res = mem.search(q.text, user_id=q.pid, as_of=q.as_of, limit=10)
            texts = [x.memory.text for x in res]
            ok = valid_first(texts, q.expected, q.values)
            r["as_of_search"].append(ok)
            if not ok:
                fail(q, "as_of_search", texts)
            facts = _fact_texts(mem.facts(user_id=q.pid, as_of=q.as_of))
            fok = facts_as_of_ok(facts, q.expected, q.values)
            r["as_of_facts"].append(fok)
            if fok is False:
                fail(q, "as_of_facts", facts)
        if tick:
            tick()
    # fact coverage: does some fact (current or historical) name the value a statement introduced?
    cov: dict[str, dict[str, list[bool]]] = {a: {"changes": [], "initial": []} for a in ATTRS}
    for p in persons:
        facts = _fact_texts(mem.facts(user_id=p.pid, include_history=True))
        for a, spans in p.timeline.items():
            for j, sp in enumerate(spans):
                cov[a]["changes" if j else "initial"].append(any(names(t, sp.value) for t in facts))
    by_attr: dict[str, Any] = {}
    for a in ATTRS:
        by_attr[a] = {m: _rate(rows[a][m]) for m in METRICS}
        by_attr[a]["fact_coverage_changes"] = _rate(cov[a]["changes"])
        by_attr[a]["fact_coverage_initial"] = _rate(cov[a]["initial"])
    overall = {m: _rate([x for a in ATTRS for x in rows[a][m]]) for m in METRICS}
    overall["fact_coverage_changes"] = _rate([x for a in ATTRS for x in cov[a]["changes"]])
    overall["fact_coverage_initial"] = _rate([x for a in ATTRS for x in cov[a]["initial"]])
    out: dict[str, Any] = {"overall": overall, "by_attribute": by_attr,
                           "latency_ms": {"p50": percentile(lat, 50) if lat else None,
                                          "p95": percentile(lat, 95) if lat else None,
                                          "mean": statistics.fmean(lat) if lat else None}}
    if keep_failures:
        out["failures"] = failures
    return out


def run(*, people: int = 40, seed: int = 7, split: str = "test", compare: bool = False, embedder: Any = None,
        progress: bool = False, keep_failures: int | None = None) -> dict[str, Any]:
    """Generate, ingest (one store per method), ask, score. Failure examples are kept for the dev split only."""
    from .. import Memory

    persons, questions = generate(people, seed=seed, split=split)
    keep = (5 if split == "dev" else 0) if keep_failures is None else keep_failures
    n_turns = sum(len(s.turns) for p in persons for s in p.sessions)
    report: dict[str, Any] = {
        "benchmark": "updates", "split": split, "seed": seed, "people": people, "turns": n_turns,
        "embedder": getattr(embedder, "name", None) or type(embedder).__name__,
        "changes": sum(len(p.timeline[a]) - 1 for p in persons for a in ATTRS),
        "questions": {"present": sum(q.kind == "present" for q in questions),
                      "as_of": sum(q.kind == "as_of" for q in questions)},
        "forms": {"chat": sum(p.form == "chat" for p in persons), "turns": sum(p.form == "turns" for p in persons)},
        "methods": {},
    }
    cfgs = _method_configs(compare)
    with tempfile.TemporaryDirectory(prefix="engramdb-updates-") as tmp:
        bar_ctx: Any = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from ..cli.output import err_console

            bar_ctx = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), console=err_console, transient=True)
            bar_ctx.start()
        try:
            for name, cfg in cfgs.items():
                mem = Memory(os.path.join(tmp, f"{len(report['methods'])}.db"), embedder=embedder, config=cfg)
                task = bar_ctx.add_task(f"ingest ({name})", total=len(persons)) if bar_ctx else None
                t0 = time.perf_counter()
                for p in persons:
                    ingest(mem, p)
                    if bar_ctx:
                        bar_ctx.advance(task)
                ingest_s = time.perf_counter() - t0
                qtask = bar_ctx.add_task(f"questions ({name})", total=len(questions)) if bar_ctx else None
                tick: Callable[[], None] | None = None
                if bar_ctx is not None and qtask is not None:
                    tick = functools.partial(bar_ctx.advance, qtask)
                res = run_method(mem, persons, questions, keep_failures=keep, tick=tick)
                res["ingest_s"] = ingest_s
                report["methods"][name] = res
                mem.close()
        finally:
            if bar_ctx:
                bar_ctx.stop()
    return report


# -- reports ----------------------------------------------------------------------------------------------
_ROWS = (*METRICS, "fact_coverage_changes", "fact_coverage_initial")


def _cell(r: dict[str, Any]) -> str:
    return "–" if r["rate"] is None else f"{r['rate']:.3f} ({r['n']})"


def markdown(rep: dict[str, Any], chart_name: str | None = None) -> str:
    q = rep["questions"]
    parts = ["# Knowledge updates (no LLM)", "",
             f"Split `{rep['split']}`, seed {rep['seed']}: {rep['people']} people ({rep['forms']['chat']} chat, "
             f"{rep['forms']['turns']} speaker turns), {rep['turns']} turns, {rep['changes']} changes; "
             f"{q['present']} present-tense and {q['as_of']} as_of questions; embedder `{rep['embedder']}`. "
             "Cells: rate (n).", "",
             "## Overall", "",
             table(["metric", *rep["methods"]],
                   [[m, *(_cell(r["overall"][m]) for r in rep["methods"].values())] for m in _ROWS]
                   + [["search p50 ms", *(f"{r['latency_ms']['p50']:.1f}" if r["latency_ms"]["p50"] is not None
                                          else "–" for r in rep["methods"].values())],
                      ["ingest s", *(f"{r['ingest_s']:.1f}" for r in rep["methods"].values())]]),
             ""]
    for name, r in rep["methods"].items():
        parts += [f"## {name}: by attribute", "",
                  table(["metric", *ATTRS, "all"],
                        [[m, *(_cell(r["by_attribute"][a][m]) for a in ATTRS), _cell(r["overall"][m])]
                         for m in _ROWS]), ""]
    if chart_name:
        parts += [f"![overall metrics per method]({chart_name})", ""]
    return "\n".join(parts) + "\n"


def chart(rep: dict[str, Any]) -> str:
    groups = {m: {name: r["overall"][m]["rate"] or 0.0 for name, r in rep["methods"].items()} for m in METRICS}
    return svg_bars(groups, title=f"Knowledge updates ({rep['split']} split)", ylabel="rate")


def write(rep: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write updates_<split>.json, .md and .svg under out_dir; returns their paths."""
    import json

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"updates_{rep['split']}"
    paths = {"json": str(d / f"{stem}.json"), "markdown": str(d / f"{stem}.md"), "chart": str(d / f"{stem}.svg")}
    Path(paths["json"]).write_text(json.dumps(rep, indent=2, default=str), encoding="utf-8")
    Path(paths["chart"]).write_text(chart(rep), encoding="utf-8")
    Path(paths["markdown"]).write_text(markdown(rep, chart_name=f"{stem}.svg"), encoding="utf-8")
    return paths


def dataset(people: int = 40, *, seed: int = 7, split: str = "test") -> dict[str, Any]:
    """The generated data as plain JSON (for inspection and the determinism test)."""
    persons, questions = generate(people, seed=seed, split=split)
    return {"people": [asdict(p) for p in persons], "questions": [asdict(q) for q in questions]}
