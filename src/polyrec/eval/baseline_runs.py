"""The simple baselines every task is printed beside, on exactly the model's split."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..baselines.popularity import Popularity
from ..baselines.profile import MajorityClass, RatingMatrixLogReg, sparse_ratings
from ..baselines.rating import GlobalMean, UserItemBias
from ..baselines.recent import recent_then_popular
from ..run_progress import BASELINE_PREFIX
from ..train.protocol_data import ProtocolData
from ..train.sequences import Histories
from .evaluate import pair_metrics, profile_metrics
from .ranking import ranking_metrics, target_ranks


def rating_matrix(history: Histories, n_items: int) -> sp.csr_matrix:
    """(U, I) matrix of the users' history ratings (1 where the data has no rating)."""
    return sparse_ratings(*history.flat(), history.n_users, n_items)


def baseline_metrics(
    data: ProtocolData, n_items: int, tasks: list[str], rating_range: tuple[float, float] | None
) -> dict[str, float]:
    """``baseline.<name>.<protocol>.<task>.<metric>`` for the protocol's tasks."""
    out: dict[str, float] = {}
    p = data.protocol
    tr = data.train
    users, items, ratings = tr.flat()
    n_users = tr.n_users

    def put(name: str, metrics: dict[str, float]) -> None:
        out.update({f"{BASELINE_PREFIX}{name}.{k}": v for k, v in metrics.items()})

    if p == "A" and data.test.pairs is not None:
        test = data.test.pairs
        rated = ~np.isnan(ratings)
        if "rating" in tasks and rated.any():
            for name, est in (("global_mean", GlobalMean()), ("bias", UserItemBias())):
                est.fit(users[rated], items[rated], ratings[rated], n_users, n_items)
                put(name, pair_metrics(p, test.ratings, test.labels, {"rating": est.predict(test.users, test.items)}, rating_range))
        if "ctr" in tasks:
            pop = Popularity().fit(users, items, n_users, n_items)
            put("popularity", pair_metrics(p, test.ratings, test.labels, {"ctr": pop.predict(test.users, test.items)}, None))
    if p == "A" and "profile" in tasks and data.user_split is not None:
        us = data.user_split
        X = rating_matrix(tr, n_items)
        maj: dict[str, np.ndarray] = {}
        lr: dict[str, np.ndarray] = {}
        for name, codes in data.profile_true.items():
            n_classes = len(data.attribute_classes[name])
            y_tr, y_va = codes[us.train], codes[us.valid]
            keep_tr, keep_va = y_tr >= 0, y_va >= 0
            maj[name] = MajorityClass(n_classes).fit(y_tr[keep_tr]).predict_proba(len(us.test))
            model = RatingMatrixLogReg(n_classes=n_classes).fit(
                X[us.train][keep_tr], y_tr[keep_tr], X[us.valid][keep_va], y_va[keep_va]
            )
            lr[name] = model.predict_proba(X[us.test])
        put("majority", {k: v for k, v in profile_metrics(p, data, us.test, maj).items() if k.endswith("accuracy")})
        put("logreg", profile_metrics(p, data, us.test, lr))
    if p == "B" and "next_item" in tasks and data.test.next_users is not None:
        pop = Popularity().fit(users, items, n_users, n_items)
        t = data.test
        scores = pop.score_users(t.next_users)
        ranks = target_ranks(scores, t.next_items, t.excluded(t.next_users))
        put("popularity", {f"{p}.next_item.{k}": v for k, v in ranking_metrics(ranks).items()})
        if t.repeat_items:  # the history is ranked too: what repeating it alone scores
            recent = recent_then_popular([t.history.items[u] for u in t.next_users], pop.score_items())
            ranks = target_ranks(recent, t.next_items, None)
            put("recent", {f"{p}.next_item.{k}": v for k, v in ranking_metrics(ranks).items()})
    return out
