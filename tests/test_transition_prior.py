"""The transition prior: its rows are the decayed histories before each position, its solve is
ridge regression onto the item taken there, it joins beside EASE only where validation gains,
and models saved before it load without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import strip_saved_field, tiny_config, torch_threads

from polyrec.data.tables import Dataset
from polyrec.models.io import load_model, save_model
from polyrec.models.item_prior import blend_parts, blend_scores
from polyrec.train.finetune import build_model
from polyrec.train.item_item_solves import TRANSITION_WINDOW, count_positions, transition_neighbours, transition_rows
from polyrec.train.item_prior_fit import fit_item_prior, refit_item_prior
from polyrec.train.protocol_data import prepare
from polyrec.train.sequences import Histories


def _histories(*seqs: list[int]) -> Histories:
    items = [np.array(s, dtype=np.int64) for s in seqs]
    nan = [np.full(len(s), np.nan) for s in seqs]
    return Histories(items, nan, nan, [np.zeros(len(s), dtype=np.int64) for s in seqs])


def test_each_row_is_the_decayed_history_before_a_position_and_its_target_the_item_there() -> None:
    column = np.arange(5)
    s, targets = transition_rows(np.array([4, 1, 2]), np.array([0, 1, 2, 3, 4, 2, 0]), column, decay=0.5)
    # User 0 takes 0,1,2,3: three positions; user 1's one item has none; user 2 takes 2 then 0.
    np.testing.assert_array_equal(targets, [1, 2, 3, 0])
    expected = np.array([
        [1.0, 0.0, 0.0, 0.0, 0.0],    # before item 1: item 0, one step back
        [0.5, 1.0, 0.0, 0.0, 0.0],    # before item 2
        [0.25, 0.5, 1.0, 0.0, 0.0],   # before item 3
        [0.0, 0.0, 1.0, 0.0, 0.0],    # user 2, before item 0
    ])
    np.testing.assert_allclose(s.toarray(), expected)


def test_items_further_back_than_the_window_count_nothing() -> None:
    n = TRANSITION_WINDOW + 3
    s, _ = transition_rows(np.array([n]), np.arange(n), np.arange(n), decay=1.0)
    assert s.getnnz(axis=1).max() == TRANSITION_WINDOW


def test_a_sample_of_positions_gives_the_rows_the_whole_s_has_there() -> None:
    # Repeats within a window (summed), uncovered items (-1) and one-item users, as real logs have.
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 70, size=40)
    items = rng.integers(0, 9, size=int(lengths.sum()))
    column = np.array([0, 1, 2, -1, 3, 4, 5, -1, 6])
    whole, whole_targets = transition_rows(lengths, items, column, decay=0.9)
    k = whole.shape[0] // 3
    pick = np.sort(np.random.default_rng(0).choice(whole.shape[0], k, replace=False))  # the sample drawn before
    s, targets = transition_rows(lengths, items, column, decay=0.9, sample=k)
    expected = whole[pick]
    assert s.shape == expected.shape and s.has_canonical_format and expected.has_canonical_format
    for got, want in ((s.indptr, expected.indptr), (s.indices, expected.indices), (s.data, expected.data)):
        np.testing.assert_array_equal(got, want)  # the same rows to the bit: the solve cannot move
    np.testing.assert_array_equal(targets, whole_targets[pick])
    same, _ = transition_rows(lengths, items, column, decay=0.9, sample=whole.shape[0])  # nothing to drop
    assert (same != whole).nnz == 0
    # The count the sample is drawn from, at the window's edge: a covered item exactly
    # TRANSITION_WINDOW back makes a row, one further back does not (item 3 is not covered).
    for gap, rows in ((TRANSITION_WINDOW - 1, 1), (TRANSITION_WINDOW, 0)):
        seq = np.concatenate([[0], np.full(gap, 3), [1]])
        edge, _ = transition_rows(np.array([len(seq)]), seq, column, decay=0.9)
        assert count_positions(np.array([len(seq)]), seq, column) == edge.shape[0] == rows


def test_the_solve_is_ridge_regression_from_the_rows_to_the_next_item() -> None:
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 6, size=rng.integers(2, 9))) for _ in range(30)]
    hist = _histories(*seqs)
    sources, weights = transition_neighbours(hist, 6, l2=3.0, decay=0.8, neighbors=6, max_items=100)
    lengths, items = hist.lengths(), np.concatenate(hist.items)
    s, targets = transition_rows(lengths, items, np.arange(6), 0.8)
    x, y = s.toarray(), np.eye(6)[targets]
    b = np.linalg.solve(x.T @ x + 3.0 * np.eye(6), x.T @ y)  # row: source, column: target
    dense = np.zeros((6, 6))
    for target in range(6):
        dense[sources[target], target] = weights[target]
    np.testing.assert_allclose(dense, b, atol=1e-5)


def test_the_blend_weighs_each_standardised_part_by_its_share() -> None:
    torch.manual_seed(0)
    own, a, b = torch.randn(3, 7) * 5 + 2, torch.randn(3, 7), torch.randn(3, 7) * 0.1

    def z(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean(-1, keepdim=True)) / t.std(-1, keepdim=True)

    torch.testing.assert_close(blend_parts(own, [(a, 0.2), (b, 0.1)]), 0.7 * z(own) + 0.2 * z(a) + 0.1 * z(b))
    torch.testing.assert_close(blend_scores(own, a, 0.3), 0.7 * z(own) + 0.3 * z(a))


def walks(n_users: int = 80, n_items: int = 30, length: int = 6) -> Dataset:
    """Every user walks the catalogue in one cycle (item i, then i + 1 mod n) from a random
    start: which item comes next is all in the order, none in which items go together."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(n_users):
        start = rng.integers(n_items)
        users += [u] * length
        items += [(start + k) % n_items for k in range(length)]
    interactions = pd.DataFrame({"user": users, "item": items, "timestamp": np.arange(len(users), dtype=float)})
    return Dataset(
        "walks",
        pd.DataFrame({"user_id": [str(u) for u in range(n_users)]}),
        pd.DataFrame({"item_id": [str(i) for i in range(n_items)], "text": [f"item {i}" for i in range(n_items)]}),
        interactions,
    )


