"""`engramdb bench procedural`: does procedural memory make a scripted agent better on held-out tasks?

The environment is a deterministic toy shop API with learnable traps:
- `checkout` fails with a PaymentError unless it is called with `confirm=true` (one of six optional flags);
- international orders fail with a CustomsError unless `declare_customs` was called first;
- `checkout(split=true)` cancels the order: an unrecoverable failure;
- `check_stock`, `view_cart` and `get_reviews` are never needed: the agent's habit of calling them wastes steps.

The agent is a scripted, non-LLM policy. Without memory it follows its default plan
(search -> add_to_cart -> checkout) with its habits, and when a call fails it explores: it adds an untried
optional flag or calls an untried tool, then retries. With memory it first asks `Memory.tips()` for the task
(giving its tool list) and acts only on the structured fields of the tips it gets back: `fix_args`,
`call_before`, `use_instead` and `task_keywords` of recovery tips, `avoid_args` of warnings, `skip` of
optimization tips, `plan`/`plan_args` of strategy tips. Nothing else tells it about the traps.

Past trajectories come from the memoryless agent on training tasks; evaluation uses held-out tasks (other
items, cities and countries). After each evaluated task the agent reports the outcome for the tips it was
served (the ReMe loop). Every figure printed is measured.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

import numpy as np

from ..embed.base import Embedder
from ..procedural.learn import error_signature, task_words
from ..procedural.model import Guidance, Step, Tip, Trajectory

HOME = "Germany"
TRAIN_ITEMS = ["red mug", "desk lamp", "yoga mat", "wool scarf", "tea kettle", "phone case", "notebook", "backpack"]
TEST_ITEMS = ["blue vase", "coffee grinder", "travel pillow", "bike light", "water bottle", "board game"]
TRAIN_CITIES = [("Munich", HOME), ("Hamburg", HOME), ("Paris", "France"), ("Osaka", "Japan"), ("Toronto", "Canada")]
TEST_CITIES = [("Cologne", HOME), ("Leipzig", HOME), ("Madrid", "Spain"), ("Seoul", "Korea"), ("Denver", "USA")]
FLAGS = ["confirm", "gift_wrap", "express", "newsletter", "split", "insure"]
HABITS = ["check_stock", "view_cart", "get_reviews"]  # never needed
TOOLS = ["search", "add_to_cart", "checkout", "declare_customs", *HABITS]
MAX_STEPS = 12


@dataclass
class ShopTask:
    item: str
    qty: int
    city: str
    country: str

    @property
    def international(self) -> bool:
        return self.country != HOME

    @property
    def text(self) -> str:
        kind = "international" if self.international else "domestic"
        return f"Order {self.qty} x {self.item} for delivery to {self.city}, {self.country} ({kind} shipping)"


def make_tasks(n: int, rng: random.Random, *, held_out: bool) -> list[ShopTask]:
    items, cities = (TEST_ITEMS, TEST_CITIES) if held_out else (TRAIN_ITEMS, TRAIN_CITIES)
    out = []
    for _ in range(n):
        city, country = rng.choice(cities)
        out.append(ShopTask(rng.choice(items), rng.randint(1, 5), city, country))
    return out


class ToyShop:
    """The environment: deterministic given the calls."""

    def __init__(self, task: ShopTask) -> None:
        self.task = task
        self.customs = False
        self.cart: dict[str, int] = {}
        self.done = False
        self.cancelled = False

    def call(self, tool: str, args: dict[str, Any]) -> tuple[str | None, str | None]:
        """(observation, error)."""
        t = self.task
        sku = "sku-" + "".join(w[:3] for w in t.item.split())
        if tool == "search":
            return f"found {t.item}: item_id={sku}, price 19.90 EUR", None
        if tool == "check_stock":
            return f"{args.get('item_id')}: 42 in stock", None
        if tool == "get_reviews":
            return "4.5 stars (128 reviews)", None
        if tool == "view_cart":
            return f"cart: {self.cart}", None
        if tool == "add_to_cart":
            if args.get("item_id") != sku:
                return None, f"NotFoundError: no item {args.get('item_id')!r}"
            self.cart[sku] = int(args.get("qty", 1))
            return f"cart now holds {self.cart[sku]} x {sku}", None
        if tool == "declare_customs":
            self.customs = True
            return f"customs declaration filed for {args.get('country')}", None
        if tool == "checkout":
            if not self.cart:
                return None, "CartError: the cart is empty"
            if args.get("split"):
                self.cancelled = True
                return None, f"OrderError: split shipments are disabled; order {1000 + len(t.item)} cancelled"
            if not args.get("confirm"):
                return None, f"PaymentError: payment of {19.9 * t.qty:.2f} EUR needs confirmation"
            if t.international and not self.customs:
                return None, f"CustomsError: customs declaration missing for '{t.country}'"
            self.done = True
            return f"order placed, shipping to {t.city}", None
        return None, f"UnknownToolError: no tool {tool!r}"


@dataclass
class Knowledge:
    """What the agent takes from served tips: only their structured fields."""

    preset_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> args to always pass
    pre_calls: dict[str, list[str]] = field(default_factory=dict)  # tool -> tools to call before it
    reactive: dict[tuple[str, str], Tip] = field(default_factory=dict)  # (tool, error signature) -> recovery tip
    avoid: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> args never to use
    skip: set[str] = field(default_factory=set)
    plan: list[str] | None = None


def read_tips(guidance: Guidance | None, task_text: str) -> Knowledge:
    k = Knowledge()
    if guidance is None:
        return k
    words = task_words(task_text)
    for served in guidance.tips:  # best first
        tip = served.tip
        applies = not tip.task_keywords or any(w in words for w in tip.task_keywords)
        if tip.type == "recovery" and tip.tool:
            k.reactive.setdefault((tip.tool, tip.error_signature or ""), tip)
            if applies:
                for a, v in tip.fix_args.items():
                    k.preset_args.setdefault(tip.tool, {}).setdefault(a, v)
                if tip.call_before and tip.call_before not in k.pre_calls.get(tip.tool, []):
                    k.pre_calls.setdefault(tip.tool, []).append(tip.call_before)
        elif tip.type == "warning" and tip.tool and tip.avoid_args:
            k.avoid.setdefault(tip.tool, {}).update(tip.avoid_args)
        elif tip.type == "optimization":
            k.skip.update(tip.skip)
        elif tip.type == "strategy" and applies and k.plan is None and set(tip.plan) <= set(TOOLS):
            k.plan = list(tip.plan)
            for tool, args in tip.plan_args.items():
                for a, v in args.items():
                    if isinstance(v, bool):  # only flags generalise across task instances
                        k.preset_args.setdefault(tool, {}).setdefault(a, v)
    # advice can conflict (a warning against a flag a fix adds): the warning wins, it cost a task
    for tool, bad in k.avoid.items():
        for a, v in bad.items():
            if k.preset_args.get(tool, {}).get(a) == v:
                del k.preset_args[tool][a]
    k.skip -= {t for calls in k.pre_calls.values() for t in calls}
    return k


class Agent:
    """The scripted policy. `guidance=None` is the memoryless agent."""

    def __init__(self, rng: random.Random, *, habit_rate: float = 0.35) -> None:
        self.rng = rng
        self.habit_rate = habit_rate

    def _args(self, tool: str, task: ShopTask, sku: str | None) -> dict[str, Any]:
        by_tool: dict[str, dict[str, Any]] = {
            "search": {"query": task.item},
            "add_to_cart": {"item_id": sku, "qty": task.qty},
            "checkout": {"address": task.city},
            "declare_customs": {"country": task.country},
            "check_stock": {"item_id": sku},
            "get_reviews": {"item_id": sku},
            "view_cart": {},
        }
        return by_tool[tool]

    def run(self, task: ShopTask, guidance: Guidance | None = None) -> Trajectory:
        rng, env = self.rng, ToyShop(task)
        know = read_tips(guidance, task.text)
        steps: list[Step] = []
        sku: str | None = None

        def call(tool: str, extra: dict[str, Any] | None = None) -> str | None:
            nonlocal sku
            args = {**self._args(tool, task, sku), **know.preset_args.get(tool, {}), **(extra or {})}
            obs, err = env.call(tool, args)
            if tool == "search" and obs:
                sku = obs.split("item_id=")[1].split(",")[0]
            steps.append(Step(tool=tool, args=args, observation=obs, error=err))
            return err

        base = know.plan or ["search", "add_to_cart", "checkout"]
        plan: list[str] = []
        for tool in base:  # habits: the agent's own, unless a tip says to skip them
            if tool == "add_to_cart" and self.rng.random() < self.habit_rate:
                plan.append("check_stock")
            if tool == "checkout":
                for h in ("view_cart", "get_reviews"):
                    if self.rng.random() < self.habit_rate:
                        plan.append(h)
            plan.extend([*know.pre_calls.get(tool, []), tool])
        plan = [t for t in plan if t not in know.skip or t in ("search", "add_to_cart", "checkout")]
        flags: dict[str, Any] = {}
        tried_flags: set[str] = set(know.preset_args.get("checkout", {}))
        tried_tools: set[str] = set()
        for tool in plan:
            if len(steps) >= MAX_STEPS or env.cancelled:
                break
            if tool in know.pre_calls.get("checkout", []) and tool in tried_tools:
                continue
            tried_tools.add(tool)
            if tool != "checkout":
                call(tool)
                continue
            err = call("checkout", flags)
            while err and not env.cancelled and len(steps) < MAX_STEPS:
                tip = know.reactive.get(("checkout", error_signature(err)))
                if tip is not None and (tip.fix_args or tip.call_before) and tip.key not in tried_flags:
                    tried_flags.add(tip.key)
                    flags.update(tip.fix_args)
                    tried_flags.update(tip.fix_args)
                    if tip.call_before:
                        tried_tools.add(tip.call_before)
                        call(tip.call_before)
                elif self.rng.random() < 0.5 and (
                    options := [
                        f for f in FLAGS if f not in tried_flags and know.avoid.get("checkout", {}).get(f) is not True
                    ]
                ):
                    f = rng.choice(options)
                    tried_flags.add(f)
                    flags[f] = True
                elif options := [
                    t
                    for t in TOOLS
                    if t not in tried_tools and t not in know.skip and t not in ("search", "add_to_cart", "checkout")
                ]:
                    t = rng.choice(options)
                    tried_tools.add(t)
                    call(t)
                else:
                    break
                if len(steps) >= MAX_STEPS:
                    break
                err = call("checkout", flags)
            break
        outcome = "success" if env.done else "failure"
        return Trajectory(task=task.text, steps=steps, outcome=outcome, metrics={"steps": len(steps)})


@dataclass
class EvalPoint:
    n_train: int
    success_rate: float
    mean_steps: float
    mean_steps_success: float | None
    n_tips: int
    seconds: float


class MemoEmbedder(Embedder):
    """The same model, with a cache: every curve point re-embeds the same held-out task texts, and a
    deterministic model gives the same vectors, so caching changes the run time and nothing else."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim, self.batch_size = inner, inner.name, inner.dim, inner.batch_size
        self.cache: dict[str, np.ndarray] = {}

    def _embed_batch(self, texts: Any) -> np.ndarray:
        return self.inner.embed(list(texts))

    def embed(self, texts: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, super().embed(missing), strict=True):
                self.cache[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.cache[t] for t in texts])


