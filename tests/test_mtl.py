"""Expert layers (shared-bottom, MMoE, PLE), loss weighting (fixed, uncertainty, GradNorm,
PCGrad) and `polyrec bench mtl`, on tiny synthetic data."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from synthetic import TINY_YAML, tiny_config, write_dataset

from polyrec.bench.mtl import MAIN_METRICS, default_result, main_metrics, variants
from polyrec.bench.study_runs import same_question
from polyrec.bench.mtl_choice import ranking, verdict, versus_single
from polyrec.cli import main
from polyrec.config import TASKS, MtlConfig, RunConfig, WeightingConfig
from polyrec.data.tables import Dataset
from polyrec.eval.stored import stored_metrics
from polyrec.eval.predict import predict_pairs, profile_probabilities, score_users
from polyrec.models.io import SPEC, load_model, save_model
from polyrec.pipeline import load_configured_dataset, run
from polyrec.train.finetune import build_model, finetune
from polyrec.train.losses import task_losses
from polyrec.train.sequences import collate
from polyrec.train.weighting import (
    FixedWeights,
    GradNormWeights,
    PCGrad,
    SharedParameters,
    UncertaintyWeights,
    backward_with_task_gradients,
    make_weighting,
    project_conflicting,
)

ARCHS = {
    "mmoe": MtlConfig(arch="mmoe", experts=3),
    "ple": MtlConfig(arch="ple", experts=2, task_experts=1, levels=1),
    "ple2": MtlConfig(arch="ple", experts=2, task_experts=2, levels=2),
}


@pytest.fixture(scope="module")
def batch(data_a):
    return collate(data_a.train, np.flatnonzero(data_a.train.lengths() > 1)[:12], 20)


def new_model(ds, data, mtl: MtlConfig | None = None, seed: int = 0):
    cfg = tiny_config().model
    cfg.item_autoencoder = 0  # the model these tests pin down (commit cd27981) had none
    if mtl is not None:
        cfg.mtl = mtl
    torch.manual_seed(seed)
    return build_model(data, list(TASKS), ds.n_items, None, cfg, ds.rating_range)


# ---------------------------------------------------------------- the default is today's model

# The tiny model of commit cd27981, before expert layers existed (protocol A, seed 0):
# its parameter count and its per-epoch training losses with fixed λ.
BEFORE_PARAMS = 14467
BEFORE_TRAIN_LOSSES = {
    "rating": [2.211810886859894, 2.154365599155426],
    "ctr": [0.6397674381732941, 0.5869697332382202],
    "next_item": [5.35449743270874, 4.390485644340515],
    "profile": [1.2382333874702454, 1.085593968629837],
}


def test_default_config_builds_the_model_without_expert_parameters(ds, data_a) -> None:
    default = new_model(ds, data_a)
    assert sum(p.numel() for p in default.parameters()) == BEFORE_PARAMS
    keys = default.state_dict()
    assert {k.split(".")[0] for k in keys} == {"global_mean", "item_tower", "user_encoder", "pair", "heads", "history_profile"}
    # Under shared-bottom the other MTL fields change nothing; under MMoE they add experts.
    spelled = new_model(ds, data_a, MtlConfig(arch="shared_bottom", experts=7, task_experts=3, levels=2, hidden=99))
    assert {k: v.shape for k, v in spelled.state_dict().items()} == {k: v.shape for k, v in keys.items()}
    assert any(k.startswith("experts.") for k in new_model(ds, data_a, ARCHS["mmoe"]).state_dict())


def test_default_training_is_unchanged(ds, data_a) -> None:
    cfg = tiny_config(epochs=2).train
    cfg.next_item_fraction_in_a = cfg.aux_fraction  # as at that commit: one share for every auxiliary task
    cfg.weighting.method = "fixed"  # as at that commit: Σ λ_t L_t under every protocol
    fit = finetune(new_model(ds, data_a), data_a, cfg, progress=False)
    for task, expected in BEFORE_TRAIN_LOSSES.items():
        np.testing.assert_allclose(fit.curves[task]["train"], expected, rtol=1e-6, err_msg=task)
        assert fit.curves[task]["weight"] == [tiny_config().train.loss_weights[task]] * 2  # fixed λ, logged
        assert "gate" not in fit.curves[task]  # shared-bottom has no gates


# ---------------------------------------------------------------- expert layers


@pytest.mark.parametrize("arch", list(ARCHS))
def test_gates_are_softmax_distributions_per_task(ds, data_a, batch, arch: str) -> None:
    model = new_model(ds, data_a, ARCHS[arch]).eval()
    enc = model.encode(batch)
    assert set(enc.gates) == set(TASKS) == set(enc.task_states)
    for task, g in enc.gates.items():
        assert g.shape == (*batch.items.shape, len(model.experts.expert_names(task)))
        assert bool((g >= 0).all())
        torch.testing.assert_close(g.sum(-1), torch.ones(batch.items.shape))
        assert enc.task_states[task].shape == enc.states.shape
    # Each task has a gate of its own: they weigh the experts differently.
    assert not torch.allclose(enc.gates["rating"], enc.gates["next_item"])


@pytest.mark.parametrize("arch", ["ple", "ple2"])
def test_ple_task_experts_get_no_gradient_from_other_tasks(ds, data_a, batch, arch: str) -> None:
    model = new_model(ds, data_a, ARCHS[arch])
    model.train()
    losses = task_losses(model, batch, data_a.profile_labels)
    assert set(losses) == set(TASKS)

    def touched(modules) -> bool:
        return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for m in modules for p in m.parameters())

    last = model.experts.levels[-1]
    for task in TASKS:
        model.zero_grad(set_to_none=True)
        losses[task].backward(retain_graph=True)
        assert touched([last.own[task]]) and touched(last.shared), task
        for other in TASKS:
            if other != task:
                assert not touched(model.experts.task_modules(other)), (task, other)
                assert not touched([last.own[other]]), (task, other)
        if arch == "ple2":
            # Below the last level a task's own experts feed the shared gate, so every task
            # reaches them (as in the paper): which is why they count as shared parameters.
            assert all(touched([model.experts.levels[0].own[o]]) for o in TASKS), task


def test_shared_parameters_exclude_task_owned_ones(ds, data_a) -> None:
    model = new_model(ds, data_a, ARCHS["mmoe"])
    shared = {id(p) for p in model.shared_parameters()}
    assert all(id(p) not in shared for p in model.heads.parameters())
    assert all(id(p) not in shared for p in model.experts.gates.parameters())
    assert all(id(p) in shared for p in model.experts.experts.parameters())
    assert id(model.last_shared_layer()) in shared


@pytest.mark.parametrize("arch", ["mmoe", "ple2"])
def test_save_load_round_trip_of_expert_models(ds, data_a, tmp_path, arch: str) -> None:
    model = new_model(ds, data_a, ARCHS[arch])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec and isinstance(loaded.spec.config.mtl, MtlConfig)
    users = np.arange(ds.n_users)
    pu, pi = np.repeat(users[:10], 3), np.tile(np.array([0, 17, 33]), 10)
    a, b = predict_pairs(model, data_a.train, pu, pi), predict_pairs(loaded, data_a.train, pu, pi)
    for k in ("rating", "ctr"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(score_users(model, data_a.train, users), score_users(loaded, data_a.train, users))
    pa, pb = profile_probabilities(model, data_a.train, users), profile_probabilities(loaded, data_a.train, users)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    # Not vacuous: the same weights without the expert layer predict differently.
    plain = new_model(ds, data_a)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("experts.")})
    assert not np.allclose(predict_pairs(plain.eval(), data_a.train, pu, pi)["rating"], a["rating"])


def test_a_spec_saved_before_mtl_existed_still_loads(ds, data_a, tmp_path) -> None:
    save_model(new_model(ds, data_a), tmp_path / "old")
    spec = yaml.safe_load((tmp_path / "old" / SPEC).read_text())
    del spec["config"]["mtl"]
    (tmp_path / "old" / SPEC).write_text(yaml.safe_dump(spec, sort_keys=False))
    assert load_model(tmp_path / "old").spec.config.mtl == MtlConfig()


def test_mtl_and_weighting_config_round_trip_and_reject_typos(tmp_path) -> None:
    cfg = RunConfig.from_dict(
        {"model": {"mtl": {"arch": "ple", "levels": 2}}, "train": {"weighting": {"method": "gradnorm", "alpha": 0.5}}}
    )
    cfg.save(tmp_path / "c.yaml")
    again = RunConfig.load(tmp_path / "c.yaml")
    assert again.model.mtl == MtlConfig(arch="ple", levels=2)
    assert again.train.weighting == WeightingConfig(method="gradnorm", alpha=0.5)
    with pytest.raises(ValueError, match="'model.mtl.arch' must be one of shared_bottom, mmoe, ple; got 'moe'"):
        RunConfig.from_dict({"model": {"mtl": {"arch": "moe"}}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['expert'\] in 'config.model.mtl'"):
        RunConfig.from_dict({"model": {"mtl": {"expert": 2}}})
    with pytest.raises(ValueError, match="'train.weighting.method' must be one of"):
        RunConfig.from_dict({"train": {"weighting": {"method": "dwa"}}})


# ---------------------------------------------------------------- loss weighting


def test_pcgrad_removes_the_conflicting_component() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot −1: they conflict
    out = project_conflicting(g, random.Random(0))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert abs(float(out[0] @ g[1])) < 1e-7 and abs(float(out[1] @ g[0])) < 1e-7  # no conflict left
    agree = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(project_conflicting(agree, random.Random(0)), agree)  # nothing to remove


def test_pcgrad_projects_shared_gradients_and_leaves_heads_alone(ds, data_a, batch) -> None:
    model = new_model(ds, data_a, ARCHS["mmoe"])
    model.train()
    torch.manual_seed(3)
    losses = task_losses(model, batch, data_a.profile_labels)
    shared = SharedParameters(model.shared_parameters(), model.last_shared_layer())
    lambdas = {"rating": 1.0, "ctr": 0.5, "next_item": 1.0, "profile": 1.0}
    per_task = [torch.autograd.grad(lambdas[t] * losses[t], shared.params, retain_graph=True, allow_unused=True) for t in losses]
    flat = torch.stack([torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(gs, shared.params)]) for gs in per_task])
    heads = {n: torch.autograd.grad(lambdas[n] * losses[n], list(model.heads[n].parameters()), retain_graph=True) for n in losses}

    PCGrad(list(TASKS), lambdas, seed=5).backward(losses, shared)
    expected = project_conflicting(flat, random.Random(5)).sum(0)
    got = torch.cat([p.grad.flatten() for p in shared.params])
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, flat.sum(0))  # the tasks do conflict here: projection changed something
    for n, grads in heads.items():
        for p, g in zip(model.heads[n].parameters(), grads):
            torch.testing.assert_close(p.grad, g)


def _toy(scales: dict[str, float]):
    """A shared layer W and one head per task; task t's loss is scales[t] · MSE."""
    torch.manual_seed(0)
    W = torch.nn.Linear(4, 4)
    heads = {t: torch.nn.Linear(4, 1) for t in scales}
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    params = [*W.parameters(), *(p for h in heads.values() for p in h.parameters())]

    def losses() -> dict[str, torch.Tensor]:
        h = torch.relu(W(x))
        return {t: s * ((heads[t](h) - y) ** 2).mean() for t, s in scales.items()}

    return losses, SharedParameters(list(W.parameters()), W.weight), torch.optim.SGD(params, lr=0.01)


def test_uncertainty_weight_falls_for_the_task_with_the_larger_loss() -> None:
    losses, shared, opt = _toy({"big": 100.0, "small": 0.01})
    strategy = UncertaintyWeights(["big", "small"], lr=0.05)
    assert strategy.weights() == {"big": 1.0, "small": 1.0}
    history = []
    for _ in range(20):
        opt.zero_grad()
        strategy.backward(losses(), shared)
        opt.step()
        history.append(strategy.weights())
    assert history[-1]["big"] < history[0]["big"] < 1.0 < history[0]["small"] < history[-1]["small"]


def test_gradnorm_reads_the_costliest_tasks_gradient_off_the_joint_backward(ds, data_a, batch) -> None:
    """next_item's gradient on the last shared layer, read off the joint backward, is its own
    gradient; every other task's is taken on its own; the model's gradients are the joint
    backward's."""
    model = new_model(ds, data_a)
    model.train()
    layer = model.last_shared_layer()
    params = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(1)
    losses = task_losses(model, batch, data_a.profile_labels)
    names = list(losses)
    assert "next_item" in names and names[-1] != "next_item"  # the one spared is not merely the last
    listed = [losses[t] for t in names]
    weights = torch.tensor([0.5, 1.5, 0.75, 1.25][: len(names)])
    own = [torch.autograd.grad(loss, layer, retain_graph=True)[0] for loss in listed]
    joint = torch.autograd.grad((weights * torch.stack(listed)).sum(), params, retain_graph=True)
    grads = backward_with_task_gradients(listed, names, weights, layer)
    for k, t in enumerate(names):
        torch.testing.assert_close(grads[k], own[k], rtol=1e-4, atol=1e-6 * float(own[k].abs().max()), msg=t)
    for p, g in zip(params, joint):
        torch.testing.assert_close(p.grad, g)


def test_gradnorm_keeps_weights_summing_to_the_number_of_tasks() -> None:
    losses, shared, opt = _toy({"a": 10.0, "b": 1.0, "c": 0.1})
    strategy = GradNormWeights(["a", "b", "c"], alpha=1.5, lr=0.05)
    for step in range(15):
        opt.zero_grad()
        current = losses()
        if step % 5 == 4:
            del current["c"]  # a batch without a task's targets
        strategy.backward(current, shared)
        opt.step()
        w = strategy.weights()
        assert sum(w.values()) == pytest.approx(3.0, abs=1e-5) and min(w.values()) > 0
    # The task with the largest gradient norm is weighted down, the smallest up.
    assert w["a"] < 1.0 < w["c"]


def test_weighting_can_differ_per_protocol_and_defaults_to_gradnorm_under_a_only(tmp_path) -> None:
    tasks, lambdas = ["rating", "next_item"], {"rating": 1.0, "next_item": 1.0}
    default = WeightingConfig()
    assert isinstance(make_weighting(default, tasks, lambdas, "A"), GradNormWeights)
    assert isinstance(make_weighting(default, tasks, lambdas, "B"), FixedWeights)
    one = WeightingConfig(method="pcgrad")
    assert all(isinstance(make_weighting(one, tasks, lambdas, p), PCGrad) for p in ("A", "B"))
    # A config file naming one protocol keeps the default for the other; a name alone covers both.
    (tmp_path / "w.yaml").write_text("train: {weighting: {method: {B: uncertainty}}}\n")
    assert RunConfig.load(tmp_path / "w.yaml").train.weighting.method == {"A": "gradnorm", "B": "uncertainty"}
    (tmp_path / "w.yaml").write_text("train: {weighting: {method: fixed}}\n")
    assert RunConfig.load(tmp_path / "w.yaml").train.weighting.method_for("A") == "fixed"
    for bad, said in (("{C: fixed}", "must be one of A, B"), ("{A: gradnrm}", "train.weighting.method.A")):
        (tmp_path / "w.yaml").write_text(f"train: {{weighting: {{method: {bad}}}}}\n")
        with pytest.raises(ValueError, match=said):
            RunConfig.load(tmp_path / "w.yaml")


def test_fixed_weights_are_the_joint_loss() -> None:
    losses, shared, _ = _toy({"a": 2.0, "b": 1.0})
    strategy = FixedWeights(["a", "b"], {"a": 0.25})
    current = losses()
    strategy.backward(current, shared)
    (expected,) = torch.autograd.grad(0.25 * losses()["a"] + losses()["b"], [shared.last_layer])
    torch.testing.assert_close(shared.last_layer.grad, expected)
    assert strategy.weights() == {"a": 0.25, "b": 1.0}


@pytest.mark.parametrize("method", ["uncertainty", "gradnorm", "pcgrad"])
def test_finetune_logs_weights_and_gates_per_epoch(ds, data_a, method: str) -> None:
    cfg = tiny_config(epochs=2)
    cfg.train.weighting = WeightingConfig(method=method)
    model = new_model(ds, data_a, ARCHS["mmoe"])
    fit = finetune(model, data_a, cfg.train, progress=False)
    assert set(fit.curves) == set(TASKS)
    for task, c in fit.curves.items():
        assert len(c["weight"]) == 2 and all(w > 0 for w in c["weight"])
        assert c["gate_experts"] == ["expert 0", "expert 1", "expert 2"]
        assert len(c["gate"]) == 2 and all(sum(g) == pytest.approx(1.0) for g in c["gate"])
        assert all(np.isfinite(c["train"])), task
    if method != "pcgrad":  # learned weights move off their start
        assert any(c["weight"][-1] != 1.0 for c in fit.curves.values())


