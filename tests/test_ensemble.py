"""Ensembles: weights fitted on validation predictions only, combined, saved, reloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from polyrec.cli import main
from polyrec.ensemble.combine import Combiner
from polyrec.ensemble.run import ensemble
from polyrec.pipeline import run
from polyrec.run_loader import load_run
from synthetic import tiny_config, write_dataset



@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ensemble")
    folder = write_dataset(root / "shop")
    runs = []
    for name in ("polyrec", "svd", "bpr", "logreg"):
        cfg = tiny_config(folder, epochs=3)
        cfg.model.name, cfg.seeds = name, [0, 1]
        run(cfg, root / name, progress=False, log=lambda _: None)
        runs.append(root / name)
    return runs


# ---------------------------------------------------------------- the combiner


def test_softmax_weights_favour_the_better_member_and_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(3.5, 1.0, 4000)
    good, bad = y + rng.normal(0, 0.4, y.size), y + rng.normal(0, 1.2, y.size)
    comb = Combiner("rating", "softmax").fit([good, bad], y)
    assert comb.weights[0] > 0.8 and comb.weights[1] > 0.0
    assert abs(sum(comb.weights) - 1.0) < 1e-9
    rmse = lambda p: float(np.sqrt(np.mean((p - y) ** 2)))  # noqa: E731
    assert rmse(comb.predict([good, bad])) < rmse(good)  # independent errors: the mix is better


def test_next_item_weights_find_the_informative_member_and_skip_seen_items() -> None:
    rng = np.random.default_rng(1)
    n, items = 300, 50
    targets = rng.integers(1, items, n)
    informative = rng.normal(size=(n, items))
    informative[np.arange(n), targets] += 3.0
    noise = rng.normal(size=(n, items))
    seen = np.zeros((n, items), dtype=bool)
    seen[:, 0] = True
    comb = Combiner("next_item", "softmax").fit([noise, informative], targets, seen)
    assert comb.weights[1] > 0.9
    stacked = Combiner("next_item", "stacking").fit([noise, informative], targets, seen)
    assert stacked.weights[1] > abs(stacked.weights[0])


def test_profile_and_ctr_outputs_are_probabilities() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    a = rng.dirichlet(np.ones(3), 400)
    b = np.eye(3)[y] * 0.6 + 0.4 / 3
    for method in ("softmax", "stacking"):
        p = Combiner("profile", method).fit([a, b], y).predict([a, b])
        assert np.allclose(p.sum(1), 1.0) and (p >= 0).all()
        assert (p.argmax(1) == y).mean() > 0.9
    labels = (rng.random(400) < 0.5).astype(float)
    score = labels * 2 + rng.normal(size=400)  # a score, not a probability
    separating = 1 / (1 + np.exp(-(labels - 0.5) * rng.random(400)))  # perfectly separates
    for method in ("softmax", "stacking"):
        ctr = Combiner("ctr", method).fit([score, separating], labels).predict([score, separating])
        assert ((ctr > 0) & (ctr < 1)).all()  # the scale stays finite


# ---------------------------------------------------------------- end to end


def test_ensemble_run_keys_weights_and_reload(members, tmp_path) -> None:
    out = tmp_path / "ens"
    result = ensemble(members, out, log=lambda _: None)
    m = json.loads((out / "metrics.json").read_text())
    assert m == pytest.approx(result.metrics)
    for key in ("A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "B.next_item.ndcg@10",
                "model.trainable_params", "model.users_per_s", "ensemble.fit_seconds"):  # fmt: skip
        assert key in m, key
    assert m["member.svd.A.rating.rmse"] == json.loads((members[1] / "metrics.json").read_text())["A.rating.rmse"]
    spec = yaml.safe_load((out / "ensemble.yaml").read_text())
    rating = spec["weights"]["seed0"]["A"]["rating"]
    assert rating["members"] == ["polyrec", "svd"] and abs(sum(rating["weights"]) - 1) < 1e-9
    assert spec["weights"]["seed1"]["B"]["next_item"]["members"] == ["polyrec", "bpr"]
    rec = load_run(out)
    assert rec.tasks == {"rating", "ctr", "profile", "next_item"}
    top = rec.recommend("u000", k=3)
    assert len(top) == 3 and top["score"].is_monotonic_decreasing
    pred = rec.predict(["u000"], ["i005"])
    assert 1 <= pred["rating"][0] <= 5 and 0 < pred["ctr"][0] < 1
    assert set(rec.profile("u001")["gender"]) == {"F", "M"}
    rows = rec.profiles(["u001"]).query("attribute == 'gender'")  # the batch table of any run type
    assert dict(zip(rows["value"], rows["probability"])) == pytest.approx(rec.profile("u001")["gender"])


def test_ensemble_cli_and_mismatched_members(members, tmp_path, capsys) -> None:
    out = tmp_path / "stack"
    assert main(["ensemble", "--runs", str(members[1]), str(members[2]), "--method", "stacking", "--out", str(out)]) == 0
    assert "| metric | ensemble |" in capsys.readouterr().out
    assert yaml.safe_load((out / "ensemble.yaml").read_text())["method"] == "stacking"
    cfg = yaml.safe_load((members[1] / "config.yaml").read_text())
    cfg["seeds"] = [5]
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["ensemble", "--runs", str(members[1]), str(other), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "seeds [5] differ" in err and len(err.strip().splitlines()) == 1


def test_weights_never_read_test_predictions(members, tmp_path) -> None:
    """Replacing every member's test predictions with noise leaves every fitted weight as it was."""
    import shutil

    copies = []
    for r in members:
        shutil.copytree(r, tmp_path / r.name)
        copies.append(tmp_path / r.name)
    ensemble(copies, tmp_path / "before", log=lambda _: None)
    rng = np.random.default_rng(0)
    for test_file in [f for r in copies for f in (r / "predictions").rglob("test.npz")]:
        with np.load(test_file) as z:
            noisy = {k: rng.random(z[k].shape) for k in z.files}
        np.savez(test_file, **noisy)
    ensemble(copies, tmp_path / "after", log=lambda _: None)
    weights = [yaml.safe_load((tmp_path / s / "ensemble.yaml").read_text())["weights"] for s in ("before", "after")]
    assert weights[0] == weights[1]
    before, after = (json.loads((tmp_path / s / "metrics.json").read_text()) for s in ("before", "after"))
    assert before["A.rating.rmse"] != after["A.rating.rmse"]  # the test side did change


