"""Cold-item ranks are read from a run's kept test predictions, for the targets the split's
training side barely saw."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from synthetic import synthetic_dataset, tiny_config

from polyrec.eval.cold_items import cold_target_ranks
from polyrec.eval.prediction_store import save_predictions
from polyrec.train.protocol_data import prepare


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    ds, cfg = synthetic_dataset(), tiny_config()
    data = prepare(ds, "B", 0, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False)
    scores = np.random.default_rng(0).normal(size=(len(data.test.next_users), ds.n_items)).astype(np.float32)
    folder = tmp_path_factory.mktemp("run")
    save_predictions(folder, "B", 0, "test", {"next_item": scores})
    return folder, ds, cfg, data, scores


def test_cold_targets_and_their_ranks(scored_run):
    folder, ds, cfg, data, scores = scored_run
    counts = Counter(int(i) for items in data.train.items for i in items)
    target_counts = sorted(counts[int(t)] for t in data.test.next_items)
    middle = target_counts[len(target_counts) // 2]  # the synthetic items are all well rated
    assert 0 < sum(c <= middle for c in target_counts) < len(target_counts)
    for cold_max in (-1, target_counts[0], middle, 10**6):
        want = []
        for row, (user, target) in enumerate(zip(data.test.next_users, data.test.next_items)):
            if counts[int(target)] <= cold_max:
                seen = set(int(i) for i in data.test.history.items[user]) - {int(target)}
                candidates = [i for i in range(ds.n_items) if i not in seen]
                want.append(1 + sum(scores[row, i] > scores[row, target] for i in candidates))
        got = cold_target_ranks(folder, cfg, ds, 0, cold_max)
        assert got.tolist() == want
    assert len(cold_target_ranks(folder, cfg, ds, 0, 10**6)) == len(data.test.next_items)
    assert len(cold_target_ranks(folder, cfg, ds, 0, -1)) == 0
