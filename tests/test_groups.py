"""``polyrec fairness``: test metrics within user groups and item-popularity groups, scored
from a run's kept predictions (here written by hand, so every group's figure is known)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyrec.cli import main
from polyrec.eval.groups import popularity_groups, top_lists
from polyrec.eval.metrics import rmse
from polyrec.eval.prediction_store import save_predictions
from polyrec.pipeline import load_configured_dataset
from polyrec.train.protocol_data import prepare
from synthetic import tiny_config, write_dataset


def test_popularity_groups_split_the_training_interactions_in_thirds() -> None:
    counts = np.array([12, 0, 5, 5, 3, 2, 1, 2])  # 30 interactions; by count: i0 | i2 i3 | the rest
    assert popularity_groups(counts).tolist() == [0, 2, 1, 1, 2, 2, 2, 2]
    assert popularity_groups(np.zeros(3, dtype=np.int64)).tolist() == [2, 2, 2]  # nothing taken: all tail


def test_top_lists_leave_out_each_users_history() -> None:
    scores = np.array([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    assert top_lists(scores, [np.array([0]), np.array([3, 2])], k=2).tolist() == [[1, 2], [1, 0]]


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A run folder with a config and hand-made test predictions: women's ratings exact and
    their targets ranked first; men's ratings 3 whatever they were and their targets last."""
    root = tmp_path_factory.mktemp("groups")
    cfg = tiny_config(write_dataset(root / "data"))
    cfg.seeds = [0, 1]
    run = root / "run"
    run.mkdir()
    cfg.save(run / "config.yaml")
    ds = load_configured_dataset(cfg)
    codes, classes = ds.attribute_codes("gender")
    women = codes == classes.index("F")
    expected: dict[str, list[float]] = {"F": [], "M": []}
    for seed in cfg.seeds:
        a = prepare(ds, "A", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False)
        pairs = a.test.pairs
        is_f = women[pairs.users]
        rating = np.where(is_f, pairs.ratings, 3.0)
        ctr = np.where(is_f, pairs.labels, 0.5)
        save_predictions(run, "A", seed, "test", {"rating": rating, "ctr": ctr})
        expected["M"].append(rmse(pairs.ratings[~is_f], rating[~is_f]))
        b = prepare(ds, "B", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False)
        scores = np.zeros((len(b.test.next_users), ds.n_items), dtype=np.float32)
        rows = np.arange(len(scores))
        scores[rows, b.test.next_items] = np.where(women[b.test.next_users], 1.0, -1.0)
        save_predictions(run, "B", seed, "test", {"next_item": scores})
    return run, expected


def test_fairness_scores_each_group_on_its_own_pairs_and_targets(fake_run, capsys) -> None:
    run, expected = fake_run
    assert main(["fairness", "--run", str(run)]) == 0
    assert f"wrote {run / 'fairness.md'}" in capsys.readouterr().out
    figures = json.loads((run / "fairness.json").read_text())
    assert figures["gender=F.rating.rmse"] == pytest.approx(0.0, abs=1e-9)
    assert figures["gender=M.rating.rmse"] == pytest.approx(np.mean(expected["M"]))
    assert figures["gender=F.ctr.auc"] == pytest.approx(1.0)
    assert figures["gender=M.ctr.auc"] == pytest.approx(0.5)  # one score for all: no order
    assert figures["gender=F.next_item.hr@10"] == 1.0 and figures["gender=F.next_item.ndcg@10"] == 1.0
    assert figures["gender=M.next_item.hr@10"] == 0.0  # ranked below every unseen item of 40
    assert figures["gender=F.test targets"] + figures["gender=M.test targets"] == 60
    shares = [figures[f"item popularity={g}.share of top-10 slots"] for g in ("head", "torso", "tail")]
    assert sum(shares) == pytest.approx(1.0)
    assert 0 < figures["catalogue=all.coverage@10"] <= 1
    report = (run / "fairness.md").read_text()
    assert "## gender" in report and "## item popularity" in report
    assert "| gap | " in report and "(F / M)" in report  # women best on every metric here


def test_fairness_of_a_folder_without_predictions_is_one_line(tmp_path, capsys) -> None:
    assert main(["fairness", "--run", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_fairness_of_a_profile_only_run_says_there_is_nothing_to_group(fake_run, tmp_path, capsys) -> None:
    run, _ = fake_run
    profile_only = tmp_path / "profile-only"
    profile_only.mkdir()
    (profile_only / "config.yaml").write_text((run / "config.yaml").read_text())
    for seed in (0, 1):
        save_predictions(profile_only, "A", seed, "test", {"profile.gender": np.full((6, 2), 0.5)})
    assert main(["fairness", "--run", str(profile_only)]) == 2
    assert "no rating, ctr or next-item scores to group" in capsys.readouterr().err
