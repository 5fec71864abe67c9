"""Shared fixtures: tests train tiny models on two shared cores, one torch thread each."""

from __future__ import annotations

import pytest

from synthetic import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield
