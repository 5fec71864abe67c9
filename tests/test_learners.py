"""Baselines as first-class models: `polyrec run --model NAME`, saved and reloaded."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.baselines.factors import fit_surprise
from polyrec.learners import learner_names
from polyrec.pipeline import run
from polyrec.run_loader import load_run
from synthetic import tiny_config, write_dataset



@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("learners") / "shop")


def baseline_run(folder: Path, out: Path, name: str, seeds=(0, 1)) -> dict[str, float]:
    cfg = tiny_config(folder)
    cfg.model.name, cfg.seeds = name, list(seeds)
    run(cfg, out, progress=False, log=lambda _: None)
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("kind", ["svd", "svdpp"])
def test_factor_arrays_reproduce_surprise(kind) -> None:
    """The saved arrays predict what scikit-surprise itself predicts (SVD++'s implicit term folded in)."""
    from surprise import SVD, Dataset, Reader, SVDpp

    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 30, 600), rng.integers(0, 40, 600)
    r = rng.integers(1, 6, 600).astype(float)
    model = fit_surprise(kind, u, i, r, 30, 40, (1.0, 5.0), seed=3)
    algo = (SVDpp if kind == "svdpp" else SVD)(random_state=3)
    algo.fit(Dataset.load_from_df(pd.DataFrame({"u": u, "i": i, "r": r}), Reader(rating_scale=(1, 5))).build_full_trainset())
    pairs = [(a, b) for a, b in zip(u[:50], i[:50])]
    theirs = np.array([algo.predict(a, b, clip=False).est for a, b in pairs])
    ours = model.predict(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs]))
    assert np.allclose(ours, theirs, atol=1e-6)


def test_every_baseline_runs_writes_its_keys_and_beats_the_trivial(folder, tmp_path) -> None:
    assert set(learner_names()) >= {"polyrec", "bias", "svd", "svdpp", "bpr", "popularity", "logreg"}
    svd = baseline_run(folder, tmp_path / "svd", "svd")
    bias = baseline_run(folder, tmp_path / "bias", "bias")
    # Ratings are 4-5 in a user's preferred item group and 1-2 elsewhere: a user × item
    # interaction that factors capture and biases cannot.
    assert svd["A.rating.rmse"] < bias["A.rating.rmse"] and svd["A.ctr.auc"] > bias["A.ctr.auc"] + 0.15
    assert "A.ctr.logloss" not in svd  # a predicted rating is a score, not a probability
    assert not any(k.startswith("B.") for k in svd)  # no next-item task: protocol B skipped
    bpr = baseline_run(folder, tmp_path / "bpr", "bpr")
    pop = baseline_run(folder, tmp_path / "pop", "popularity")
    assert set(bpr) >= {"B.next_item.ndcg@10", "B.next_item.hr@10", "model.trainable_params", "model.users_per_s"}
    assert "B.next_item.ndcg@10" in pop and "A.ctr.auc" in pop
    logreg = baseline_run(folder, tmp_path / "logreg", "logreg")
    assert logreg["A.profile.gender.auc"] > 0.8  # gender decides the preferred group
    for name in ("svd", "bpr", "logreg"):
        assert (tmp_path / name / "predictions" / ("B" if name == "bpr" else "A") / "seed1" / "valid.npz").is_file()


def test_a_baseline_run_reloads_and_answers_by_id(folder, tmp_path) -> None:
    baseline_run(folder, tmp_path / "bpr", "bpr", seeds=(0,))
    rec = load_run(tmp_path / "bpr")
    assert rec.tasks == {"next_item"}
    top = rec.recommend("u000", k=5)
    assert len(top) == 5
    seen = set(pd.read_csv(folder / "interactions.csv").query("user_id == 'u000'")["item_id"])
    assert not seen & set(top["item_id"])
    with pytest.raises(ValueError, match="no profile model"):
        rec.profile("u000")
    baseline_run(folder, tmp_path / "bias", "bias", seeds=(0,))
    pred = load_run(tmp_path / "bias").predict(["u000", "u001"], ["i000", "i039"])
    assert list(pred.columns) == ["user_id", "item_id", "rating", "ctr_score"]
    assert pred["rating"].between(1, 5).all()


def test_unknown_model_is_one_clear_error(folder, tmp_path) -> None:
    cfg = tiny_config(folder)
    cfg.model.name = "svdd"
    with pytest.raises(ValueError, match="unknown model 'svdd'; models: polyrec, bias"):
        run(cfg, tmp_path / "x", progress=False, log=lambda _: None)


