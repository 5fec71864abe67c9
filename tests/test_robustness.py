"""`polyrec robustness`: next-item metrics with the test histories damaged on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import tiny_config, torch_threads, write_dataset

from polyrec.cli import main
from polyrec.config import RunConfig
from polyrec.eval.ranking import ranking_metrics, target_ranks
from polyrec.eval.robustness import PERTURBATIONS, Perturbation, perturbation_rng, perturbed, perturbed_metrics
from polyrec.eval.robustness_report import json_key, write_robustness_report
from polyrec.models.io import load_model
from polyrec.pipeline import load_configured_dataset, run
from polyrec.train.protocol_data import prepare
from polyrec.train.sequences import Histories, collate


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("robustness")
    with torch_threads(1):
        cfg = tiny_config(write_dataset(root / "data"), epochs=2)
        cfg.protocols = ["B"]
        run(cfg, root / "run", progress=False, log=lambda _: None, baselines=False)
    return root / "run"


def hand_histories() -> Histories:
    """Three users; an item's rating token is its index + 100, so alignment can be checked."""
    items = [np.array([3, 1, 4, 1, 5, 9, 2, 6]), np.array([7]), np.array([8, 2, 8, 0, 5, 3, 6, 4, 9, 1, 7, 2])]
    return Histories(
        items=items,
        ratings=[i.astype(np.float32) + 0.5 for i in items],
        labels=[(i % 2).astype(np.float32) for i in items],
        tokens=[i + 100 for i in items],
    )


@pytest.mark.parametrize("how", PERTURBATIONS, ids=lambda p: p.name)
def test_a_perturbed_history_keeps_each_items_rating_and_at_least_one_item(how: Perturbation) -> None:
    history, rng = hand_histories(), np.random.default_rng(7)
    out = perturbed(history, np.array([0, 1, 2]), how, rng, n_items=1000)
    for u in range(3):
        items, original = out.items[u], history.items[u]
        assert len(items) >= 1 and len(out.tokens[u]) == len(items) == len(out.ratings[u]) == len(out.labels[u])
        # Noise keeps the positions and replaces some items (a draw may hit the same item).
        replaced = items != original if how.kind == "noise" else np.zeros(len(items), bool)
        # Every item not replaced keeps its own rating, label and token.
        kept = ~replaced
        assert np.array_equal(out.tokens[u][kept], items[kept] + 100)
        assert np.array_equal(out.ratings[u][kept], items[kept] + 0.5)
        if how.kind == "none":
            assert np.array_equal(items, original)
        if how.kind == "latest":
            assert np.array_equal(items, original[-int(how.amount):])
        if how.kind == "shuffle":
            assert sorted(items.tolist()) == sorted(original.tolist())
        if how.kind == "noise":
            assert len(items) == len(original) and replaced.sum() <= max(1, round(how.amount * len(original)))
    assert history.items[2].tolist() == [8, 2, 8, 0, 5, 3, 6, 4, 9, 1, 7, 2]  # the input is left intact
    if how.kind == "noise":  # over many users, the share replaced is the one asked for
        many = Histories([np.arange(20)] * 500, [np.zeros(20, np.float32)] * 500, [np.zeros(20, np.float32)] * 500, [np.arange(20)] * 500)
        out = perturbed(many, np.arange(500), how, np.random.default_rng(1), n_items=10**6)
        share = np.mean([np.mean(out.items[u] != np.arange(20)) for u in range(500)])
        assert share == pytest.approx(round(how.amount * 20) / 20, abs=0.001)


def test_dropping_loses_about_its_share_and_keeps_the_order() -> None:
    long = Histories([np.arange(2000)], [np.zeros(2000, np.float32)], [np.zeros(2000, np.float32)], [np.arange(2000)])
    out = perturbed(long, np.array([0]), Perturbation("drop", 0.25), np.random.default_rng(0), n_items=2000)
    assert 1400 < len(out.items[0]) < 1600
    assert np.all(np.diff(out.items[0]) > 0)  # the survivors in their order
    shuffled = perturbed(long, np.array([0]), Perturbation("shuffle"), np.random.default_rng(0), n_items=2000)
    assert not np.all(np.diff(shuffled.items[0]) > 0)