@pytest.fixture(scope="module")
def walks_data():
    ds = walks()
    return ds, prepare(ds, "B", 0, 4.0, 10, False)


@pytest.fixture(scope="module")
def fitted(walks_data):
    ds, data = walks_data
    cfg = tiny_config().model
    torch.manual_seed(0)
    with torch_threads(1):  # untrained: the model's own scores are noise
        model = build_model(data, ["next_item"], ds.n_items, None, cfg, None)
        chosen = fit_item_prior(model, data, cfg)
    return ds, data, cfg, model, chosen


def test_where_the_order_says_what_comes_next_it_is_kept(fitted) -> None:
    *_, model, chosen = fitted
    assert model.transition_prior is not None and chosen["transition_share"] > 0
    assert chosen["valid_ndcg"] > 0.9 > chosen["valid_ndcg_alone"]  # the walk's next step ranks first
    cfg = tiny_config().model
    cfg.transition_prior = False
    ds, data = fitted[0], fitted[1]
    with torch_threads(1):
        ease_only = fit_item_prior(build_model(data, ["next_item"], ds.n_items, None, cfg, None), data, cfg)
    assert chosen["valid_ndcg"] > ease_only["valid_ndcg"]


def test_it_is_refitted_on_the_validation_items_with_its_share_and_decay(fitted) -> None:
    ds, data, cfg, model, chosen = fitted
    prior = model.transition_prior
    assert float(prior.share) == pytest.approx(chosen["transition_share"]) and chosen["transition_share"] > 0
    before = prior.weights.clone()
    assert refit_item_prior(model, data.test.history, chosen["l2"], cfg, chosen["transition_l2"])
    refitted = model.transition_prior
    kept = transition_neighbours(data.test.history, ds.n_items, chosen["transition_l2"], chosen["transition_decay"],
                                 cfg.item_prior_neighbors, cfg.item_prior_max_items)
    np.testing.assert_allclose(refitted.weights.numpy(), kept[1], rtol=1e-5, atol=1e-7)
    assert not torch.equal(refitted.weights, before)
    assert float(refitted.share) == pytest.approx(chosen["transition_share"])


def test_switched_off_only_ease_is_searched(walks_data) -> None:
    ds, data = walks_data
    cfg = tiny_config().model
    cfg.transition_prior = False
    with torch_threads(1):
        model = build_model(data, ["next_item"], ds.n_items, None, cfg, None)
        chosen = fit_item_prior(model, data, cfg)
    assert model.transition_prior is None and "transition_share" not in chosen


def test_a_model_saved_with_it_loads_with_it_and_one_saved_before_it_without(walks_data, tmp_path) -> None:
    ds, data = walks_data
    cfg = tiny_config().model
    model = build_model(data, ["next_item"], ds.n_items, None, cfg, None)
    kept = transition_neighbours(data.train, ds.n_items, 10.0, 0.9, 5, 100)
    model.attach_item_prior(*kept, 0.2, 0.9, part="transition_prior")
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.transition_prior is not None and float(loaded.transition_prior.share) == pytest.approx(0.2)
    torch.testing.assert_close(loaded.transition_prior.weights, model.transition_prior.weights)
    strip_saved_field(tmp_path, "transition_prior_neighbors", "transition_prior.")
    assert load_model(tmp_path).transition_prior is None
