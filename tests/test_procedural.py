"""Procedural memory: parsing, bad input, the mining rules, storage with provenance, serving, the feedback loop,
retirement, consolidation, the LLM path, the CLI. Unit tests use the hashing embedder (`fake_mem`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engramdb.errors import NotFoundError, ValidationError
from engramdb.procedural import MAX_OBSERVATION_CHARS, MAX_STEPS, RuleValidator, error_signature, mine, parse_trajectory
from engramdb.procedural.learn import instance_words
from engramdb.procedural.model import Step, Trajectory


def _t(task: str, steps: list[dict], outcome: str, tid: str) -> Trajectory:
    t = Trajectory(task=task, steps=[Step(**s) for s in steps], outcome=outcome)
    t.id = tid
    t.step_ids = [f"{tid}-s{i}" for i in range(len(steps))]
    return t


PAY = "PaymentError: payment of 39.80 EUR needs confirmation"


def _recovered(tid: str, city: str = "Munich", extra: list[dict] | None = None) -> Trajectory:
    return _t(
        f"Order 2 x mug for delivery to {city} (domestic shipping)",
        [
            {"tool": "search", "args": {"query": "mug"}, "observation": "sku-1"},
            *(extra or []),
            {"tool": "checkout", "args": {"address": city}, "error": PAY.replace("39.80", str(len(tid)))},
            {"tool": "checkout", "args": {"address": city, "confirm": True}, "observation": "order placed"},
        ],
        "success",
        tid,
    )


# -- parsing and bad input ------------------------------------------------------------------------
def test_parse_openai_tool_call_messages():
    msgs = [
        {"role": "system", "content": "You are a shop agent."},
        {"role": "user", "content": "Order 2 mugs to Berlin"},
        {
            "role": "assistant",
            "content": "I will search first.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"query": "mug"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sku-1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "checkout", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "Error: payment needs confirmation"},
        {"role": "assistant", "content": "Done."},
    ]
    t = parse_trajectory(msgs, outcome="failed")
    assert t.task == "Order 2 mugs to Berlin" and t.outcome == "failure"
    assert [s.tool for s in t.steps] == ["search", "checkout", None]
    assert t.steps[0].args == {"query": "mug"} and t.steps[0].thought == "I will search first."
    assert t.steps[0].observation == "sku-1" and not t.steps[0].failed
    assert t.steps[1].error == "Error: payment needs confirmation"
    assert t.steps[2].action == "Done."


def test_parse_anthropic_and_langchain_shapes():
    msgs = [
        {"role": "user", "content": "Find the file"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "listing"},
                {"type": "tool_use", "id": "u1", "name": "ls", "input": {"path": "/"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "u1", "content": "denied", "is_error": True}],
        },
    ]
    t = parse_trajectory(msgs, outcome="partial")
    assert t.steps[0].tool == "ls" and t.steps[0].args == {"path": "/"} and t.steps[0].error == "denied"
    lc = {
        "input": "What is 2+2?",
        "intermediate_steps": [[{"tool": "calc", "tool_input": "2+2", "log": "add"}, "4"]],
        "output": "4",
        "outcome": "success",
    }
    t2 = parse_trajectory(lc)
    assert t2.task == "What is 2+2?" and t2.steps[0].args == {"input": "2+2"} and t2.steps[0].observation == "4"


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ({"steps": [{"tool": "a"}], "outcome": "success"}, {}, "task"),
        ({"task": "x", "steps": [{"tool": "a"}], "outcome": "kinda"}, {}, "unknown outcome"),
        ({"task": "x", "steps": [{"tool": "a"}]}, {}, "outcome: missing"),
        ({"task": "x", "steps": [], "outcome": "success"}, {}, "at least one step"),
        ({"task": "x", "steps": [{}], "outcome": "success"}, {}, "at least one of"),
        ({"task": "x", "steps": [{"tool": "a", "args": "{not json"}], "outcome": "success"}, {}, "not valid JSON"),
        ({"task": "x", "steps": "nope", "outcome": "success"}, {}, "expected a list"),
        ({"task": "x", "steps": [{"tool": "a"}] * (MAX_STEPS + 1), "outcome": "success"}, {}, "over the limit"),
        ([{"role": "tool", "content": "x", "tool_call_id": "zz"}], {"outcome": "success"}, "no matching tool call"),
        ("just text", {}, "give steps with a task string"),
        (42, {}, "expected a JSON object"),
    ],
)
def test_bad_trajectories_are_refused_with_clear_errors(fake_mem, data, kwargs, message):
    before = fake_mem.stats()["memories"] if "memories" in fake_mem.stats() else None
    with pytest.raises(ValidationError, match=message):
        fake_mem.add_trajectory(data, agent_id="a", **kwargs)
    assert fake_mem.list(agent_id="a").total == 0
    if before is not None:
        assert fake_mem.stats()["memories"] == before


def test_one_bad_trajectory_in_a_batch_writes_nothing(fake_mem):
    good = {"task": "x", "steps": [{"tool": "a"}], "outcome": "success"}
    with pytest.raises(ValidationError, match=r"trajectories\[1\]"):
        fake_mem.add_trajectories([good, {**good, "outcome": "maybe"}], agent_id="a")
    assert fake_mem.list(agent_id="a").total == 0


def test_huge_observation_is_truncated_with_a_marker(fake_mem):
    huge = "x" * (MAX_OBSERVATION_CHARS * 10)
    t = fake_mem.add_trajectory(
        "read a log", [{"tool": "cat", "args": {"f": "log"}, "observation": huge}], "success", agent_id="a"
    )
    step = t.steps[0]
    assert step.truncated and len(step.observation) < MAX_OBSERVATION_CHARS + 60
    assert f"truncated {len(huge) - MAX_OBSERVATION_CHARS:,} chars" in step.observation
    stored = fake_mem.trajectories(agent_id="a")[0]
    assert stored.steps[0].truncated and stored.steps[0].observation == step.observation


def test_add_trajectory_stores_episodes_with_step_structure(fake_mem):
    t = fake_mem.add_trajectory(
        "Order a mug",
        [{"tool": "search", "args": {"q": "mug"}, "observation": "sku-1"}, {"tool": "checkout", "error": PAY}],
        "failure",
        agent_id="shop",
        metrics={"steps": 2, "cost": 0.01, "time": 1.5},
    )
    header = fake_mem.get(t.id)
    assert header.kind == "episode" and header.metadata["procedural"] == "trajectory"
    assert header.metadata["metrics"] == {"steps": 2, "cost": 0.01, "time_s": 1.5}
    s1 = fake_mem.get(t.step_ids[1])
    assert s1.source_ids == [t.id] and s1.metadata["index"] == 1 and s1.metadata["failed"]
    assert s1.metadata["error_signature"] == error_signature(PAY)
    back = fake_mem.trajectories(agent_id="shop")
    assert len(back) == 1 and back[0].steps == t.steps and back[0].step_ids == t.step_ids


# -- mining rules -----------------------------------------------------------------------------------
def test_error_signature_masks_instance_values():
    assert error_signature(PAY) == error_signature(PAY.replace("39.80", "12.00"))
    assert error_signature("NotFound: '/home/a/x.txt'") == error_signature("NotFound: '/tmp/y'")
    assert error_signature(PAY) != error_signature("CustomsError: missing declaration")


def test_recovery_tip_has_fix_args_and_exact_step_provenance():
    trajs = [_recovered("t1"), _recovered("t2", "Hamburg"), _recovered("t3")]
    tips = {t.type: t for t in mine(trajs).tips}
    rec = tips["recovery"]
    assert rec.tool == "checkout" and rec.fix_args == {"confirm": True} and rec.support == 3
    assert rec.task_keywords == []  # the error happened on every task: it always applies
    assert rec.source_steps[:2] == ["t1-s1", "t1-s2"]  # the failing call and the fixing call
    assert "confirm=true" in rec.text and "39" not in rec.text  # numbers masked in the text


def test_call_before_recovery_with_task_keywords_and_contra():
    def intl(tid: str) -> Trajectory:
        return _t(
            f"Order a lamp to {tid} (international shipping)",
            [
                {
                    "tool": "checkout",
                    "args": {"confirm": True},
                    "error": "CustomsError: declaration missing for 'Japan'",
                },
                {"tool": "declare_customs", "args": {"country": "Japan"}, "observation": "filed"},
                {"tool": "checkout", "args": {"confirm": True}, "observation": "ok"},
            ],
            "success",
            tid,
        )

    def dom(tid: str) -> Trajectory:
        return _t(
            f"Order a lamp to Munich {tid} (domestic shipping)",
            [{"tool": "checkout", "args": {"confirm": True}, "observation": "ok"}],
            "success",
            tid,
        )

    tips = mine([intl("Osaka"), intl("Seoul"), dom("c"), dom("d")]).tips
    rec = next(t for t in tips if t.type == "recovery")
    assert rec.call_before == "declare_customs" and rec.fix_args == {}
    assert rec.task_keywords == ["international"]
    assert "on tasks mentioning: international" in rec.text
    # the tool that fixed an error is never suggested for skipping
    assert not any(t.type == "optimization" and "declare_customs" in t.skip for t in tips)


def test_validator_rejects_low_support_and_contradicted_fixes():
    res = mine([_recovered("t1")], min_support=2, validator=RuleValidator(min_support=2, lesson_support=2))
    assert not res.tips and any("support 1" in why for _, why in res.rejected)
    # a one-run plan is no pattern yet, whatever the lesson threshold
    assert not [t for t in mine([_recovered("t1")]).tips if t.type == "strategy"]
    assert RuleValidator(min_support=1).admit(mine([_recovered("t1")], min_support=1).tips[0], contra=5)[0] is False


def test_warning_blames_unusual_args_not_instance_data():
    def failed(tid: str, city: str) -> Trajectory:
        return _t(
            f"Order to {city}",
            [
                {
                    "tool": "checkout",
                    "args": {"address": city, "confirm": True, "split": True},
                    "error": "OrderError: split shipments are disabled; order 1042 cancelled",
                }
            ],
            "failure",
            tid,
        )

    trajs = [failed("f1", "Paris"), failed("f2", "Rome"), _recovered("s1"), _recovered("s2", "Hamburg")]
    warn = next(t for t in mine(trajs).tips if t.type == "warning")
    assert warn.avoid_args == {"split": True}  # not the address: it varies across successful calls
    assert warn.source_steps == ["f1-s0", "f2-s0"]


def test_strategy_and_optimization_tips():
    habit = [
        {"tool": "check_stock", "args": {"id": "sku-1"}, "observation": "42"},
        {"tool": "view_cart", "observation": "1 item"},
    ]
    cities = ["Munich", "Bonn", "Kiel"]
    trajs = [_recovered(f"p{i}", cities[i]) for i in range(3)] + [_recovered(f"h{i}", extra=habit) for i in range(2)]
    tips = mine(trajs).tips
    strat = next(t for t in tips if t.type == "strategy" and t.plan == ["search", "checkout"])
    # the essential plan: habits the optimization rule found wasteful do not split the strategy
    assert strat.support == 5 and not [t for t in tips if t.type == "strategy" and "check_stock" in t.plan]
    assert strat.plan_args == {"checkout": {"confirm": True}, "search": {"query": "mug"}}  # not the varying address
    assert "h0-s1" not in strat.source_steps and "h0-s0" in strat.source_steps
    opt = {t.skip[0]: t for t in tips if t.type == "optimization"}
    assert set(opt) == {"check_stock", "view_cart"}
    assert "2.0 more steps" in opt["check_stock"].evidence
    assert opt["check_stock"].source_steps == ["h0-s1", "h1-s1"]


# -- storage, serving, the loop ----------------------------------------------------------------------
def _seed(mem, n: int = 3) -> None:
    mem.add_trajectories(
        [_recovered(f"t{i}", city) for i, city in enumerate(["Munich", "Hamburg", "Bonn"][:n])], agent_id="shop"
    )


def test_learn_stores_procedures_with_provenance_chain_and_is_idempotent(fake_mem):
    _seed(fake_mem)
    report = fake_mem.learn_tips(agent_id="shop")
    assert report.trajectories == 3 and report.added
    rec = next(t for t in report.tips if t.type == "recovery")
    stored = fake_mem.get(rec.id)
    assert stored.kind == "procedure" and stored.source_ids[: len(rec.source_steps)] == rec.source_steps
    chain = fake_mem.tip_provenance(rec.id)
    first = chain["trajectories"][0]
    assert first["outcome"] == "success" and [s["index"] for s in first["steps"]] == [1, 2]
    assert "confirm=true" in first["steps"][1]["text"]
    again = fake_mem.learn_tips(agent_id="shop")
    assert not again.added and len(again.tips) == len(report.tips)
    _seed(fake_mem, 2)  # more evidence: support grows on the same tip, no duplicate
    third = fake_mem.learn_tips(agent_id="shop")
    assert not third.added and next(t for t in third.tips if t.id == rec.id).support == 5


def test_tips_ranks_by_error_and_tools_and_counts_serving(fake_mem):
    _seed(fake_mem)
    fake_mem.learn_tips(agent_id="shop")
    g = fake_mem.tips("Order 3 x lamp to Cologne", tools=["search", "checkout"], errors=[PAY], agent_id="shop")
    top = g.tips[0]
    assert top.tip.type == "recovery" and top.signals["error"] == 1.0 and top.signals["tools"] == 1.0
    assert "Lessons from earlier runs" in g.text and top.tip.id in g.text and str(g) == g.text
    assert fake_mem.list_tips(agent_id="shop")[0].served >= 1
    none = fake_mem.tips("Order a lamp", agent_id="nobody")
    assert none.tips == [] and none.text == ""
    quiet = fake_mem.tips("Order a lamp", agent_id="shop", track=False)
    assert {t.tip.id: t.tip.served for t in quiet.tips} == {
        t.tip.id: t.tip.served for t in fake_mem.tips("Order a lamp", agent_id="shop", track=False).tips
    }
    with pytest.raises(ValidationError, match="types.0: Input should be .strategy."):
        fake_mem.tips("x", types=["magic"])
    with pytest.raises(ValidationError, match="tools: Input should be a valid list"):
        fake_mem.tips("x", tools="search")


def test_conditional_tip_is_demoted_when_its_keywords_are_absent(fake_mem):
    trajs = [
        _t(
            f"Ship {i} to Osaka (international shipping)",
            [
                {"tool": "checkout", "error": "CustomsError: missing"},
                {"tool": "declare_customs", "observation": "ok"},
                {"tool": "checkout", "observation": "ok"},
            ],
            "success",
            f"i{i}",
        )
        for i in range(2)
    ]
    trajs += [
        _t(f"Ship {i} to Bonn (domestic shipping)", [{"tool": "checkout", "observation": "ok"}], "success", f"d{i}")
        for i in range(2)
    ]
    fake_mem.add_trajectories(trajs, agent_id="shop")
    fake_mem.learn_tips(agent_id="shop")
    intl = fake_mem.tips("Ship 9 to Seoul (international shipping)", agent_id="shop", track=False)
    dom = fake_mem.tips("Ship 9 to Cologne (domestic shipping)", agent_id="shop", track=False)
    s_intl = next(s for s in intl.tips if s.tip.call_before == "declare_customs")
    s_dom = next(s for s in dom.tips if s.tip.call_before == "declare_customs")
    assert s_intl.signals["keywords"] == 1.0 and s_dom.signals["keywords"] == 0.0
    assert s_intl.score > s_dom.score + 0.25


def test_report_outcome_tracks_utility_and_a_well_supported_tip_survives_bad_luck(fake_mem):
    _seed(fake_mem)
    _seed(fake_mem)  # support 6
    fake_mem.learn_tips(agent_id="shop")
    tip = next(t for t in fake_mem.list_tips(agent_id="shop") if t.type == "recovery")
    assert tip.support == 6
    (after,) = fake_mem.report_outcome([tip.id], "success")
    assert after.successes_after == 1 and after.utility == pytest.approx(2 / 3)
    (after,) = fake_mem.report_outcome([tip.id], "partial")
    assert after.partials_after == 1 and after.utility == pytest.approx(2 / 3)
    for _ in range(5):
        (after,) = fake_mem.report_outcome([tip.id], "failed")
    # utility 2/8 is low, but 5 failures do not outweigh 6 supporting trajectories: the validator keeps it
    assert after.failures_after == 5 and after.utility == pytest.approx(2 / 8) and after.status == "active"
    assert fake_mem.get(tip.id).metadata["tip"]["failures_after"] == 5
    assert len(fake_mem.history(tip.id)) >= 8  # every change is versioned


def test_retirement_happens_only_when_evidence_outweighs_support(fake_mem):
    _seed(fake_mem)
    fake_mem.learn_tips(agent_id="shop")
    tip = next(t for t in fake_mem.list_tips(agent_id="shop") if t.type == "recovery")
    strict = RuleValidator(min_reports=5, retire_below=0.35)
    states = [fake_mem.report_outcome([tip.id], "failure", validator=strict)[0].status for _ in range(5)]
    assert states == ["active"] * 4 + ["retired"]  # 5 failures > support 3, utility 1/7
    assert tip.id not in [t.id for t in fake_mem.list_tips(agent_id="shop")]
    retired = fake_mem.list_tips(agent_id="shop", status="retired")
    assert [t.id for t in retired] == [tip.id]
    rec = fake_mem.get(tip.id)
    assert rec.valid_to is not None and "utility" in rec.metadata["retired_reason"]
    assert tip.id not in fake_mem.tips("Order a mug", agent_id="shop").tip_ids
    with pytest.raises(ValidationError, match="outcome: Input should be .success."):
        fake_mem.report_outcome([tip.id], "meh")
    with pytest.raises(NotFoundError):
        fake_mem.report_outcome(["nope"], "success")


def test_llm_path_merges_same_tips_and_keeps_provenance(fake_mem):
    _seed(fake_mem, 2)
    prompts = []

    def fake_llm(prompt: str) -> str:
        prompts.append(prompt)
        return json.dumps(
            {
                "tips": [
                    {
                        "type": "recovery",
                        "text": "If checkout asks for confirmation, pass confirm=true.",
                        "tool": "checkout",
                        "error_signature": PAY,
                        "fix_args": {"confirm": True},
                        "step_refs": [1, 2, 99],
                    }
                ]
            }
        )

    report = fake_mem.learn_tips(agent_id="shop", llm=fake_llm, min_support=5)  # rules admit nothing at 5
    assert len(prompts) == 2 and "[1] checkout(" in prompts[0] and "Outcome: success" in prompts[0]
    llm_tips = [t for t in report.tips if t.origin == "llm"]
    assert len(llm_tips) == 1 and llm_tips[0].support == 2  # the same tip from both runs, merged
    assert len(llm_tips[0].source_steps) == 4  # steps 1 and 2 of each run; step 99 does not exist

    def inventive_llm(prompt: str) -> str:  # no provenance, or a tool the runs never used: the validator refuses
        return json.dumps(
            {
                "tips": [
                    {"type": "strategy", "text": "Always call teleport.", "plan": ["teleport"], "step_refs": [0]},
                    {"type": "warning", "text": "Be careful."},
                ]
            }
        )

    report = fake_mem.learn_tips(agent_id="shop", llm=inventive_llm, min_support=5)
    reasons = " | ".join(r["reason"] for r in report.rejected)
    assert "teleport" in reasons and "no provenance" in reasons
    assert not any(t.text in ("Always call teleport.", "Be careful.") for t in report.tips)
    with pytest.raises(ValidationError, match="LLM answer"):
        fake_mem.learn_tips(agent_id="shop", llm=lambda p: "not json")


def test_consolidate_merges_near_duplicate_tips(fake_mem):
    _seed(fake_mem, 2)
    text = "Pass confirm=true to checkout when payment needs confirmation."

    def fake_llm(prompt: str) -> str:  # two drafts with different structure but the same sentence
        return json.dumps(
            {
                "tips": [
                    {
                        "type": "recovery",
                        "text": text,
                        "tool": "checkout",
                        "fix_args": {"confirm": True} if "Munich" in prompt else {"confirm": 1},
                        "step_refs": [2],
                    }
                ]
            }
        )

    report = fake_mem.learn_tips(agent_id="shop", llm=fake_llm, min_support=5)
    assert len(report.merged) == 1
    (kept,) = [t for t in report.tips if t.origin == "llm"]
    assert kept.support == 2
    links = fake_mem.store.links(report.merged[0], type="merged_into")
    assert links and links[0].dst_id == kept.id
    again = fake_mem.learn_tips(agent_id="shop", llm=fake_llm, min_support=5)  # the alias keeps it merged
    assert not again.added


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_round_trip_and_bad_input(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from engramdb.cli.main import app

    monkeypatch.setenv("ENGRAMDB_PATH", str(tmp_path / "cli.db"))
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    runner = CliRunner()

    def cli(*args: str) -> str:
        r = runner.invoke(app, list(args))
        assert r.exit_code == 0, (r.output, r.exception)
        return r.stdout

    data = [json.loads(_recovered(f"c{i}").model_dump_json(exclude={"id", "step_ids"})) for i in range(3)]
    path = tmp_path / "trajs.json"
    path.write_text(json.dumps(data))
    added = json.loads(cli("trajectory", "add", str(path), "--agent", "shop", "--json"))
    assert len(added) == 3 and added[0]["steps"] == 3
    learned = json.loads(cli("trajectory", "learn", "--agent", "shop", "--json"))
    assert learned["trajectories"] == 3 and learned["added"]
    out = json.loads(cli("tips", "Order a lamp", "--agent", "shop", "--error", PAY, "--json"))
    assert out["tips"][0]["tip"]["type"] == "recovery" and out["text"].startswith("Lessons")
    reported = json.loads(cli("outcome", *out["tip_ids"], "--result", "success", "--json"))
    assert all(t["successes_after"] == 1 for t in reported)
    assert json.loads(cli("trajectory", "show", added[0]["id"], "--json"))["outcome"] == "success"
    # the real entry point: bad input is one line on stderr and exit code 2, no traceback
    env = {**os.environ, "ENGRAMDB_PATH": str(tmp_path / "cli.db"), "ENGRAMDB_EMBEDDER": "hashing-64"}
    bad = subprocess.run(
        [sys.executable, "-m", "engramdb.cli.main", "trajectory", "add", "-", "--agent", "shop"],
        capture_output=True,
        text=True,
        env=env,
        input='{"task": "x", "steps": [{"tool": "a"}]}',
        timeout=120,
    )
    assert bad.returncode == 2 and "outcome: missing" in bad.stderr and "Traceback" not in bad.stderr


def test_async_twins(tmp_path):
    import asyncio

    from engramdb import AsyncMemory
    from engramdb.embed import HashingEmbedder

    async def go() -> None:
        async with AsyncMemory(tmp_path / "a.db", embedder=HashingEmbedder(64)) as amem:
            await amem.add_trajectories([_recovered("a1"), _recovered("a2", "Bonn")], agent_id="shop")
            report = await amem.learn_tips(agent_id="shop")
            g = await amem.tips("Order a lamp", agent_id="shop", errors=[PAY])
            assert g.tip_ids and report.added
            (tip, *_) = await amem.report_outcome(g.tip_ids[:1], "success")
            assert tip.successes_after == 1
            assert (await amem.tip_provenance(tip.id))["trajectories"]

    asyncio.run(go())


def test_warning_without_advice_is_superseded_by_a_recovery_tip():
    def gave_up(tid: str) -> Trajectory:
        return _t(
            "Order 1 x mug to Rome", [{"tool": "checkout", "args": {"address": "Rome"}, "error": PAY}], "failure", tid
        )

    res = mine([gave_up("g1"), gave_up("g2"), _recovered("r1"), _recovered("r2", "Bonn")])
    assert [t.type for t in res.tips if t.error_signature == error_signature(PAY)] == ["recovery"]
    assert any(t.type == "warning" and "superseded" in why for t, why in res.rejected)


# -- few runs: a lesson seen once is served; keywords name the kind of task ------------------------------
def _clean(tid: str, task: str, item: str, city: str) -> Trajectory:
    return _t(task, [{"tool": "search", "args": {"query": item}, "observation": "sku-2"},
                     {"tool": "checkout", "args": {"address": city, "confirm": True}, "observation": "order placed"}],
              "success", tid)


def test_a_lesson_seen_once_is_served_labelled_with_its_support(fake_mem):
    fake_mem.add_trajectories([
        _recovered("t1"),
        _clean("t2", "Order 1 x lamp for delivery to Hamburg (domestic shipping)", "lamp", "Hamburg"),
        _clean("t3", "Order 3 x scarf for delivery to Osaka, Japan (international shipping)", "scarf", "Osaka"),
    ], agent_id="shop")
    fake_mem.learn_tips(agent_id="shop")  # the default min_support=2
    g = fake_mem.tips("Order 4 x vase for delivery to Bonn (domestic shipping)", agent_id="shop",
                      errors=["PaymentError: payment of 12.00 EUR needs confirmation"])
    rec = [s.tip for s in g.tips if s.tip.type == "recovery"]
    assert rec and rec[0].support == 1 and rec[0].fix_args == {"confirm": True}
    assert rec[0].evidence == "1 run recovered this way"
    assert "(seen in 1 run;" in g.text
    # the one-run plan is not served as a strategy: plans need min_support runs
    assert not [s for s in g.tips if s.tip.type == "strategy" and s.tip.support < 2]


def test_tip_keywords_name_the_kind_of_task_not_instance_values():
    trajs = [
        _recovered("t1"),
        _clean("t2", "Order 1 x lamp for delivery to Hamburg (domestic shipping)", "lamp", "Hamburg"),
        _clean("t3", "Order 3 x scarf for delivery to Osaka, Japan (international shipping)", "scarf", "Osaka"),
    ]
    assert {"mug", "munich", "lamp", "hamburg", "osaka", "japan"} <= instance_words(trajs)
    assert not {"order", "delivery", "domestic", "international", "shipping"} & instance_words(trajs)
    for min_support in (1, 2):
        tips = mine(trajs, min_support=min_support).tips
        words = {w for t in tips for w in t.task_keywords}
        assert not words & {"mug", "munich", "lamp", "hamburg", "scarf", "osaka", "japan"}, (min_support, words)
        rec = next(t for t in tips if t.type == "recovery")
        assert "mug" not in rec.text.lower() and "munich" not in rec.text.lower()


def test_a_one_run_variant_steps_aside_for_an_established_recovery():
    odd = _recovered("odd", extra=None)
    odd.steps[2].args["gift_wrap"] = True  # the run also tried an unrelated flag
    trajs = [_recovered("t1"), _recovered("t2", "Hamburg"), odd]
    rec = [t for t in mine(trajs).tips if t.type == "recovery"]
    assert [t.fix_args for t in rec] == [{"confirm": True}] and rec[0].support == 2
    alone = [t for t in mine([odd]).tips if t.type == "recovery"]
    assert alone and alone[0].fix_args == {"confirm": True, "gift_wrap": True}  # all there is: served


# -- a page of tips ----------------------------------------------------------------------------------
def test_tips_page_by_utility_with_a_count_in_python_rest_and_cli(tmp_path, monkeypatch):
    """list_tips reads one page (most useful first) and count_tips counts the same selection, without reading
    every tip; REST and the CLI take the same arguments. A tip's history grows with use: `limit` reads the
    newest changes."""
    from fastapi.testclient import TestClient
    from server_helpers import make_env
    from typer.testing import CliRunner

    from engramdb import Memory
    from engramdb.cli.main import app
    from engramdb.embed import HashingEmbedder
    from engramdb.ui.sample import many_tips

    env = make_env(tmp_path / "srv")
    mem = env.registry.get("acme")
    try:
        agents = many_tips(mem, 120)  # 2 agents, 80 tips each, outcomes on a third
        everything = mem.list_tips(status=None)
        assert len(everything) == mem.count_tips(status=None) == 160
        best_first = sorted(everything, key=lambda t: (-t.utility, -t.support, t.text))
        assert len({t.utility for t in everything}) > 3  # the order is not the storage order
        assert [t.id for t in mem.list_tips(status=None, order="-utility")] == [t.id for t in best_first]
        pages = [mem.list_tips(status=None, order="-utility", limit=7, offset=o) for o in range(0, 160, 7)]
        assert [t.id for p in pages for t in p] == [t.id for t in best_first]
        newest = mem.list_tips(status=None, order="-recorded_at", limit=3)
        assert [t.id for t in newest] == [t.id for t in everything[::-1][:3]]
        for sel in ({"agent_id": agents[0]}, {"tip_type": "recovery"}, {"agent_id": agents[1], "tip_type": "strategy"},
                    {"status": "retired"}):
            got = mem.list_tips(**sel)
            assert mem.count_tips(**sel) == len(got), sel
            assert all(t.type == sel.get("tip_type", t.type) for t in got)
        assert mem.count_tips(agent_id=agents[0], tip_type="recovery") == 40
        for bad in ({"tip_type": "magic"}, {"order": "-occurred_at"}, {"limit": 0}, {"offset": -1}, {"status": "x"}):
            with pytest.raises(ValidationError):
                mem.list_tips(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="order must be one of"):
            mem.list(order="-utility")  # a tips order, not one for memories
        # history: a tip is rewritten on every outcome, so its history grows; limit reads the newest
        busy = max(everything, key=lambda t: t.successes_after + t.failures_after + t.partials_after)
        full = mem.history(busy.id)
        assert len(full) >= 3
        assert [(h.version, h.action) for h in mem.history(busy.id, limit=2)] == [(h.version, h.action)
                                                                                for h in full[-2:]]
        with pytest.raises(ValidationError):
            mem.history(busy.id, limit=0)

        with TestClient(env.app) as c:
            h = env.auth("acme_ro")
            page = c.get("/v1/tips", params={"status": "all", "order": "-utility", "limit": 5, "offset": 5},
                         headers=h)
            assert [t["id"] for t in page.json()] == [t.id for t in best_first[5:10]]
            assert len(c.get("/v1/tips", params={"status": "all"}, headers=h).json()) == 160  # no limit: all
            n = c.get("/v1/tips/count", params={"agent_id": agents[0], "tip_type": "recovery"}, headers=h).json()
            assert n == {"count": 40}
            assert c.get("/v1/tips", params={"tip_type": "magic"}, headers=h).status_code == 422
            assert c.get("/v1/tips", params={"limit": 0}, headers=h).status_code == 422
            hist = c.get(f"/v1/memories/{busy.id}/history", params={"limit": 1}, headers=h).json()["entries"]
            assert [e["version"] for e in hist] == [full[-1].version]
    finally:
        env.registry.close()

    db = tmp_path / "cli.db"
    with Memory(db, embedder=HashingEmbedder(64)) as cli_mem:
        many_tips(cli_mem, 60)
        expected = [t.id for t in cli_mem.list_tips(order="-utility", limit=4, offset=4)]
        active, recovery = cli_mem.count_tips(), cli_mem.count_tips(tip_type="recovery")
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    runner = CliRunner()

    def cli(*args: str) -> str:
        r = runner.invoke(app, [*args, "--db", str(db)])
        assert r.exit_code == 0, (r.output, r.exception)
        return r.stdout

    got = json.loads(cli("tip", "list", "--order=-utility", "--limit", "4", "--offset", "4", "--json"))
    assert [t["id"] for t in got] == expected
    assert json.loads(cli("tip", "count", "--type", "recovery", "--json")) == {"count": recovery}
    assert f"{active} tips (active), showing 5-8" in cli("tip", "list", "--limit", "4", "--offset", "4")