def _open(path: Path, embedder: Any) -> Any:
    from ..api.memory import Memory

    return Memory(path, embedder=embedder)


def evaluate(
    n_train: int,
    *,
    seed: int,
    n_test: int,
    embedder: Any,
    workdir: Path,
    report: bool = True,
) -> tuple[EvalPoint, Any]:
    """Train on `n_train` memoryless trajectories, then run the memory agent on `n_test` held-out tasks."""
    t0 = time.perf_counter()
    train_rng = random.Random(seed)
    test_tasks = make_tasks(n_test, random.Random(10_000 + seed), held_out=True)
    mem = _open(workdir / f"proc-{seed}-{n_train}.db", embedder)
    n_tips = 0
    if n_train:
        trajs = [Agent(train_rng).run(t) for t in make_tasks(n_train, train_rng, held_out=False)]
        mem.add_trajectories(trajs, agent_id="shopper")
        n_tips = len(mem.learn_tips(agent_id="shopper").tips)
    act_rng = random.Random(20_000 + seed)  # same exploration draws for every n_train
    results = []
    for task in test_tasks:
        g = mem.tips(task.text, tools=TOOLS, agent_id="shopper", limit=8) if n_train else None
        traj = Agent(act_rng).run(task, g)
        results.append(traj)
        if g is not None and g.tip_ids and report:
            mem.report_outcome(g.tip_ids, traj.outcome)
    wins = [t for t in results if t.outcome == "success"]
    point = EvalPoint(
        n_train=n_train,
        success_rate=len(wins) / len(results),
        mean_steps=mean(len(t.steps) for t in results),
        mean_steps_success=mean(len(t.steps) for t in wins) if wins else None,
        n_tips=n_tips,
        seconds=time.perf_counter() - t0,
    )
    return point, mem


