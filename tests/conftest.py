"""Shared fixtures: tests train tiny models on two shared cores, one torch thread each."""

from __future__ import annotations

import pytest
from synthetic import synthetic_dataset, torch_threads

from polyrec.train.protocol_data import prepare


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def ds():
    """The synthetic dataset of ``synthetic.py`` with its defaults."""
    return synthetic_dataset()


@pytest.fixture(scope="module")
def data_a(ds):
    """``ds`` split under protocol A, seed 0 (ctr threshold 4, 10 rating levels, profiles)."""
    return prepare(ds, "A", 0, 4.0, 10, True)
