"""The procedural-memory evaluation: the toy shop, the scripted agent, and one real-model integration run."""

from __future__ import annotations

import random

from engramdb.bench.procedural import TOOLS, Agent, ShopTask, ToyShop, evaluate, make_tasks, markdown, read_tips, run
from engramdb.embed import HashingEmbedder
from engramdb.procedural.model import Guidance, ServedTip, Tip


def test_toy_shop_traps_are_deterministic():
    intl = ToyShop(ShopTask("red mug", 2, "Osaka", "Japan"))
    assert intl.call("checkout", {"address": "Osaka", "confirm": True})[1].startswith("CartError")
    intl.call("add_to_cart", {"item_id": "sku-redmug", "qty": 2})
    assert intl.call("checkout", {"address": "Osaka"})[1].startswith("PaymentError")
    assert intl.call("checkout", {"address": "Osaka", "confirm": True})[1].startswith("CustomsError")
    intl.call("declare_customs", {"country": "Japan"})
    assert intl.call("checkout", {"address": "Osaka", "confirm": True}) == ("order placed, shipping to Osaka", None)
    split = ToyShop(ShopTask("red mug", 1, "Munich", "Germany"))
    split.call("add_to_cart", {"item_id": "sku-redmug", "qty": 1})
    assert split.call("checkout", {"split": True, "confirm": True})[1].startswith("OrderError") and split.cancelled


def test_agent_uses_only_the_structured_fields_of_served_tips():
    task = ShopTask("blue vase", 1, "Seoul", "Korea")
    tips = [
        Tip(type="recovery", text="t", key="k1", tool="checkout", error_signature="x", fix_args={"confirm": True}),
        Tip(
            type="recovery",
            text="t",
            key="k2",
            tool="checkout",
            error_signature="y",
            call_before="declare_customs",
            task_keywords=["international"],
        ),
        Tip(type="optimization", text="t", key="k3", skip=["check_stock", "view_cart", "get_reviews"]),
    ]
    g = Guidance(task=task.text, tips=[ServedTip(tip=t, score=1.0) for t in tips])
    know = read_tips(g, task.text)
    assert know.preset_args == {"checkout": {"confirm": True}} and know.pre_calls == {"checkout": ["declare_customs"]}
    traj = Agent(random.Random(0)).run(task, g)
    assert traj.outcome == "success" and [s.tool for s in traj.steps] == [
        "search",
        "add_to_cart",
        "declare_customs",
        "checkout",
    ]
    domestic = ShopTask("blue vase", 1, "Cologne", "Germany")
    assert read_tips(g, domestic.text).pre_calls == {}  # the conditional tip does not apply at home


def test_memory_beats_no_memory_on_held_out_tasks(tmp_path):
    emb = HashingEmbedder(64)
    base, m0 = evaluate(0, seed=1, n_test=30, embedder=emb, workdir=tmp_path)
    m0.close()
    with_mem, m1 = evaluate(30, seed=1, n_test=30, embedder=emb, workdir=tmp_path)
    served = [t for t in m1.list_tips(agent_id="shopper") if t.served]
    m1.close()
    assert with_mem.success_rate >= base.success_rate + 0.3
    assert with_mem.mean_steps < base.mean_steps - 1
    assert served and sum(t.successes_after + t.failures_after for t in served) > 0  # the loop was closed
    assert {t.text.split()[0] for t in make_tasks(5, random.Random(0), held_out=True)} == {"Order"}
    assert set(TOOLS) >= {"checkout", "declare_customs"}


def test_integration_real_model_learning_curve(embedder):
    """One small end-to-end run with MiniLM: the curve rises from no memory to memory, tips have provenance."""
    report = run(curve=[20], seeds=1, n_test=20, embedder=embedder)
    without, with_mem = report["without_memory"], report["with_memory"]
    assert with_mem["n_train"] == 20 and without["n_train"] == 0
    assert with_mem["success_rate"] > without["success_rate"] + 0.3
    assert with_mem["mean_steps"] < without["mean_steps"]
    ex = report["example_tips"]
    assert ex and all(e["provenance"] and e["provenance"][0]["steps"] for e in ex)
    assert "| without memory |" in markdown(report)
