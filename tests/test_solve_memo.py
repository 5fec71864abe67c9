"""Closed-form solves kept in memory by their inputs: a kept answer must be exactly what
solving again gives, never shared between callers, and never given for other inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from polyrec.train import solve_memo
from polyrec.train.join_fit import _solve_user_row_classifier, user_row_classifier
from polyrec.train.item_item_solves import _solve_ease, ease_neighbours


@pytest.fixture(autouse=True)
def empty_memo():
    solve_memo.forget()
    yield
    solve_memo.forget()


def test_a_kept_answer_is_given_for_equal_inputs_only_and_each_caller_gets_a_copy() -> None:
    calls = []

    def solve(x: np.ndarray):
        calls.append(1)
        return (x * 2, None)

    x = np.arange(6.0)
    first = solve_memo.remembered("double", (x, 1.0), lambda: solve(x))
    first[0][0] = 99.0  # the caller's copy
    again = solve_memo.remembered("double", (x.copy(), 1.0), lambda: solve(x))
    assert len(calls) == 1 and again[1] is None
    np.testing.assert_array_equal(again[0], x * 2)
    for other in [("double", (x, 2.0)), ("double", (x.astype(np.float32), 1.0)), ("triple", (x, 1.0))]:
        solve_memo.remembered(*other, lambda: solve(x))
    assert len(calls) == 4


def test_the_oldest_answers_go_first(monkeypatch) -> None:
    monkeypatch.setattr(solve_memo, "MAX_KEPT", 2)
    calls = []
    for k in (1, 2, 3, 1):
        solve_memo.remembered("k", (k,), lambda: calls.append(k) or (np.zeros(1),))
    assert calls == [1, 2, 3, 1]


def test_ease_and_the_profile_classifier_give_what_solving_gives() -> None:
    rng = np.random.default_rng(0)
    taken = sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float64))
    for _ in range(2):  # solved, then kept
        for got, want in zip(ease_neighbours(taken, 10.0, 4, 8), _solve_ease(taken, 10.0, 4, 8)):
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(ease_neighbours(taken, 100.0, 4, 8)[1], ease_neighbours(taken, 10.0, 4, 8)[1])
    x, labels = rng.normal(size=(40, 5)), rng.integers(-1, 3, size=40)
    for _ in range(2):
        for got, want in zip(user_row_classifier(x, labels, 4), _solve_user_row_classifier(x, labels, 4)):
            np.testing.assert_array_equal(got, want)
    assert user_row_classifier(x, np.where(labels >= 0, 1, -1), 2) is None  # one class known: nothing to fit