def run(
    *,
    curve: list[int],
    seeds: int = 3,
    n_test: int = 50,
    embedder: Any = None,
    progress: Any = None,
    examples: int = 3,
) -> dict[str, Any]:
    """The learning curve (mean over seeds) and example tips with provenance from the largest run."""
    if embedder is None:
        from ..embed import make_embedder

        embedder = make_embedder()
    embedder = embedder if isinstance(embedder, MemoEmbedder) else MemoEmbedder(embedder)
    curve = sorted(set([0, *curve]))
    rows: dict[int, list[EvalPoint]] = {n: [] for n in curve}
    example_tips: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        total, done = len(curve) * seeds, 0
        for seed in range(seeds):
            for n in curve:
                point, mem = evaluate(n, seed=seed, n_test=n_test, embedder=embedder, workdir=Path(tmp))
                rows[n].append(point)
                if seed == 0 and n == curve[-1] and n:
                    for tip in sorted(mem.list_tips(agent_id="shopper"), key=lambda t: -t.support)[: examples * 4]:
                        if len([e for e in example_tips if e["type"] == tip.type]) >= 1:
                            continue
                        chain = mem.tip_provenance(tip.id)
                        example_tips.append(
                            {
                                "id": tip.id,
                                "type": tip.type,
                                "text": tip.text,
                                "support": tip.support,
                                "served": tip.served,
                                "utility": round(tip.utility, 3),
                                "evidence": tip.evidence,
                                "task_keywords": tip.task_keywords,
                                "provenance": [
                                    {
                                        "trajectory_id": c["trajectory_id"],
                                        "task": c["task"],
                                        "outcome": c["outcome"],
                                        "steps": [s["text"] for s in c["steps"]],
                                    }
                                    for c in chain["trajectories"][:2]
                                ],
                            }
                        )
                mem.close()
                done += 1
                if progress:
                    progress(done, total)
    table = []
    for n in curve:
        pts = rows[n]
        succ = [p.mean_steps_success for p in pts if p.mean_steps_success is not None]
        table.append(
            {
                "n_train": n,
                "success_rate": round(mean(p.success_rate for p in pts), 4),
                "success_rate_by_seed": [round(p.success_rate, 3) for p in pts],
                "mean_steps": round(mean(p.mean_steps for p in pts), 3),
                "mean_steps_success": round(mean(succ), 3) if succ else None,
                "tips": round(mean(p.n_tips for p in pts), 1),
                "seconds": round(sum(p.seconds for p in pts), 2),
            }
        )
    # reference: an agent told the traps needs search, add_to_cart, (declare_customs,) checkout
    oracle = mean(
        3 + t.international
        for seed in range(seeds)
        for t in make_tasks(n_test, random.Random(10_000 + seed), held_out=True)
    )
    return {
        "oracle_mean_steps": round(oracle, 3),
        "setup": {
            "seeds": seeds,
            "n_test": n_test,
            "max_steps": MAX_STEPS,
            "embedder": getattr(embedder, "name", "?"),
            "held_out": "test tasks use other items and cities than training",
        },
        "without_memory": table[0],
        "with_memory": table[-1],
        "curve": table,
        "example_tips": example_tips,
    }


