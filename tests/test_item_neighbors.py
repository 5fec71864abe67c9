"""The kNN views: their residuals against the kNNBaseline formula counted by hand (neighbours
by ratings or by text), zero where they have nothing to read, joined to the ctr logit at the
validation weight, saved and reloaded, and models saved before them loading without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import assert_joined_at_its_weight, strip_saved_field, tiny_config

from polyrec.config import TASKS, ModelConfig
from polyrec.models.io import load_model, save_model
from polyrec.models.item_neighbors import SHRINK, ItemNeighbors, baseline
from polyrec.train.finetune import build_model, finetune


def _baseline(u, i, r, n_users: int, n_items: int) -> np.ndarray:
    """``μ + b_u + b_i`` of each rating."""
    mean, b_user, b_item = baseline(u, i, r, n_users, n_items)
    return mean + b_user[u] + b_item[i]


def _ratings(seed: int = 0, users: int = 30, items: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    taken = rng.random((users, items)) < 0.5
    u, i = np.nonzero(taken)
    return u, i, rng.integers(1, 6, len(u)).astype(np.float64)


def _by_hand(u, i, r, n_users, n_items, k, user, item, vectors=None) -> float:
    """kNNBaseline's neighbourhood term for one pair, with dense matrices and every item kept;
    with ``vectors``, the items' similarities are their cosines instead."""
    residual = np.full((n_users, n_items), np.nan)
    residual[u, i] = r - _baseline(u, i, r, n_users, n_items)
    sims = []
    for j in range(n_items):
        both = ~np.isnan(residual[:, item]) & ~np.isnan(residual[:, j])
        a, b = residual[both, item], residual[both, j]
        spread = np.sqrt((a**2).sum() * (b**2).sum())
        if vectors is not None:
            x, y = vectors[item], vectors[j]
            sims.append(0.0 if j == item else x @ y / np.linalg.norm(x) / np.linalg.norm(y))
        else:
            sims.append(0.0 if j == item or spread == 0 else (a @ b) / spread * both.sum() / (both.sum() + SHRINK))
    sims = np.array(sims)
    rated = [j for j in np.argsort(-sims, kind="stable") if not np.isnan(residual[user, j]) and sims[j] > 0][:k]
    weights = sims[rated]
    return float(weights @ residual[user, rated] / weights.sum()) if len(rated) else 0.0


def test_the_baseline_is_the_mean_plus_shrunk_user_and_item_biases() -> None:
    u, i, r = _ratings()
    assert np.allclose(_baseline(u, i, np.full(len(u), 3.0), 30, 12), 3.0)
    generous = np.where(u == 0, 5.0, r)  # user 0 rates everything 5
    base = _baseline(u, i, generous, 30, 12)
    assert base[u == 0].min() > generous.mean() and base[u == 0].max() < 5.0  # shrunk towards the mean


@pytest.mark.parametrize("k", [1, 3, 50])
def test_its_residual_is_the_knn_baseline_term(k: int) -> None:
    u, i, r = _ratings()
    view = ItemNeighbors(30, 12, len(u), k, kept=11)
    view.set_ratings(u, i, r)
    users, items = np.repeat(np.arange(30), 12), np.tile(np.arange(12), 30)
    with torch.no_grad():
        got = view(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    expected = [_by_hand(u, i, r, 30, 12, k, a, b) for a, b in zip(users, items)]
    assert np.allclose(got, expected, atol=1e-5)
    assert np.abs(got).max() > 0.1  # the check reads something


def test_text_neighbours_are_the_items_nearest_in_text() -> None:
    u, i, r = _ratings(1)
    vectors = np.random.default_rng(2).normal(size=(12, 4))
    view = ItemNeighbors(30, 12, len(u), 3, kept=11)
    view.set_ratings(u, i, r, item_vectors=vectors)
    users, items = np.repeat(np.arange(30), 12), np.tile(np.arange(12), 30)
    with torch.no_grad():
        got = view(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    expected = [_by_hand(u, i, r, 30, 12, 3, a, b, vectors) for a, b in zip(users, items)]
    assert np.allclose(got, expected, atol=1e-5)
    rating_view = ItemNeighbors(30, 12, len(u), 3, kept=11)
    rating_view.set_ratings(u, i, r)
    assert not torch.equal(view.neighbors, rating_view.neighbors)


def test_it_reads_nothing_for_unknown_users_or_users_without_neighbours() -> None:
    u, i, r = _ratings()
    keep = u != 4  # user 4 rated nothing on the training side
    view = ItemNeighbors(30, 12, int(keep.sum()), 5, kept=11)
    view.set_ratings(u[keep], i[keep], r[keep])
    with torch.no_grad():
        out = view(torch.tensor([4, 30, 31]), torch.tensor([0, 1, 2]))
    assert torch.equal(out, torch.zeros(3))


def _model(ds, data_a, neighbors: int):
    torch.manual_seed(0)
    cfg = tiny_config().model
    cfg.item_neighbors = neighbors
    return build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)


def test_finetune_joins_it_to_the_ctr_logit_at_the_validation_weight(ds, data_a, tmp_path) -> None:
    without, model = _model(ds, data_a, 0), _model(ds, data_a, 5)
    assert without.item_neighbors is None and "item_neighbors" in model.ctr_views()
    assert not list(model.item_neighbors.parameters())  # counted, not trained
    theirs = model.state_dict()
    assert all(torch.equal(t, theirs[name]) for name, t in without.state_dict().items())
    result = finetune(model, data_a, tiny_config(epochs=2).train, progress=False)
    view = model.item_neighbors
    weight = float(view.weight)
    assert weight != 0.0 and result.autoencoder["ctr_item_neighbors_weight"] == pytest.approx(weight)
    users, items = torch.arange(6), torch.arange(6)
    heads = {"ctr": torch.zeros(6)}
    joined = assert_joined_at_its_weight(model, view, users, items, heads)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    with torch.no_grad():
        assert torch.allclose(loaded.join_autoencoder(users, items, heads)["ctr"], joined, atol=1e-6)
    strip_saved_field(tmp_path, "item_neighbors", "item_neighbors.")
    assert load_model(tmp_path).item_neighbors is None


def test_the_text_view_is_built_with_text_vectors_and_joins_by_name(ds, data_a) -> None:
    cfg = tiny_config().model
    vectors = np.random.default_rng(0).normal(size=(ds.n_items, 6)).astype(np.float32)
    model = build_model(data_a, list(TASKS), ds.n_items, vectors, cfg, ds.rating_range)
    assert model.text_neighbors is not None and set(model.ctr_views()) >= {"item_neighbors", "text_neighbors"}
    assert not torch.equal(model.text_neighbors.neighbors, model.item_neighbors.neighbors)
    assert _model(ds, data_a, 5).text_neighbors is None  # no text vectors, no text view


@pytest.mark.parametrize("name", ["item_neighbors", "item_neighbors_kept", "text_neighbors"])
def test_a_negative_count_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=f"'model.{name}'"):
        ModelConfig(**{name: -1})


def test_a_new_user_reads_the_view_as_a_trained_user_with_the_same_ratings_would() -> None:
    """A new user's residuals come from the kept baseline (the user's bias by its last step,
    the item biases held): a trained user's ratings given as a new user's history give back
    that user's values, and what they did not rate reads nothing."""
    u, i, r = _ratings()
    view = ItemNeighbors(30, 12, len(u), 3, kept=11)
    view.set_ratings(u, i, r)
    for user in (0, 7):
        mine = u == user
        history = torch.from_numpy(i[mine])[None]
        residuals = view.new_users_residuals(history, torch.from_numpy(r[mine]).float()[None])
        targets = torch.arange(12)[None]
        with torch.no_grad():
            trained = view(torch.full((12,), user), torch.arange(12))
        torch.testing.assert_close(view.folded(residuals, targets)[0], trained, atol=1e-5, rtol=1e-5)
    nothing = view.new_users_residuals(torch.tensor([[3, 13]]), torch.tensor([[float("nan"), 4.0]]))  # 13: beyond
    assert torch.isnan(nothing).all() and (view.folded(nothing, torch.arange(12)[None]) == 0).all()
    unkept = ItemNeighbors(30, 12, len(u), 3, kept=11)
    assert unkept.new_users_residuals(history, torch.ones(1, 1)) is None  # no baseline kept (a model saved before)


def test_a_model_saved_before_the_baseline_was_kept_loads_and_folds_nothing_in(ds, data_a, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    model = _model(ds, data_a, 5)
    save_model(model, tmp_path)
    assert bool(load_model(tmp_path).item_neighbors.baseline_kept)
    weights = load_file(str(tmp_path / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if "baseline" not in k}, str(tmp_path / "model.safetensors"))
    old = load_model(tmp_path).item_neighbors
    assert not old.baseline_kept and old.new_users_residuals(torch.tensor([[1, 2]]), torch.tensor([[4.0, 2.0]])) is None