def test_the_intact_history_gives_the_runs_own_test_metrics(trained) -> None:
    """The unperturbed row ranks exactly as the run's evaluation did: the same model, the
    same test side and the same exclusions."""
    cfg = RunConfig.load(trained / "config.yaml")
    side = prepare(load_configured_dataset(cfg), "B", 0, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False).test
    with torch_threads(1):
        model = load_model(trained / "seeds" / "B" / "seed0")
        intact = perturbed_metrics(model, side, Perturbation("none"), seed=0, batch_users=7)  # batches do not matter
        recorded = json.loads((trained / "metrics.json").read_text())
        for name in ("ndcg@10", "hr@10", "mrr@10"):
            assert intact[name] == pytest.approx(recorded[f"B.next_item.{name}"], abs=1e-9)
        # Perturbations change what the model reads, so their figures differ; and they are seeded.
        latest_only = perturbed_metrics(model, side, Perturbation("latest", 1), seed=0)
        assert latest_only != intact and latest_only == perturbed_metrics(model, side, Perturbation("latest", 1), seed=0)


def test_a_perturbed_ranking_reads_the_damaged_history_and_excludes_the_intact_one(trained) -> None:
    """What the user took stays out of the ranking whatever the model read: with random items
    swapped in, a ranking that excluded the damaged history instead would differ."""
    cfg = RunConfig.load(trained / "config.yaml")
    side = prepare(load_configured_dataset(cfg), "B", 0, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False).test
    how, users, targets = Perturbation("noise", 0.25), side.next_users, side.next_items
    with torch_threads(1):
        model = load_model(trained / "seeds" / "B" / "seed0").eval()
        damaged = perturbed(side.history, users, how, perturbation_rng(how, 0), model.spec.n_items)
        scores = model.score_catalogue(collate(damaged, users, model.spec.config.max_history)).detach().numpy()
        intact_out = ranking_metrics(target_ranks(scores, targets, [side.history.items[u] for u in users]))
        damaged_out = ranking_metrics(target_ranks(scores, targets, [damaged.items[u] for u in users]))
        got = perturbed_metrics(model, side, how, seed=0)
    assert got == pytest.approx(intact_out, abs=1e-12)
    assert damaged_out != intact_out  # the two exclusions rank differently here, so the test can tell


def test_cli_writes_the_report_and_its_json(trained, tmp_path, capsys) -> None:
    with torch_threads(1):
        assert main(["robustness", "--run", str(trained), "--out", str(tmp_path / "r.md"), "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    text = (tmp_path / "r.md").read_text()
    assert all(f"| {how.name} |" in text for how in PERTURBATIONS)
    figures = json.loads((tmp_path / "r.json").read_text())
    assert set(figures) == {json_key(how, m) for how in PERTURBATIONS for m in ("ndcg@10", "hr@10", "mrr@10")} | {"test_targets"}
    assert "drop=0.25.next_item.ndcg@10" in figures and "shuffle.next_item.hr@10" in figures


def test_a_baseline_run_is_refused_in_one_line(tmp_path, capsys) -> None:
    with torch_threads(1):
        cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
        cfg.model.name, cfg.protocols = "popularity", ["B"]
        run(cfg, tmp_path / "pop", progress=False, log=lambda _: None, baselines=False)
        assert main(["robustness", "--run", str(tmp_path / "pop")]) == 2
    err = capsys.readouterr().err.strip()
    assert "re-ranks with polyrec's own model" in err and len(err.splitlines()) == 1
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        write_robustness_report(tmp_path / "nowhere")