# ---------------------------------------------------------------- polyrec bench mtl


def test_bench_mtl_smoke_run_writes_every_row_and_resumes(tmp_path, capsys) -> None:
    folder = write_dataset(tmp_path / "shop")
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    doc, out = tmp_path / "docs" / "mtl.md", tmp_path / "runs"
    argv = ["bench", "mtl", "--data", str(folder), "--config", str(tmp_path / "tiny.yaml"), "--epochs", "1",
            "--seeds", "0", "--archs", "shared_bottom,mmoe,ple", "--weightings", "gradnorm",
            "--out", str(out), "--doc", str(doc), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = doc.read_text()
    assert "**Not a result**" in text and "--epochs 1" in text and "--weightings gradnorm" in text
    test_part, valid_part = text.split("## The default, chosen on validation")
    for part in (test_part, valid_part.split("Ranked on validation")[0]):  # test table, then validation table
        rows = [line for line in part.splitlines() if line.startswith("| ") and not line.startswith("| configuration")]
        assert [r.split(" | ")[0] for r in rows] == ["| single task", "| shared_bottom + gradnorm", "| mmoe + gradnorm", "| ple + gradnorm"]
        for row in rows:
            cells = row.split(" | ")[1:5]
            assert all(c[0].isdigit() for c in cells), row  # a number under every task's metric
    ranked = [line.split(" | ")[1] for line in valid_part.splitlines() if line[:3] in ("| 1", "| 2", "| 3")]
    assert sorted(ranked) == ["mmoe + gradnorm", "ple + gradnorm", "shared_bottom + gradnorm"]
    assert f"**Best on validation: {ranked[0]}.**" in valid_part
    for png in ("weights_A.png", "weights_B.png", "gates_mmoe.png", "gates_ple.png"):
        assert (doc.parent / "mtl" / png).stat().st_size > 0
    assert "gates_shared_bottom.png" not in text
    # Five protocol-A trainings (rating alone, ctr alone, three architectures) fitted one item,
    # one user and two engagement autoencoders between them: rating alone has no engagement
    # one, and ctr alone, which has no rating autoencoder, draws its own from another start.
    assert len(list((out / "fit-cache").glob("*.pt"))) == 4
    # A second call reuses every finished run; a different question in the same folder is refused.
    stamp = (out / "mmoe-gradnorm" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done before, reused") == 7
    assert (out / "mmoe-gradnorm" / "metrics.json").stat().st_mtime_ns == stamp
    assert main([*argv[:-5], "--epochs", "2", "--out", str(out), "--doc", str(doc), "--quiet"]) == 2
    assert "use another --out" in capsys.readouterr().err
    # More seeds for the same question: the finished seed is read back, only the new one trains.
    grow = [a if a != "shared_bottom,mmoe,ple" else "shared_bottom" for a in argv]
    grow[grow.index("--seeds") + 1] = "0,1"
    assert main(grow) == 0
    printed = capsys.readouterr().out
    assert printed.count("seed 0: finished before") == 5 and "seed 1: finished before" not in printed
    assert RunConfig.load(out / "shared_bottom-gradnorm" / "config.yaml").seeds == [0, 1]
    assert len(list((out / "fit-cache").glob("*.pt"))) == 8  # seed 1's four


def test_stored_predictions_score_again_to_the_run_s_own_metrics_on_either_side(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1, workers=1)
    cfg.seeds = [0]
    result = run(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    ds, splits = load_configured_dataset(cfg), {}
    test = stored_metrics(tmp_path / "run", cfg, ds, 0, "test", splits)
    assert {"A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "B.next_item.ndcg@10"} <= set(test)
    for key, value in test.items():
        assert value == pytest.approx(result.metrics[key], rel=1e-6), key
    valid = stored_metrics(tmp_path / "run", cfg, ds, 0, "valid", splits)
    assert set(valid) == set(test) and valid != test  # the other side's predictions and truth
    assert set(splits) == {("A", 0), ("B", 0)}  # each split prepared once, for both sides


def test_validation_ranking_puts_no_loss_first_then_more_wins_then_the_best_worst_task() -> None:
    single = {
        "rating": {"A.rating.rmse": 0.95, "A.rating.rmse.std": 0.01},
        "next_item": {"B.next_item.ndcg@10": 0.07, "B.next_item.ndcg@10.std": 0.002},
    }
    columns = [("rating", "A.rating.rmse", False), ("next_item", "B.next_item.ndcg@10", True)]
    runs = {
        # wins NDCG by far but loses rating beyond one std
        "seesaw": {"A.rating.rmse": 0.97, "A.rating.rmse.std": 0.01, "B.next_item.ndcg@10": 0.09, "B.next_item.ndcg@10.std": 0.002},
        # one win, rating a little better
        "one_up": {"A.rating.rmse": 0.945, "A.rating.rmse.std": 0.01, "B.next_item.ndcg@10": 0.08, "B.next_item.ndcg@10.std": 0.002},
        # one win, rating a little worse (within one std): its worst task is worse than one_up's
        "one_up_dip": {"A.rating.rmse": 0.955, "A.rating.rmse.std": 0.01, "B.next_item.ndcg@10": 0.09, "B.next_item.ndcg@10.std": 0.002},
        "two_up": {"A.rating.rmse": 0.93, "A.rating.rmse.std": 0.005, "B.next_item.ndcg@10": 0.075, "B.next_item.ndcg@10.std": 0.002},
    }
    verdicts = {name: verdict(m, single, columns) for name, m in runs.items()}
    assert (verdicts["seesaw"].ups, verdicts["seesaw"].downs) == (1, 1)
    assert verdicts["one_up"].worst == pytest.approx(0.5) and verdicts["one_up_dip"].worst == pytest.approx(-0.5)
    assert ranking(verdicts) == ["two_up", "one_up", "one_up_dip", "seesaw"]
    # One seed: no std, so the gain is relative and nothing is marked.
    alone = verdict({"A.rating.rmse": 0.9025}, {"rating": {"A.rating.rmse": 0.95}}, columns[:1])
    assert alone.marks == ("",) and alone.worst == pytest.approx(0.05)


def test_the_default_row_takes_each_protocol_from_the_configuration_that_trains_it_so() -> None:
    plan = variants(["rating", "next_item"], ["shared_bottom"], ["fixed", "gradnorm"])
    results = {
        v.name: {side: {"A.rating.rmse": k + 0.1 * (side == "valid"), "B.next_item.ndcg@10": -k} for side in ("metrics", "valid")}
        for k, v in enumerate(plan)
    }
    default = RunConfig()
    default.train.weighting.method = {"A": "gradnorm", "B": "fixed"}
    row = default_result(plan, results, default)
    assert row["label"] == "shared_bottom + gradnorm (A), fixed (B)"
    assert row["metrics"] == {"A.rating.rmse": results["shared_bottom-gradnorm"]["metrics"]["A.rating.rmse"],
                              "B.next_item.ndcg@10": results["shared_bottom-fixed"]["metrics"]["B.next_item.ndcg@10"]}  # fmt: skip
    assert row["valid"]["A.rating.rmse"] == results["shared_bottom-gradnorm"]["valid"]["A.rating.rmse"]
    default.train.weighting.method = "gradnorm"  # one configuration of the study: its own row
    assert default_result(plan, results, default) is None
    default.train.weighting.method = {"A": "pcgrad", "B": "fixed"}  # not in the study
    assert default_result(plan, results, default) is None


def test_versus_single_marks_only_differences_beyond_one_std() -> None:
    single = {"A.ctr.auc": 0.70, "A.ctr.auc.std": 0.01, "A.rating.rmse": 0.95, "A.rating.rmse.std": 0.01}
    assert versus_single({"A.ctr.auc": 0.72, "A.ctr.auc.std": 0.005}, single, "A.ctr.auc", True) == " ▲"
    assert versus_single({"A.ctr.auc": 0.705, "A.ctr.auc.std": 0.02}, single, "A.ctr.auc", True) == " ="
    assert versus_single({"A.rating.rmse": 0.97, "A.rating.rmse.std": 0.01}, single, "A.rating.rmse", False) == " ▼"
    assert versus_single({"A.rating.rmse": 0.93, "A.rating.rmse.std": 0.01}, single, "A.rating.rmse", False) == " ▲"
    assert versus_single({"A.ctr.auc": 0.9}, single, "A.ctr.auc", True) == ""  # one seed: no std


def test_cold_start_vectors_go_through_the_expert_layer(ds, data_a) -> None:
    """An ad-hoc history equal to a known user's gives that user's vector with MMoE too."""
    from polyrec.recommender import Recommender

    model = new_model(ds, data_a, ARCHS["mmoe"]).eval()
    rec = Recommender({"B": model}, ds.items.astype({"item_id": str}), ds.users, ds.interactions)
    for u in (3, 10):
        mine = ds.interactions[ds.interactions["user"] == u].sort_values("timestamp", kind="stable")
        items = ds.items["item_id"].astype(str).to_numpy()[mine["item"].to_numpy()]
        vector = rec.history_vector(items.tolist(), mine["rating"].tolist())
        np.testing.assert_allclose(vector, rec.user_vectors()[u], atol=1e-5)


def test_a_finished_run_answers_the_same_question_whatever_its_speed_settings_or_unread_sections() -> None:
    done, asked = RunConfig(), RunConfig()
    done.train.threads, done.train.workers = 1, 2
    done.distill.temperature = 5.0  # no teacher: never read
    assert same_question(done, asked)
    done.distill.teacher = asked.distill.teacher = "runs/T"
    assert not same_question(done, asked)  # with a teacher it is read
    asked.distill.temperature = 5.0
    assert same_question(done, asked)
    asked.model.dim = 8
    assert not same_question(done, asked)


def test_the_studies_read_the_profile_by_the_data_s_own_attribute() -> None:
    def data(**attributes: list) -> Dataset:
        users = pd.DataFrame({"user": ["a", "b", "c"], **attributes})
        return Dataset("d", users, pd.DataFrame(), pd.DataFrame(), attributes=list(attributes))

    profile = lambda metrics: [m for m in metrics if m[0] == "profile"]  # noqa: E731
    assert main_metrics(data(age=["1", "2", "3"], gender=["M", "F", "M"])) == MAIN_METRICS  # MovieLens
    assert main_metrics(data()) == MAIN_METRICS  # no attribute: no profile task to read
    assert profile(main_metrics(data(segment=["x", None, "y"]))) == [("profile", "A.profile.segment.auc", "segment AUC ↑", True)]
    assert profile(main_metrics(data(tier=["x", "y", "z"]))) == [("profile", "A.profile.tier.accuracy", "tier accuracy ↑", True)]
    assert [m[0] for m in main_metrics(data(tier=["x", "y", "z"]))] == [m[0] for m in MAIN_METRICS]
