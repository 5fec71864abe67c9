"""The item prior joined to next-item scores: its EASE weights, its choice on validation, and
a saved model that keeps it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from polyrec.eval.predict import score_users
from polyrec.models.io import load_model, save_model
from polyrec.models.item_prior import ItemPrior
from polyrec.train.finetune import build_model
from polyrec.train.item_prior_fit import ease_neighbours, fit_item_prior
from polyrec.train.protocol_data import prepare
from synthetic import synthetic_dataset, tiny_config, torch_threads


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


def test_history_items_count_decay_per_step_back_at_their_latest_position() -> None:
    prior = ItemPrior(4, 1)  # each item's only source is itself, weight 1: the score is its count
    prior.set(np.arange(4).reshape(4, 1), np.ones((4, 1)), share=0.5, decay=0.5)
    items = torch.tensor([[0, 1, 2, 1], [3, 1, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])  # row 2 right-padded
    expected = torch.tensor([[0.125, 1.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.5]])
    torch.testing.assert_close(prior.history_scores(items, mask), expected)
    prior.set(np.arange(4).reshape(4, 1), np.ones((4, 1)), share=0.5, decay=1.0)  # as a set
    torch.testing.assert_close(prior.history_scores(items, mask), (expected > 0).float())
