"""The item prior joined to next-item scores: its EASE weights, its choice on validation, and
a saved model that keeps it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from polyrec.eval.prediction_store import load_predictions
from polyrec.eval.predict import score_users
from polyrec.models.io import load_model, save_model
from polyrec.models.item_prior import ItemPrior
from polyrec.pipeline import load_configured_dataset, run
from polyrec.run_loader import seed_model_folder
from polyrec.train.finetune import build_model
from polyrec.train.item_item_solves import transition_neighbours
from polyrec.train import item_prior_fit
from polyrec.train.item_prior_fit import choice_users, ease_neighbours, fit_item_prior, refit_item_prior, taken_matrix
from polyrec.train.protocol_data import prepare
from synthetic import synthetic_dataset, tiny_config, torch_threads, write_dataset


def _taken(seed: int = 0, users: int = 30, items: int = 8) -> sp.csr_matrix:
    return sp.csr_matrix((np.random.default_rng(seed).random((users, items)) < 0.4).astype(float))


def _dense_ease(x: np.ndarray, l2: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)  # Steck 2019, eq. 8
    return b


def test_with_every_neighbour_kept_the_weights_are_closed_form_ease() -> None:
    x = _taken()
    sources, weights = ease_neighbours(x, 5.0, neighbors=8, max_items=100)
    rebuilt = np.zeros((8, 8))
    for target in range(8):
        rebuilt[sources[target], target] = weights[target]
    np.testing.assert_allclose(rebuilt, _dense_ease(x.toarray(), 5.0), atol=1e-5)
    assert np.all(np.diag(rebuilt) == 0)


def test_fewer_neighbours_keep_each_items_strongest_and_max_items_the_most_taken() -> None:
    x = _taken(items=10).tolil()
    x[:, 9] = 0  # never taken: no weight into or out of it
    x[:3, 8] = 1
    x[3:, 8] = 0  # the least taken of the rest
    x = x.tocsr()
    full = _dense_ease(x[:, :9].toarray(), 5.0)
    sources, weights = ease_neighbours(x, 5.0, neighbors=3, max_items=100)
    for target in range(9):
        strongest = np.sort(np.abs(full[:, target]))[-3:]
        np.testing.assert_allclose(np.sort(np.abs(weights[target])), strongest, atol=1e-5)
    assert not weights[9].any()
    capped_sources, capped = ease_neighbours(x, 5.0, neighbors=3, max_items=8)
    assert not capped[8].any() and not capped[9].any() and capped[:8].any()
    assert not np.isin(capped_sources[:8], [8, 9]).any()


@pytest.fixture(scope="module")
def untrained():
    """An untrained model on data whose users take items of one group: its own scores are
    noise, so a prior from the training histories must raise validation NDCG."""
    ds = synthetic_dataset()
    data = prepare(ds, "B", 0, 4.0, 10, True)
    torch.manual_seed(0)
    with torch_threads(1):
        model = build_model(data, ["next_item"], ds.n_items, None, tiny_config().model, ds.rating_range)
    return ds, data, model


def test_the_prior_is_kept_where_it_raises_validation_ndcg_and_a_saved_model_keeps_it(untrained, tmp_path) -> None:
    ds, data, model = untrained
    side = data.valid
    with torch_threads(1):
        own = score_users(model, side.history, side.next_users)
        chosen = fit_item_prior(model, data, tiny_config().model)
        assert chosen["valid_ndcg"] > chosen["valid_ndcg_alone"] and chosen["share"] > 0
        assert model.item_prior is not None and model.spec.item_prior_neighbors > 0
        blended = score_users(model, side.history, side.next_users)
        assert not np.allclose(blended, own)
        save_model(model, tmp_path / "m")
        np.testing.assert_allclose(score_users(load_model(tmp_path / "m"), side.history, side.next_users), blended, atol=1e-5)


def test_with_the_prior_off_or_no_next_item_to_validate_nothing_is_fitted(untrained) -> None:
    ds, data, _ = untrained
    cfg = tiny_config().model
    with torch_threads(1):
        model = build_model(data, ["next_item"], ds.n_items, None, cfg, ds.rating_range)
        cfg.item_prior = False
        assert fit_item_prior(model, data, cfg) == {} and model.item_prior is None
        data_a = prepare(ds, "A", 0, 4.0, 10, True)  # protocol A validates no next item
        model_a = build_model(data_a, ["rating", "next_item"], ds.n_items, None, tiny_config().model, ds.rating_range)
        assert fit_item_prior(model_a, data_a, tiny_config().model) == {} and model_a.item_prior is None


def test_the_refit_reads_the_validation_items_with_the_chosen_l2_share_and_decay(untrained) -> None:
    ds, data, _ = untrained
    cfg = tiny_config().model
    with torch_threads(1):
        model = build_model(data, ["next_item"], ds.n_items, None, cfg, ds.rating_range)
        chosen = fit_item_prior(model, data, cfg)
    share, decay, fitted = float(model.item_prior.share), float(model.item_prior.decay), model.item_prior.weights.clone()
    cfg.item_prior_refit = False
    assert not refit_item_prior(model, data.test.history, chosen["l2"], cfg)
    assert torch.equal(model.item_prior.weights, fitted)
    cfg.item_prior_refit = True
    assert refit_item_prior(model, data.test.history, chosen["l2"], cfg)
    sources, weights = ease_neighbours(taken_matrix(data.test.history, ds.n_items), chosen["l2"], cfg.item_prior_neighbors, cfg.item_prior_max_items)
    np.testing.assert_array_equal(model.item_prior.sources.numpy(), sources)
    np.testing.assert_allclose(model.item_prior.weights.numpy(), weights)
    assert not torch.equal(model.item_prior.weights, fitted)  # the validation items changed it
    assert (float(model.item_prior.share), float(model.item_prior.decay)) == (share, decay)


def test_a_run_scores_validation_with_the_prior_of_the_training_histories_and_test_with_the_refit(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1)
    cfg.protocols, cfg.tasks = ["B"], ["next_item"]
    run(cfg, tmp_path / "run", progress=False, log=lambda _: None, baselines=False)
    metrics = json.loads((tmp_path / "run" / "progress" / "seed0.json").read_text())["metrics"]
    assert metrics["item_prior.B.refit"] == 1.0 and metrics["item_prior.B.l2"] > 0
    data = prepare(load_configured_dataset(cfg), "B", 0, 4.0, 10, False)
    model = load_model(seed_model_folder(tmp_path / "run", "B", 0))
    saved = {side: load_predictions(tmp_path / "run", "B", 0, side)["next_item"] for side in ("valid", "test")}
    with torch_threads(1):  # the saved model carries the refitted prior: it reproduces test
        np.testing.assert_allclose(score_users(model, data.test.history, data.test.next_users), saved["test"], atol=1e-5)
        assert not np.allclose(score_users(model, data.valid.history, data.valid.next_users), saved["valid"], atol=1e-5)
        m, n = cfg.model, model.spec.n_items
        sources, weights = ease_neighbours(taken_matrix(data.train, n), metrics["item_prior.B.l2"], m.item_prior_neighbors, m.item_prior_max_items)
        model.attach_item_prior(sources, weights, metrics["item_prior.B.share"], metrics["item_prior.B.decay"])
        if metrics["item_prior.B.transition_share"] > 0:  # the transition prior was refitted too
            l2, decay = metrics["item_prior.B.transition_l2"], metrics["item_prior.B.transition_decay"]
            kept = transition_neighbours(data.train, n, l2, decay, m.item_prior_neighbors, m.item_prior_max_items)
            model.attach_item_prior(*kept, metrics["item_prior.B.transition_share"], decay, part="transition_prior")
        np.testing.assert_allclose(score_users(model, data.valid.history, data.valid.next_users), saved["valid"], atol=1e-5)


def test_history_items_count_decay_per_step_back_at_their_latest_position() -> None:
    prior = ItemPrior(4, 1)  # each item's only source is itself, weight 1: the score is its count
    prior.set(np.arange(4).reshape(4, 1), np.ones((4, 1)), share=0.5, decay=0.5)
    items = torch.tensor([[0, 1, 2, 1], [3, 1, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])  # row 2 right-padded
    expected = torch.tensor([[0.125, 1.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.5]])
    torch.testing.assert_close(prior.history_scores(items, mask), expected)
    prior.set(np.arange(4).reshape(4, 1), np.ones((4, 1)), share=0.5, decay=1.0)  # as a set
    torch.testing.assert_close(prior.history_scores(items, mask), (expected > 0).float())


def test_a_pickled_prior_leaves_its_cached_sparse_map_behind_and_rebuilds_the_same() -> None:
    """A model trained in a worker process comes back pickled: without the CSR cache, which
    torch warns about when it crosses processes."""
    import pickle

    prior = ItemPrior(6, 2)
    prior.set(np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]]), np.arange(12.0).reshape(6, 2), 0.3)
    built = prior.matrix().to_dense()
    copy = pickle.loads(pickle.dumps(prior))
    assert prior._matrix is not None and copy._matrix is None
    assert torch.equal(copy.matrix().to_dense(), built)


def test_fewer_users_choose_on_a_large_catalogue_but_never_fewer_than_the_floor() -> None:
    assert choice_users(943, 1_682) == 943  # MovieLens-100K: every validation user
    assert choice_users(6_040, 3_706) == 5_000  # MovieLens-1M: the cap, as before the budget
    assert choice_users(15_000, 12_000) == 20_000_000 // 12_000  # the cell budget
    assert choice_users(50_000, 1_000_000) == 1_000  # the floor
    assert choice_users(300, 1_000_000) == 300


def test_a_sample_of_the_validation_users_chooses_where_the_budget_is_small(untrained, monkeypatch) -> None:
    ds, data, model = untrained
    scored: list[int] = []
    real = item_prior_fit.score_users
    monkeypatch.setattr(item_prior_fit, "score_users", lambda m, h, users: scored.append(len(users)) or real(m, h, users))
    monkeypatch.setattr(item_prior_fit, "MIN_CHOICE_USERS", 10)
    monkeypatch.setattr(item_prior_fit, "CHOICE_CELLS", 10 * ds.n_items)
    with torch_threads(1):
        chosen = fit_item_prior(model, data, tiny_config().model)
    assert len(data.valid.next_users) > 10 and scored == [10]
    assert chosen["valid_ndcg"] >= chosen["valid_ndcg_alone"]


def test_a_blend_ranked_in_parts_scores_what_the_whole_blend_scores(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    users, items = 23, 40
    own, ease, transitions = (torch.randn(users, items, generator=g) for _ in range(3))
    targets = np.random.default_rng(0).integers(0, items, users)
    own[np.arange(users), targets] += 2.0  # targets near the top: an NDCG far from 0
    seen = sp.random(users, items, density=0.2, format="csr", random_state=1)
    parts = [(ease, 0.3), (transitions, 0.1)]
    whole = item_prior_fit.ndcg_at(item_prior_fit.blend_standardised(own, parts).numpy(), targets, seen)
    assert whole > 0.3
    for cells in (items, 3 * items, 5 * items - 1, 10_000):  # one user a part, a few, the last part short, all at once
        monkeypatch.setattr(item_prior_fit, "RANK_CELLS", cells)
        assert item_prior_fit.blend_ndcg(own, parts, targets, seen) == whole
