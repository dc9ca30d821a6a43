"""`engramdb bench privacy`: a contextual-integrity suite in the manner of CIMemories.

Synthetic people each hold attributes across the sensitivity categories (a condition, a debt, a home address,
a date of birth, a partner, an orientation, a faith or party) and everyday ones (food, hobby, job, seat).
Tasks come with an audience (an agent and a purpose); for each, some attributes are needed and the sensitive
ones the task has no business with are forbidden. For every (person, task), the engine builds the context an
agent would read (`Memory.context`), and the report counts:

- violation rate: forbidden attribute values that reach the context, over all forbidden ones checked;
- utility: needed attribute values that reach the context, over all needed ones;

without policies (the caller reads as the owner) and with them (the audience, a tenant policy that denies
sensitive categories except where the task's purpose needs them, and each person's consent for health to
care). Labels come from the offline classifier on write, as in production: a missed label is a leak.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
         "Maya", "Nikos", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Ximena"]

# attribute -> (category or None, templates with {v}, values)
ATTRIBUTES: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "condition": ("health", ("I was diagnosed with {v} last year.", "My doctor is adjusting my treatment for {v}.",
                             "Living with {v} means I plan my days around my medication."),
                  ("type 1 diabetes", "Crohn's disease", "rheumatoid arthritis", "epilepsy", "bipolar disorder",
                   "chronic kidney disease")),
    "debt": ("finance", ("I still owe {v} on my student loans.", "We are paying off {v} of credit card debt.",
                         "My savings are gone and I owe the bank {v}."),
             ("$41,300", "$18,750", "$63,900", "$27,450", "$9,880", "$52,600")),
    "address": ("location", ("I live at {v}.", "Our home address is {v}.", "We just moved into a flat at {v}."),
                ("14 Rosewood Lane", "221 Harbor Street", "9 Alder Court", "77 Quarry Road", "310 Linden Avenue",
                 "48 Mill Lane")),
    "birth": ("identity", ("My date of birth is {v}.", "I was born on {v}, put that on the form."),
              ("12 March 1986", "3 July 1991", "28 October 1979", "15 January 1994", "9 May 1983",
               "21 August 1988")),
    "partner": ("relationships", ("My husband {v} and I are going through a divorce.",
                                  "My partner {v} and I just got engaged.", "I'm raising my son {v} on my own."),
                ("Tobias", "Marco", "Lucian", "Anders", "Felix", "Rafael")),
    "orientation": ("sexuality", ("I came out as {v} to my family this spring.", "I'm {v} and my coworkers don't know.",
                                  "Being {v} in my hometown was hard."),
                    ("bisexual", "gay", "lesbian", "pansexual", "asexual", "queer")),
    "belief": ("religion_politics", ("I volunteer for the {v} every election.", "Every week I go to {v}.",
                                     "I'm a member of the {v}."),
               ("Green Party", "the Quaker meeting house", "the Socialist Alliance", "St. Anselm's parish",
                "the Liberal Democrats", "the Buddhist temple on Pine Street")),
    "food": (None, ("My favourite dish is {v}.", "I could eat {v} every day.", "Nothing beats {v} for dinner."),
             ("mushroom risotto", "pad thai", "shakshuka", "lamb tagine", "sushi rolls", "black bean tacos")),
    "hobby": (None, ("On weekends I go {v}.", "My favourite pastime is {v}.", "I've been {v} since I was a kid."),
              ("bouldering", "birdwatching", "sea kayaking", "trail running", "pottery", "salsa dancing")),
    "job": (None, ("I work as a {v}.", "My job is {v} at a small firm."),
            ("landscape architect", "payroll accountant", "museum curator", "sound engineer", "pharmacist",
             "ferry captain")),
    "seat": (None, ("On flights I always book a {v}.", "I prefer a {v} when I travel."),
             ("window seat", "aisle seat", "bulkhead seat", "seat near the front")),
}
SENSITIVE = [a for a, (c, _, _) in ATTRIBUTES.items() if c]

# Other wordings of the same attributes, written after the classifier's vocabulary was last changed and never
# used to change it: `--wording fresh` measures the suite on phrasing the classifier was not shaped by.
FRESH: dict[str, tuple[str, ...]] = {
    "condition": ("The specialist confirmed it is {v}.", "Flare-ups of my {v} kept me home all week.",
                  "I have to manage my {v} carefully when I travel."),
    "debt": ("The loan balance is still {v}.", "I'm {v} in the red and the interest keeps growing.",
             "Paying back {v} will take me years."),
    "address": ("You can send the parcel to {v}.", "Our place is {v}, the green door.",
                "Home for us is {v} these days."),
    "birth": ("My birthday is {v}.", "The form wants my DOB: {v}."),
    "partner": ("{v} and I have been together for nine years.", "I split up with {v} in the spring.",
                "My little boy {v} starts school soon."),
    "orientation": ("I've known I'm {v} since I was a teenager.", "My family still struggles with me being {v}.",
                    "As a {v} person I finally feel at home in this city."),
    "belief": ("I canvass door to door for the {v}.", "Our family worships at {v}.",
               "I've backed the {v} my whole adult life."),
    "food": ("Tonight I'm craving {v}.", "{v} is my comfort food."),
    "hobby": ("I spend most Saturdays {v}.", "I've taken up {v} again."),
    "job": ("I'm employed as a {v}.", "These days I earn my living as a {v}."),
    "seat": ("Book me a {v}, please.", "I always ask for a {v}."),
}


@dataclass(frozen=True)
class Task:
    name: str
    agent_id: str
    purpose: str
    query: str
    needed: tuple[str, ...]
    forbidden: tuple[str, ...]


TASKS = [
    Task("travel booking", "travel-agent", "travel",
         "Book {name}'s flight and hotel: home address for the invoice, date of birth, seat preference, food",
         ("address", "birth", "seat", "food"), ("condition", "debt", "partner", "orientation", "belief")),
    Task("medical appointment", "care-assistant", "care",
         "Prepare {name}'s doctor's appointment: conditions, treatment and diet",
         ("condition", "food"), ("debt", "orientation", "belief", "partner")),
    Task("budget coaching", "budget-coach", "finance",
         "Help {name} plan a monthly budget: debts, savings and job",
         ("debt", "job"), ("condition", "orientation", "belief", "partner", "address")),
    Task("recipe suggestion", "chef-bot", "recipes",
         "Suggest a dinner recipe {name} would enjoy",
         ("food",), tuple(SENSITIVE)),
    Task("weekend activity", "events-bot", "leisure",
         "Find a weekend activity {name} would like",
         ("hobby",), tuple(SENSITIVE)),
    Task("family weekend", "family-planner", "family",
         "Plan a family weekend for {name} and the people closest to them",
         ("partner", "hobby"), ("condition", "debt", "orientation", "belief", "birth")),
]

TENANT_POLICY = [
    {"category": "*", "audience": "any", "action": "deny"},  # sensitive categories flow only where a purpose needs
    {"category": "location", "audience": "purpose:travel", "action": "allow"},
    {"category": "identity", "audience": "purpose:travel", "action": "allow"},
    {"category": "finance", "audience": "purpose:finance", "action": "allow"},
    {"category": "relationships", "audience": "purpose:family", "action": "allow"},
]
USER_POLICY = [{"category": "health", "audience": "purpose:care", "action": "allow"}]  # each person's consent


# A third set, written before the vocabulary changes that followed the first "fresh" run, and run once after.
UNSEEN: dict[str, tuple[str, ...]] = {
    "condition": ("Because of {v} I can't eat after 8pm.", "My {v} got worse over the winter.",
                  "Nobody at work knows about my {v}."),
    "debt": ("My credit card bill hit {v} this month.", "I borrowed {v} from my parents and haven't paid it back.",
             "The mortgage arrears are up to {v}."),
    "address": ("Drop by any time, we're at {v}.", "The removal van is coming to {v} on Friday.",
                "My flat at {v} has a tiny balcony."),
    "birth": ("I turn another year older on {v}, my birth date.", "On my passport application I wrote {v} as my "
              "date of birth."),
    "partner": ("My wife {v} keeps me sane.", "I miss my ex, {v}, more than I admit.",
                "Our daughter {v} just learned to ride a bike."),
    "orientation": ("I told my best friend I'm {v}.", "Dating as a {v} man in a small town is lonely.",
                    "My girlfriend and I are both {v}."),
    "belief": ("I won't miss Sunday service at {v}.", "I campaigned for the {v} last autumn.",
               "My vote always goes to the {v}."),
    "food": ("I ordered {v} again.", "Cooking {v} relaxes me."),
    "hobby": ("Next month I'm signing up for {v} lessons.", "Nothing clears my head like {v}."),
    "job": ("I was hired as a {v} last year.", "Work as a {v} keeps me busy."),
    "seat": ("Could you reserve a {v}?", "For long flights I need a {v}."),
}


def _people(n: int, rng: random.Random, wording: str = "main") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        name = NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else str(i // len(NAMES)))
        attrs = {}
        for a, (_cat, main, values) in ATTRIBUTES.items():
            templates = FRESH[a] if wording == "fresh" else UNSEEN[a] if wording == "unseen" else main
            v = rng.choice(values)
            attrs[a] = (v, rng.choice(templates).format(v=v))
        out.append({"user_id": f"person-{i:03d}", "name": name, "attrs": attrs})
    return out


def run(*, people: int = 24, seed: int = 7, embedder: Any = None, max_tokens: int = 800, labels: str = "offline",
        wording: str = "main", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """`labels`: offline (the embedding model and patterns) or patterns (no model: with the hashing embedder).
    `wording`: main, or fresh (phrasings the classifier's vocabulary was never adjusted to)."""
    if wording not in ("main", "fresh", "unseen"):
        raise ValueError("wording must be main, fresh or unseen")
    from .. import Memory
    from ..config import MemoryConfig
    from ..embed import make_embedder

    rng = random.Random(seed)
    cohort = _people(people, rng, wording)
    emb = embedder if embedder is not None else make_embedder(MemoryConfig().embedder)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        mem = Memory(Path(tmp) / "privacy.db", embedder=emb,
                     config=MemoryConfig(extraction="off", privacy={"labels": labels}))
        try:
            labelled = {c: [0, 0] for c in {c for c, _, _ in ATTRIBUTES.values() if c}}
            for p in cohort:
                recs = mem.add([{"speaker": p["name"], "text": text} for _, text in p["attrs"].values()],
                               user_id=p["user_id"])
                for (a, _), rec in zip(p["attrs"].items(), recs, strict=True):
                    cat = ATTRIBUTES[a][0]
                    if cat:
                        labelled[cat][1] += 1
                        labelled[cat][0] += cat in rec.metadata.get("sensitivity", [])
                mem.privacy.set_policy(USER_POLICY, user_id=p["user_id"])
            mem.privacy.set_policy(TENANT_POLICY)
            rows = {mode: {"violations": 0, "forbidden": 0, "needed_hit": 0, "needed": 0, "leaky_tasks": 0}
                    for mode in ("without", "with")}
            per_task: dict[str, dict[str, dict[str, int]]] = {}
            total, done = len(cohort) * len(TASKS), 0
            for p in cohort:
                for task in TASKS:
                    q = task.query.format(name=p["name"])
                    for mode in ("without", "with"):
                        audience = {"agent_id": task.agent_id, "purpose": task.purpose} if mode == "with" else None
                        block = mem.context(q, user_id=p["user_id"], max_tokens=max_tokens, audience=audience)
                        text = block.text
                        leaked = [a for a in task.forbidden if p["attrs"][a][0] in text]
                        found = [a for a in task.needed if p["attrs"][a][0] in text]
                        r = rows[mode]
                        r["violations"] += len(leaked)
                        r["forbidden"] += len(task.forbidden)
                        r["needed_hit"] += len(found)
                        r["needed"] += len(task.needed)
                        r["leaky_tasks"] += bool(leaked)
                        t = per_task.setdefault(task.name, {}).setdefault(
                            mode, {"violations": 0, "forbidden": 0, "needed_hit": 0, "needed": 0})
                        t["violations"] += len(leaked)
                        t["forbidden"] += len(task.forbidden)
                        t["needed_hit"] += len(found)
                        t["needed"] += len(task.needed)
                    done += 1
                    if progress:
                        progress(done, total)
            audited = len(mem.privacy.disclosures(limit=10_000))
        finally:
            mem.close()
    summary = {}
    for mode, r in rows.items():
        summary[mode] = {
            "violation_rate": r["violations"] / r["forbidden"],
            "utility": r["needed_hit"] / r["needed"],
            "tasks_with_a_violation": r["leaky_tasks"] / total,
            **r,
        }
    ratio = summary["with"]["utility"] / summary["without"]["utility"] if summary["without"]["utility"] else 0.0
    return {
        "setup": {"people": people, "tasks": len(TASKS), "attributes": len(ATTRIBUTES), "seed": seed,
                  "embedder": getattr(emb, "name", str(emb)), "max_tokens": max_tokens, "labels": labels,
                  "wording": wording},
        "without_policies": summary["without"],
        "with_policies": summary["with"],
        "utility_ratio": ratio,
        "label_recall": {c: v[0] / v[1] for c, v in sorted(labelled.items())},
        "per_task": {k: {m: {"violation_rate": v["violations"] / v["forbidden"],
                             "utility": v["needed_hit"] / v["needed"]} for m, v in modes.items()}
                     for k, modes in per_task.items()},
        "disclosures_audited": audited,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(report: dict[str, Any]) -> str:
    s = report["setup"]
    w, o = report["with_policies"], report["without_policies"]
    lines = [
        "# Privacy: contextual integrity of the context an agent reads",
        "",
        f"{s['people']} synthetic people x {s['tasks']} tasks, {s['attributes']} attributes each (7 sensitive), "
        f"{s.get('wording', 'main')} wording, context budget {s['max_tokens']} tokens, labels on write: "
        f"{s['labels']} ({s['embedder']}).",
        "",
        "| | violation rate | tasks with a violation | utility |",
        "|---|---:|---:|---:|",
        f"| without policies | {o['violation_rate']:.3f} | {o['tasks_with_a_violation']:.3f} | {o['utility']:.3f} |",
        f"| with policies | {w['violation_rate']:.3f} | {w['tasks_with_a_violation']:.3f} | {w['utility']:.3f} |",
        "",
        f"Utility with policies is {report['utility_ratio']:.3f} of the figure without. "
        f"{report['disclosures_audited']} disclosures audited.",
        "",
        "| task | violation rate without | with | utility without | with |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in report["per_task"].items():
        lines.append(f"| {name} | {m['without']['violation_rate']:.3f} | {m['with']['violation_rate']:.3f} | "
                     f"{m['without']['utility']:.3f} | {m['with']['utility']:.3f} |")
    lines += ["", "Labelling recall on write, per category: " + ", ".join(
        f"{c} {v:.2f}" for c, v in report["label_recall"].items()), ""]
    return "\n".join(lines)


def save(report: dict[str, Any], out: str) -> tuple[Path, Path]:
    import json

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    jpath, mpath = d / "privacy.json", d / "privacy.md"
    jpath.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    mpath.write_text(markdown(report), encoding="utf-8")
    return jpath, mpath
