"""Batch recommendations (``RecommenderBase.recommend_many``): the same rule as ``recommend``
for every user, across batch boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polyrec.popularity_penalty import penalised, popularity_scores
from polyrec.recommender_base import RecommenderBase
from polyrec.top_k import top_indices, top_k_allowed


class FixedScores(RecommenderBase):
    """A run whose next-item scores are a fixed table (user × item)."""

    def __init__(self, scores: np.ndarray, seen: dict[int, list[int]]):
        n_users, n_items = scores.shape
        items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)], "text": [f"item {k}" for k in range(n_items)]})
        users = pd.DataFrame({"user_id": [f"u{k}" for k in range(n_users)]})
        pairs = [(u, i) for u, taken in seen.items() for i in taken]
        inter = pd.DataFrame({"user": [u for u, _ in pairs], "item": [i for _, i in pairs]}, dtype=np.int64)
        super().__init__(items, users, inter)
        self.scores = scores
        self.calls: list[int] = []

    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        self.calls.append(len(users))
        if np.array_equal(users, np.arange(users[0], users[0] + len(users))):
            return self.scores[users[0] : users[0] + len(users)]  # a view of the table: not to be written into
        return self.scores[users]


def test_top_indices_breaks_ties_in_item_order_and_never_shows_excluded_items() -> None:
    scores = np.array([0.5, 2.0, 0.5, 1.0, 0.5, -np.inf])
    assert top_indices(scores, 3).tolist() == [1, 3, 0]
    assert top_indices(scores, 5).tolist() == [1, 3, 0, 2, 4]
    assert top_indices(scores, 10).tolist() == [1, 3, 0, 2, 4]  # never padded with the excluded one
    assert top_indices(scores, 0).tolist() == []
    assert top_indices(np.array([np.nan, 1.0, np.nan, 0.5]), 2).tolist() == [1, 3]  # NaN never shown


def test_top_k_allowed_filters_and_breaks_ties_in_item_order() -> None:
    scores = np.array([0.5, 2.0, 0.5, 1.0, 0.5, -1.0])
    assert top_k_allowed(scores, 3)[0].tolist() == [1, 3, 0]
    assert top_k_allowed(scores, 3, exclude=np.array([1]))[0].tolist() == [3, 0, 2]
    allowed = np.array([True, False, False, False, True, True])
    assert top_k_allowed(scores, 5, allowed=allowed)[0].tolist() == [0, 4, 5]  # fewer pass: never padded


def test_recommend_many_is_recommend_for_every_user_across_batches() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(7, 9)).astype(np.float32)  # many ties
    seen = {0: [1, 2], 3: [0, 4, 5, 6, 7, 8], 5: []}
    run = FixedScores(scores, seen)
    table = scores.copy()
    many = run.recommend_many(k=4, batch_users=3)
    assert run.calls == [3, 3, 1]
    np.testing.assert_array_equal(run.scores, table)  # the seen items were masked in a copy
    for u in range(7):
        rows = many[many["user_id"] == f"u{u}"]
        alone = run.recommend(f"u{u}", k=4)
        assert rows["item_id"].tolist() == alone["item_id"].tolist(), u
        assert rows["score"].tolist() == alone["score"].tolist()
        assert rows["rank"].tolist() == list(range(1, len(alone) + 1))
    assert len(many[many["user_id"] == "u3"]) == 3  # six of nine seen: three left, not padded
    chosen = run.recommend_many(["u5", "u0"], k=2, exclude_seen=False)
    assert chosen["user_id"].tolist() == ["u5", "u5", "u0", "u0"]
    assert chosen["item_id"].tolist()[2:] == run.recommend("u0", k=2, exclude_seen=False)["item_id"].tolist()


def test_recommend_many_names_an_unknown_user_and_a_bad_k() -> None:
    run = FixedScores(np.zeros((2, 3), np.float32), {})
    with pytest.raises(KeyError, match="unknown user 'nobody'"):
        run.recommend_many(["u0", "nobody"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        run.recommend_many(k=0)


def test_popularity_penalty_re_ranks_towards_less_taken_items() -> None:
    # Items 0-3 taken by 4, 3, 2 and 1 of the users; item 4 by none.
    seen = {0: [0, 1, 2, 3], 1: [0, 1, 2], 2: [0, 1], 3: [0]}
    scores = np.tile(np.array([3.0, 2.0, 1.0, 0.5, 0.0], dtype=np.float32), (5, 1))
    run = FixedScores(scores, seen)
    popularity = popularity_scores(np.array([4, 3, 2, 1, 0]))
    assert run.item_popularity() == pytest.approx(popularity)
    assert np.all(np.diff(popularity) < 0)
    assert run.recommend("u4", k=5)["item_id"].tolist() == ["i0", "i1", "i2", "i3", "i4"]  # β = 0: the model's order
    strong = run.recommend("u4", k=5, popularity_penalty=10.0)
    assert strong["item_id"].tolist() == ["i4", "i3", "i2", "i1", "i0"]  # the penalty outweighs the scores
    row = scores[4].astype(np.float64)
    expected = (row - row.mean()) / row.std(ddof=1) - 0.5 * popularity
    mild = run.recommend("u4", k=5, popularity_penalty=0.5)
    assert mild["score"].to_numpy() == pytest.approx(np.sort(expected)[::-1])
    many = run.recommend_many(k=3, popularity_penalty=0.5, batch_users=2)
    for u in range(5):
        alone = run.recommend(f"u{u}", k=3, popularity_penalty=0.5)
        assert many[many["user_id"] == f"u{u}"]["item_id"].tolist() == alone["item_id"].tolist()
    with pytest.raises(ValueError, match="at least 0"):
        penalised(scores, popularity, -1.0)


def test_popularity_penalty_keeps_excluded_items_out_of_a_rows_spread() -> None:
    popularity = np.array([1.0, 0.0, -1.0])
    rows = np.array([[2.0, 1.0, -np.inf]])
    out = penalised(rows, popularity, 0.5)
    finite = np.array([2.0, 1.0])
    expected = (finite - finite.mean()) / finite.std(ddof=1) - 0.5 * popularity[:2]
    assert out[0, :2] == pytest.approx(expected) and out[0, 2] == -np.inf
    assert penalised(rows, popularity, 0.0) is rows