def test_the_service_serves_an_ensemble(members, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from polyrec.serve.app import create_app

    out = tmp_path / "served"
    ensemble(members, out, log=lambda _: None)
    rec = load_run(out)
    with TestClient(create_app(out, tmp_path / "events.sqlite")) as c:
        got = c.get("/users/u004/recommendations", params={"k": 4})
        assert got.status_code == 200
        assert [r["item_id"] for r in got.json()["items"]] == rec.recommend("u004", k=4)["item_id"].tolist()
        pred = c.post("/predict", json={"pairs": [{"user_id": "u000", "item_id": "i003"}]})
        assert pred.status_code == 200
        assert pred.json()["predictions"][0]["rating"] == pytest.approx(rec.predict(["u000"], ["i003"])["rating"][0])
        profile = c.get("/users/u001/profile").json()
        assert set(profile["attributes"]["gender"]["probabilities"]) == {"F", "M"}
        assert c.get("/users/u001/history").status_code == 501  # an ensemble keeps no histories of its own


def test_runs_keep_only_their_protocols_own_tasks(members) -> None:
    """Protocol A scores rating, ctr and profile; B scores next item (PROTOCOLS.md)."""
    metrics = json.loads((members[0] / "metrics.json").read_text())
    assert any(k.startswith("A.profile.") for k in metrics) and "B.next_item.ndcg@10" in metrics
    assert not any(k.startswith(("B.profile", "B.rating", "B.ctr", "A.next_item")) for k in metrics)
    with np.load(members[0] / "predictions" / "B" / "seed0" / "test.npz") as z:
        assert z.files == ["next_item"]