def test_studies_can_skip_the_printed_baselines(folder, tmp_path) -> None:
    cfg = tiny_config(folder, epochs=1)
    with_baselines = run(cfg, tmp_path / "with", progress=False, log=lambda _: None).metrics
    without = run(cfg, tmp_path / "without", progress=False, log=lambda _: None, baselines=False).metrics
    assert any(k.startswith("baseline.") for k in with_baselines)
    assert not any(k.startswith("baseline.") for k in without)
    assert without["A.rating.rmse"] == with_baselines["A.rating.rmse"]  # the model itself is the same


def test_a_run_resumes_finished_seeds_and_grows_by_seeds(tmp_path) -> None:
    """Seeds finished before in the same folder with the same configuration are read back,
    not retrained: the result equals one run over all seeds."""
    folder = write_dataset(tmp_path / "data")
    cfg = tiny_config(folder, epochs=2)
    cfg.seeds = [0, 1]
    whole = run(cfg, tmp_path / "whole", progress=False, log=lambda _: None, baselines=False).metrics
    piece = copy.deepcopy(cfg)
    piece.seeds = [1]  # e.g. another process's share of the seeds
    run(piece, tmp_path / "pieces", progress=False, log=lambda _: None, baselines=False)
    lines: list[str] = []
    grown = run(cfg, tmp_path / "pieces", progress=False, log=lines.append, baselines=False).metrics
    assert any("seed 1: finished before" in line for line in lines)
    assert not any("seed 0: finished before" in line for line in lines)
    # The served model is seed 0's (the first seed), though another process trained seed 1 first.
    assert (tmp_path / "pieces" / "model" / "A" / "model.safetensors").read_bytes() == (
        tmp_path / "pieces" / "seeds" / "A" / "seed0" / "model.safetensors"
    ).read_bytes()
    timing = ("seconds", "users_per_s")
    assert {k for k in grown} == {k for k in whole}
    for key, value in whole.items():
        if not any(t in key for t in timing):
            assert grown[key] == pytest.approx(value, rel=1e-6), key
    other = copy.deepcopy(cfg)
    other.train.lr = 0.005  # another question: nothing is read back
    lines.clear()
    run(other, tmp_path / "pieces", progress=False, log=lines.append, baselines=False)
    assert not any("finished before" in line for line in lines)


def test_a_stopped_run_resumes_from_the_seeds_it_finished(tmp_path, monkeypatch) -> None:
    """A seed's record is written as soon as its protocols are trained, not at the end of the
    run: stopped during seed 1, the run keeps seed 0 and trains only seed 1 when called again."""
    import polyrec.run_jobs as jobs_module

    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    cfg.seeds, cfg.train.workers = [0, 1], 1
    out, real = tmp_path / "run", jobs_module.train_job

    def stopped_at_seed_1(inputs, protocol: str, seed: int):
        if seed == 1:
            raise KeyboardInterrupt
        return real(inputs, protocol, seed)

    monkeypatch.setattr(jobs_module, "train_job", stopped_at_seed_1)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, progress=False, log=lambda _: None, baselines=False)
    assert json.loads((out / "progress" / "seed0.json").read_text())["cost"] is None  # stopped before the timing
    assert not (out / "progress" / "seed1.json").exists()
    trained: list[tuple[str, int]] = []
    monkeypatch.setattr(jobs_module, "train_job", lambda inputs, p, s: trained.append((p, s)) or real(inputs, p, s))
    lines: list[str] = []
    result = run(cfg, out, progress=False, log=lines.append, baselines=False)
    assert any("seed 0: finished before" in line for line in lines)
    assert {s for _, s in trained} == {1}
    assert result.metrics["model.users_per_s"] > 0  # timed on seed 1's model, seed 0 was never timed


def test_a_seed_trained_beside_the_baselines_serves_a_run_without_them(tmp_path) -> None:
    """`polyrec run` measures the simple baselines beside each seed, a bench does not: the bench
    reads such a seed back without their figures; a run that wants them retrains a seed that
    has none."""
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    out = tmp_path / "run"
    with_baselines = run(cfg, out, progress=False, log=lambda _: None, baselines=True).metrics
    lines: list[str] = []
    without = run(cfg, out, progress=False, log=lines.append, baselines=False).metrics
    assert any("seed 0: finished before" in line for line in lines)
    assert not any(k.startswith("baseline.") for k in without)
    assert without["A.rating.rmse"] == with_baselines["A.rating.rmse"]
    lines.clear()
    run(cfg, tmp_path / "bare", progress=False, log=lambda _: None, baselines=False)
    again = run(cfg, tmp_path / "bare", progress=False, log=lines.append, baselines=True).metrics
    assert not any("finished before" in line for line in lines)
    assert any(k.startswith("baseline.") for k in again)


def _read_back(cfg, out) -> bool:
    """Whether running ``cfg`` into ``out`` again reads seed 0 back rather than retraining it."""
    lines: list[str] = []
    run(cfg, out, progress=False, log=lines.append, baselines=False)
    return any("seed 0: finished before" in line for line in lines)


