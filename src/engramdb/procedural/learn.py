"""Rule-based mining of tips from trajectories (no LLM needed).

Four rules, after Trajectory-Informed Memory Generation (strategy / recovery / optimization tips) plus warnings:

- recovery: a call of tool T fails with error signature E, and the next call of T succeeds (or fails differently)
  after a change: arguments added or changed (`fix_args`), or another tool called in between (`call_before`),
  or T abandoned for a new tool (`use_instead`), in a run that ended well;
- warning: a failed run whose last failure of T was never followed by a successful T; `avoid_args` are the
  arguments of that call that no successful call of T ever used;
- strategy: a tool sequence shared by at least `min_support` successful runs, with the arguments every
  successful call of each tool had in common (`plan_args`);
- optimization: a tool that successful runs can do without (step-count outliers): runs that called it took
  at least one step more on average and did not succeed more often; tools that fixed an error are exempt.

Tips with the same `key` say the same thing; their support is the number of trajectories behind them.
`task_keywords` are words that the tasks where a tip arose share and the other tasks do not (a lift of 0.5):
they say when a conditional tip applies ("international"), and are empty when it applies everywhere.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import mean, median
from typing import Any

from .model import Tip, Trajectory

_STOP = set(
    "the and for with from into onto that this these those then than are was were been being have has had "
    "not but all any can will would should could may might must our your their its his her them they you "
    "please task tasks".split()
)
_WORD = re.compile(r"[a-z][a-z_-]{2,}")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][\w.\-/\\]+")
_NUM = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?", re.I)
_SPACE = re.compile(r"\s+")

MAX_SOURCES = 50  # provenance kept per tip (steps and trajectories); the support count stays exact


def readable_error(error: str | None, n: int = 120) -> str:
    """The error's first line with numbers masked, for tip texts (instance values do not generalise)."""
    line = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    line = _NUM.sub("N", _QUOTED.sub("'…'", line))
    return line if len(line) <= n else line[: n - 1] + "…"


def error_signature(error: str | None) -> str:
    """A stable signature for an error message: first line, lower case, quoted text, paths and numbers masked."""
    if not error:
        return ""
    line = error.strip().splitlines()[0] if error.strip() else ""
    line = _QUOTED.sub("<*>", line)
    line = _PATH.sub("<path>", line)
    line = _NUM.sub("<n>", line)
    return _SPACE.sub(" ", line).strip().lower()[:160]


def task_words(task: str) -> set[str]:
    return {w for w in _WORD.findall(task.lower()) if w not in _STOP}


_CAPITAL = re.compile(r"(?<![.!?:(\[\n])\s+([A-Z][\w-]*)")
_SENTENCE_START = re.compile(r"(?:^|[.!?:(\[\n]\s*)([A-Z][\w-]*)")


def instance_words(trajs: Iterable[Trajectory]) -> set[str]:
    """Words that name one task's values rather than a kind of task: the words of the arguments the runs passed
    to tools (an item searched for, an address), and proper nouns of the task texts (capitalised inside a
    sentence and never written in lower case: Munich, Japan). A tip's keywords never use them."""
    out: set[str] = set()
    lower: set[str] = set()
    proper: set[str] = set()
    for t in trajs:
        for s in t.steps:
            stack: list[Any] = list(s.args.values())
            while stack:
                v = stack.pop()
                if isinstance(v, str):
                    out.update(_WORD.findall(v.lower()))
                elif isinstance(v, dict):
                    stack.extend(v.values())
                elif isinstance(v, (list, tuple)):
                    stack.extend(v)
        lower.update(w for w in re.findall(r"\b[a-z][\w-]*", t.task))
        starts = set(_SENTENCE_START.findall(t.task))
        proper.update(w.lower() for w in _CAPITAL.findall(t.task) if w not in starts and not w.isupper())
    return out | (proper - lower)