def markdown(report: dict[str, Any]) -> str:
    s = report["setup"]
    lines = [
        "# Procedural memory: toy shop with learnable traps",
        "",
        f"Held-out tasks: {s['n_test']} per seed, {s['seeds']} seeds, step budget {s['max_steps']}, "
        f"embedder {s['embedder']}. Training trajectories come from the memoryless agent.",
        "",
        "| | success rate | mean steps | mean steps (successes) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in (
        ("without memory", report["without_memory"]),
        (f"with memory ({report['with_memory']['n_train']} past trajectories)", report["with_memory"]),
    ):
        mss = "-" if row["mean_steps_success"] is None else f"{row['mean_steps_success']:.2f}"
        lines.append(f"| {name} | {row['success_rate']:.1%} | {row['mean_steps']:.2f} | {mss} |")
    o = report["oracle_mean_steps"]
    lines.append(f"| reference: an agent told the traps (not run, computed) | 100.0% | {o:.2f} | {o:.2f} |")
    lines += [
        "",
        "Learning curve (memory built from N past trajectories):",
        "",
        "| N | success rate | per seed | mean steps | tips | seconds |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["curve"]:
        per = ", ".join(f"{x:.2f}" for x in r["success_rate_by_seed"])
        lines.append(
            f"| {r['n_train']} | {r['success_rate']:.1%} | {per} | {r['mean_steps']:.2f} | {r['tips']:g} | "
            f"{r['seconds']:.1f} |"
        )
    if report["example_tips"]:
        lines += ["", "Example tips (largest run, seed 0) with their provenance:", ""]
        for e in report["example_tips"]:
            lines.append(
                f"- **{e['type']}** (support {e['support']}, served {e['served']}, utility {e['utility']}): {e['text']}"
            )
            lines.append(f"  - evidence: {e['evidence']}")
            for p in e["provenance"][:1]:
                lines.append(f"  - from trajectory {p['trajectory_id']} ({p['outcome']}): {p['task']}")
                for st in p["steps"]:
                    lines.append(f"    - {st}")
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out: str) -> tuple[Path, Path]:
    import json

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    jpath, mpath = d / "procedural.json", d / "procedural.md"
    jpath.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    mpath.write_text(markdown(report), encoding="utf-8")
    return jpath, mpath