def test_a_seed_without_a_teacher_is_read_back_whatever_its_unread_distillation_settings(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    run(cfg, tmp_path / "run", progress=False, log=lambda _: None, baselines=False)
    cfg.distill.temperature = 5.0  # read only when there is a teacher
    assert _read_back(cfg, tmp_path / "run")
    cfg.train.lr *= 2  # what training does read still retrains
    assert not _read_back(cfg, tmp_path / "run")


def test_a_seed_saved_before_a_setting_existed_is_read_back_at_its_default(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    run(cfg, tmp_path / "run", progress=False, log=lambda _: None, baselines=False)
    record_path = tmp_path / "run" / "progress" / "seed0.json"
    record = json.loads(record_path.read_text())
    del record["config"]["model"]["item_id_rank"]  # as saved before the setting was added
    record_path.write_text(json.dumps(record))
    assert _read_back(cfg, tmp_path / "run")
    # A setting whose default changed what runs do (config.LEGACY_VALUES): a record without
    # it was made without the item prior, so it answers a config with the prior off only.
    record = json.loads(record_path.read_text())
    del record["config"]["model"]["item_prior"]
    record_path.write_text(json.dumps(record))
    assert not _read_back(cfg, tmp_path / "run")  # retrained, which saves a fresh record
    record = json.loads(record_path.read_text())
    del record["config"]["model"]["item_prior"]
    record_path.write_text(json.dumps(record))
    cfg.model.item_prior = False
    assert _read_back(cfg, tmp_path / "run")
    # Likewise attention dropout, which followed `dropout` (None) before it had its own default,
    # and the item prior's refit, which did not exist.
    for key, value, read_back in (("attention_dropout", 0.0, False), ("attention_dropout", None, True),
                                  ("item_prior_refit", True, False), ("item_prior_refit", False, True)):
        record = json.loads(record_path.read_text())
        del record["config"]["model"][key]
        record_path.write_text(json.dumps(record))
        setattr(cfg.model, key, value)
        assert _read_back(cfg, tmp_path / "run") is read_back
    # And text fields encoded apart: a record without the setting joined them.
    for value, read_back in ((True, False), (False, True)):
        record = json.loads(record_path.read_text())
        del record["config"]["text"]["per_field"]
        record_path.write_text(json.dumps(record))
        cfg.text.per_field = value
        assert _read_back(cfg, tmp_path / "run") is read_back
    record = json.loads(record_path.read_text())
    record["config"]["model"]["no_such_setting"] = 1  # one since removed: it no longer reads
    record_path.write_text(json.dumps(record))
    assert not _read_back(cfg, tmp_path / "run")


def test_a_seed_is_not_read_back_for_other_data_or_with_no_resume(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    run(cfg, tmp_path / "run", progress=False, log=lambda _: None, baselines=False)
    lines: list[str] = []
    run(cfg, tmp_path / "run", progress=False, log=lines.append, baselines=False, resume=False)
    assert not any("finished before" in line for line in lines)
    write_dataset(tmp_path / "data", seed=1)  # same folder, same config, other interactions
    lines.clear()
    run(cfg, tmp_path / "run", progress=False, log=lines.append, baselines=False)
    assert not any("finished before" in line for line in lines)
    lines.clear()
    run(cfg, tmp_path / "run", progress=False, log=lines.append, baselines=False)
    assert any("seed 0: finished before" in line for line in lines)


def test_the_logreg_baseline_leaves_out_an_attribute_with_one_class_among_its_training_users() -> None:
    """A rare class can fall wholly into a fold's held-out users: nothing to learn there, so
    that attribute gets no logistic regression, and the others are fitted as usual."""
    from polyrec.baselines.learners import LogRegLearner
    from polyrec.learners import LearnerContext
    from polyrec.train.protocol_data import prepare
    from synthetic import synthetic_dataset

    ds = synthetic_dataset()
    held_out = prepare(ds, "A", 0, 4.0, 10, True).user_split.test
    ds.users["vip"] = np.where(np.isin(np.arange(ds.n_users), held_out), "yes", "no").astype(object)
    ds.attributes = [*ds.attributes, "vip"]
    data = prepare(ds, "A", 0, 4.0, 10, True)
    assert set(data.profile_true["vip"][held_out]) == {data.attribute_classes["vip"].index("yes")}
    learner = LogRegLearner(LearnerContext(tiny_config(), ["profile"], ds.n_items, None, ds.rating_range, 0))
    learner.fit(data)
    assert set(learner.models) == set(ds.attributes) - {"vip"}
    assert set(learner.predict(data, data.test)) == {f"profile.{a}" for a in ds.attributes if a != "vip"}