def discriminative_words(
    inside: list[str], outside: list[str], *, min_in: float = 0.8, min_lift: float = 0.5,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Words in at least `min_in` of the inside tasks whose frequency there beats the outside by `min_lift`,
    other than `exclude` (instance values)."""
    if not inside or not outside:
        return []
    ins = [task_words(t) - exclude for t in inside]
    outs = [task_words(t) for t in outside]
    cand = Counter(w for ws in ins for w in ws)
    out = []
    for w, n in cand.items():
        f_in = n / len(ins)
        f_out = sum(w in ws for ws in outs) / len(outs)
        if f_in >= min_in and f_in - f_out >= min_lift:
            out.append(w)
    return sorted(out)[:5]


def needed_for(tool: str, wins: list[Trajectory], *, min_runs: int = 3, p_max: float = 0.001) -> list[str]:
    """Task words whose successful runs (at least `min_runs`) (nearly) all called `tool`, when runs without
    the word called it at least 0.5 less often, and chance cannot explain it (the base rate raised to the
    number of runs that called it is below `p_max`): the tool is part of how that kind of task is done.
    A word whose tasks all carry another such word adds nothing and is dropped (Osaka: international)."""
    uses = [(task_words(t.task), any(s.tool == tool and not s.failed for s in t.steps)) for t in wins]
    found: dict[str, set[int]] = {}
    for w in sorted({w for ws, used in uses if used for w in ws}):
        inside = [used for ws, used in uses if w in ws]
        outside = [used for ws, used in uses if w not in ws]
        if len(inside) < min_runs or not outside:
            continue
        f_in, f_out = sum(inside) / len(inside), sum(outside) / len(outside)
        if f_in >= 0.9 and f_in - f_out >= 0.5 and max(f_out, 0.05) ** sum(inside) < p_max:
            found[w] = {i for i, (ws, _) in enumerate(uses) if w in ws}
    return sorted(
        w
        for w, ts in found.items()
        if not any(o != w and ts <= ots and (ts < ots or o < w) for o, ots in found.items())
    )


def _jv(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_jv(v)}" for k, v in sorted(args.items()))


@dataclass
class _Cand:
    """A tip being assembled from many trajectories."""

    tip: Tip
    trajs: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    contra: int = 0  # observations against it (e.g. the same change followed by the same error)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, traj: Trajectory, step_idx: Iterable[int]) -> None:
        tid = traj.id or f"#{id(traj)}"
        if tid not in self.trajs:
            self.trajs.append(tid)
            self.tasks.append(traj.task)
        for i in step_idx:
            if i < len(traj.step_ids) and traj.step_ids[i] not in self.steps:
                self.steps.append(traj.step_ids[i])


@dataclass
class MiningResult:
    tips: list[Tip]
    rejected: list[tuple[Tip, str]]  # candidates the validator refused, with the reason


def _tool_calls(traj: Trajectory) -> list[tuple[int, Any]]:
    return [(i, s) for i, s in enumerate(traj.steps) if s.tool]


def _ok_calls_by_tool(trajs: list[Trajectory]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trajs:
        for _, s in _tool_calls(t):
            if not s.failed:
                out[s.tool].append(s.args)
    return out


def _mine_recovery(trajs: list[Trajectory], cands: dict[str, _Cand]) -> None:
    for t in trajs:
        if t.outcome == "failure":
            continue
        calls = _tool_calls(t)
        for pos, (a, sa) in enumerate(calls):
            if not sa.failed:
                continue
            sig = error_signature(sa.error)
            nxt = next(((b, sb) for b, sb in calls[pos + 1 :] if sb.tool == sa.tool), None)
            if nxt is None:
                # T was abandoned: the next successful call of a tool not used before is its replacement
                used = {s.tool for _, s in calls[: pos + 1]}
                alt = next(((b, sb) for b, sb in calls[pos + 1 :] if not sb.failed and sb.tool not in used), None)
                if alt is None or t.outcome != "success":
                    continue
                key = f"recovery|{sa.tool}|{sig}|instead:{alt[1].tool}"
                c = _candidate(cands, key, type="recovery", tool=sa.tool, error_signature=sig,
                               use_instead=alt[1].tool)
                c.add(t, [a, alt[0]])
                c.extra.setdefault("error", sa.error)
                continue
            b, sb = nxt
            if sb.failed and error_signature(sb.error) == sig:
                continue  # the change did not help; counted as contra below when it matches a fix
            fix = {k: v for k, v in sb.args.items() if k not in sa.args or sa.args[k] != v}
            between = [s.tool for s in t.steps[a + 1 : b] if s.tool and not s.failed and s.tool != sa.tool]
            between_idx = [i for i in range(a + 1, b) if t.steps[i].tool in between]
            before = between[-1] if between else None
            key = f"recovery|{sa.tool}|{sig}|args:{_jv(fix)}|before:{before or ''}"
            c = _candidate(cands, key, type="recovery", tool=sa.tool, error_signature=sig, fix_args=fix,
                           call_before=before)
            c.add(t, [a, *between_idx[-1:], b])
            c.extra.setdefault("error", sa.error)
    # contra evidence: the same change made, and the same error came back
    for t in trajs:
        calls = _tool_calls(t)
        for pos, (_a, sa) in enumerate(calls):
            if not sa.failed:
                continue
            nxt = next(((b, sb) for b, sb in calls[pos + 1 :] if sb.tool == sa.tool), None)
            if nxt is None or not nxt[1].failed:
                continue
            sig = error_signature(sa.error)
            if error_signature(nxt[1].error) != sig:
                continue
            fix = {k: v for k, v in nxt[1].args.items() if k not in sa.args or sa.args[k] != v}
            if fix:
                seen = cands.get(f"recovery|{sa.tool}|{sig}|args:{_jv(fix)}|before:")
                if seen is not None:
                    seen.contra += 1


def _unusual(key: str, value: Any, ok_calls: list[dict[str, Any]]) -> bool:
    """True when no successful call used this argument, or all of them used one other constant value.
    An argument whose value varies across successful calls is instance data (an address), never blamed."""
    seen = {_jv(c[key]) for c in ok_calls if key in c}
    return not seen or (len(seen) == 1 and _jv(value) not in seen)


def _mine_warnings(trajs: list[Trajectory], cands: dict[str, _Cand]) -> None:
    ok_args = _ok_calls_by_tool(trajs)
    for t in trajs:
        if t.outcome != "failure":
            continue
        calls = _tool_calls(t)
        last_bad = None
        for pos, (a, sa) in enumerate(calls):
            if sa.failed and not any(sb.tool == sa.tool and not sb.failed for _, sb in calls[pos + 1 :]):
                last_bad = (a, sa)
        if last_bad is None:
            continue
        a, sa = last_bad
        sig = error_signature(sa.error)
        # arguments of the failing call that no successful call of the tool ever had
        avoid = {k: v for k, v in sa.args.items() if _unusual(k, v, ok_args.get(sa.tool, []))}
        if ok_args.get(sa.tool) is None:
            avoid = {}  # never succeeded anywhere: nothing to contrast with
        key = f"warning|{sa.tool}|{sig}|avoid:{_jv(avoid)}"
        c = _candidate(cands, key, type="warning", tool=sa.tool, error_signature=sig, avoid_args=avoid)
        c.add(t, [a])
        c.extra.setdefault("error", sa.error)


def _candidate(cands: dict[str, _Cand], key: str, **tip: Any) -> _Cand:
    """The candidate tip under `key`, created on first sight (its text is written once evidence is in)."""
    if key not in cands:
        cands[key] = _Cand(Tip(key=key, text="", **tip))
    return cands[key]


def _sequence(t: Trajectory, drop: set[str] = frozenset()) -> tuple[str, ...]:  # type: ignore[assignment]
    seq: list[str] = []
    for s in t.steps:
        if s.tool and not s.failed and s.tool not in drop and (not seq or seq[-1] != s.tool):
            seq.append(s.tool)
    return tuple(seq)


def _mine_strategy(trajs: list[Trajectory], cands: dict[str, _Cand], drop: set[str]) -> None:
    """Group successful runs by their essential plan: the successful tool sequence without the tools the
    optimization rule found wasteful (`drop`), so habits do not split one strategy into many."""
    wins = [t for t in trajs if t.outcome == "success"]
    groups: dict[tuple[str, ...], list[Trajectory]] = defaultdict(list)
    for t in wins:
        seq = _sequence(t, drop)
        if seq:
            groups[seq].append(t)
    # arguments every successful call of a tool had, in every run: flags that generalise, not instance values
    constant: dict[str, dict[str, Any]] = {}
    for tool, calls in _ok_calls_by_tool(wins).items():
        common = dict(calls[0])
        for args in calls[1:]:
            common = {k: v for k, v in common.items() if k in args and args[k] == v}
        common = {k: v for k, v in common.items() if isinstance(v, (bool, int, float, str))}
        if common and len(calls) > 1:
            constant[tool] = common
    for seq, members in groups.items():
        key = "strategy|" + ">".join(seq)
        plan_args = {tool: constant[tool] for tool in seq if tool in constant}
        c = _candidate(cands, key, type="strategy", plan=list(seq), plan_args=plan_args)
        for t in members:
            c.add(t, [i for i, s in enumerate(t.steps) if s.tool in seq and not s.failed])


def _mine_optimization(trajs: list[Trajectory], cands: dict[str, _Cand], exempt: set[str]) -> None:
    wins = [t for t in trajs if t.outcome == "success"]
    if len(wins) < 3:
        return
    tools = sorted({s.tool for t in wins for s in t.steps if s.tool and not s.failed})
    med = median(t.n_steps for t in wins)
    for tool in tools:
        if tool in exempt:
            continue
        with_t = [t for t in wins if any(s.tool == tool and not s.failed for s in t.steps)]
        without = [t for t in wins if t not in with_t]
        if not with_t or len(without) < 2:
            continue
        gain = mean(t.n_steps for t in with_t) - mean(t.n_steps for t in without)
        if gain < 1:
            continue
        all_with = [t for t in trajs if any(s.tool == tool for s in t.steps)]
        all_without = [t for t in trajs if t not in all_with]
        rate_with = sum(t.outcome == "success" for t in all_with) / len(all_with)
        rate_without = sum(t.outcome == "success" for t in all_without) / max(1, len(all_without))
        if rate_without + 0.05 < rate_with:
            continue  # runs that called it succeed more often: it is not waste
        if needed_for(tool, wins):
            continue  # every success on a certain kind of task used it: needed there, not waste
        key = f"optimization|skip:{tool}"
        c = _candidate(cands, key, type="optimization", skip=[tool], tool=tool)
        outliers = sorted(with_t, key=lambda t: -t.n_steps)
        for t in outliers:
            c.add(t, [i for i, s in enumerate(t.steps) if s.tool == tool])
        c.extra.update(
            gain=gain,
            n_without=len(without),
            median=med,
            n_outliers=sum(t.n_steps > med for t in with_t),
            mean_without=mean(t.n_steps for t in without),
        )
        costs_with = [t.metrics.cost for t in with_t if t.metrics.cost is not None]
        costs_without = [t.metrics.cost for t in without if t.metrics.cost is not None]
        if costs_with and costs_without:
            c.extra["cost_gain"] = mean(costs_with) - mean(costs_without)


def _short(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def render(tip: Tip, extra: dict[str, Any] | None = None) -> str:
    """The tip's stable, prompt-ready sentence (counts live in metadata, not in the text)."""
    extra = extra or {}
    err = f'"{readable_error(extra.get("error") or tip.error_signature)}"'
    when = f" (on tasks mentioning: {', '.join(tip.task_keywords)})" if tip.task_keywords else ""
    if tip.type == "recovery":
        if tip.use_instead:
            return f"When `{tip.tool}` fails with {err}, use `{tip.use_instead}` instead{when}."
        parts = []
        if tip.call_before:
            parts.append(f"call `{tip.call_before}` first")
        if tip.fix_args:
            parts.append(f"retry `{tip.tool}` with {_args_text(tip.fix_args)}")
        elif tip.call_before:
            parts.append(f"then retry `{tip.tool}`")
        else:
            parts.append(f"simply retry `{tip.tool}` (the error was transient)")
        return f"When `{tip.tool}` fails with {err}, {', '.join(parts)}{when}."
    if tip.type == "warning":
        avoid = (
            f"Do not call `{tip.tool}` with {_args_text(tip.avoid_args)}: "
            if tip.avoid_args
            else f"Careful with `{tip.tool}`: "
        )
        return f"{avoid}it failed with {err} and the task was not recovered{when}."
    if tip.type == "strategy":
        steps = []
        for tool in tip.plan:
            args = tip.plan_args.get(tool)
            steps.append(f"{tool}({_args_text(args)})" if args else tool)
        example = f' like "{_short(tip.task_examples[0], 80)}"' if tip.task_examples else ""
        return f"For tasks{example}{when}, this plan worked: {' -> '.join(steps)}."
    skip = ", ".join(f"`{s}`" for s in tip.skip)
    return f"Skip {skip} unless you need it: successful runs did without it and were shorter{when}."


def _runs(n: int, adj: str = "") -> str:
    return f"1 {adj}run" if n == 1 else f"{n} {adj}runs"


def _evidence(c: _Cand) -> str:
    t = c.tip
    n = len(c.trajs)
    if t.type == "recovery":
        return (f"{_runs(n)} recovered this way"
                + (f"; {c.contra} times the same change did not help" if c.contra else ""))
    if t.type == "warning":
        return f"{_runs(n, 'failed ')} ended on this error"
    if t.type == "strategy":
        return f"{_runs(n, 'successful ')} followed this plan"
    e = c.extra
    s = (
        f"runs that called it took {e['gain']:.1f} more steps on average ({e['n_outliers']} above the median of "
        f"{e['median']:g}); {e['n_without']} successful runs did without"
    )
    if "cost_gain" in e:
        s += f"; cost {e['cost_gain']:+.3g} on average"
    return s


def mine(trajs: list[Trajectory], *, min_support: int = 2, validator: Any = None) -> MiningResult:
    """Mine candidate tips from trajectories, gate them through the validator, and return the admitted ones."""
    from .validate import RuleValidator

    validator = validator or RuleValidator(min_support=min_support)
    lesson_support = min(int(getattr(validator, "lesson_support", min_support)), min_support)
    values = instance_words(trajs)
    cands: dict[str, _Cand] = {}
    _mine_recovery(trajs, cands)
    _mine_warnings(trajs, cands)
    fixers = {c.tip.call_before or c.tip.use_instead for c in cands.values() if c.tip.type == "recovery"}
    _mine_optimization(trajs, cands, exempt={f for f in fixers if f})
    waste = {c.tip.skip[0] for c in cands.values() if c.tip.type == "optimization" and len(c.trajs) >= min_support}
    _mine_strategy(trajs, cands, drop=waste)
    # a warning that names no argument to avoid adds nothing when a recovery tip says how to fix that error
    fixed = {
        (c.tip.tool, c.tip.error_signature)
        for c in cands.values()
        if c.tip.type == "recovery" and len(c.trajs) >= lesson_support
    }
    # a lesson seen in fewer than `min_support` runs is served while it is all that is known about its error;
    # once a recovery for that error has the support, the one-off variants (an extra flag tried) step aside
    established = {
        (c.tip.tool, c.tip.error_signature)
        for c in cands.values()
        if c.tip.type == "recovery" and len(c.trajs) >= min_support and c.contra < len(c.trajs)
    }
    superseded = {
        k
        for k, c in cands.items()
        if c.tip.type == "warning" and not c.tip.avoid_args and (c.tip.tool, c.tip.error_signature) in fixed
    }
    by_key = {t.id: t for t in trajs if t.id}
    tips, rejected = [], []
    for key, c in cands.items():
        tip = c.tip
        tip.support = len(c.trajs)
        tip.source_trajectories = c.trajs[:MAX_SOURCES]
        tip.source_steps = c.steps[:MAX_SOURCES]
        tip.task_examples = c.tasks[:3]  # re-picked below once the keywords are known
        if tip.type == "strategy":
            # the words of the kinds of task that need one of its tools (e.g. a customs step): where it applies
            wins = [t for t in trajs if t.outcome == "success"]
            tip.task_keywords = sorted({w for tool in tip.plan for w in needed_for(tool, wins)} - values)[:5]
        elif tip.type in ("recovery", "warning") and tip.tool:
            # where the error arose vs tasks that called the tool without ever meeting it
            inside = set(c.trajs)
            outside = [
                t.task
                for t in trajs
                if t.id not in inside
                and any(s.tool == tip.tool and not s.failed for s in t.steps)
                and not any(
                    s.tool == tip.tool and error_signature(s.error) == tip.error_signature for s in t.steps if s.failed
                )
            ]
            tip.task_keywords = discriminative_words(c.tasks, outside, exclude=values)
        if tip.task_keywords:  # show examples of the tasks it applies to
            fits = [t for t in c.tasks if task_words(t) & set(tip.task_keywords)]
            tip.task_examples = (fits + [t for t in c.tasks if t not in fits])[:3]
        tip.evidence = _evidence(c)
        tip.text = render(tip, c.extra)
        if key in superseded:
            rejected.append((tip, "superseded by a recovery tip for the same error"))
            continue
        if (tip.type in ("recovery", "warning") and tip.support < min_support
                and (tip.tool, tip.error_signature) in established):
            rejected.append((tip, f"support {tip.support} < {min_support}, and a better-supported recovery tip "
                                  "covers the same error"))
            continue
        ok, reason = validator.admit(tip, contra=c.contra, trajectories=[by_key[i] for i in c.trajs if i in by_key])
        if ok:
            tips.append(tip)
        else:
            rejected.append((tip, reason))
    tips.sort(key=lambda t: (-t.support, t.key))
    return MiningResult(tips=tips, rejected=rejected)
