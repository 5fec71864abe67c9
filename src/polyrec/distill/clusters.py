"""The cluster objective's targets: K-means on the teacher's user representations.

A user's representation is the teacher's shared encoder state averaged over the user's
training history (no label is read). K is chosen on held-out users: K-means is fitted on
the other users for each candidate K, and the K whose clusters separate the held-out users
best (silhouette, cosine geometry) wins; the final clustering is then fitted on all users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from ..models.polyrec import PolyRecModel
from ..train.sequences import Histories, collate

HELD_OUT_SHARE = 0.2  # users kept out of the K-means fit to choose K on
MAX_SILHOUETTE_USERS = 5000  # silhouette is quadratic in users: a seeded sample above this


@dataclass
class UserClusters:
    k: int
    labels: np.ndarray  # (n_users,) cluster of each user; −1 for users without a history
    silhouette: dict[int, float]  # candidate K → held-out silhouette
    weights: np.ndarray  # (n_users,) 1 / (K · size of the user's cluster) · users: mean 1; 0 without a cluster


@torch.no_grad()
def user_representations(model: PolyRecModel, history: Histories, batch_users: int = 128) -> np.ndarray:
    """(n_users, d) mean encoder state over each user's history, L2-normalised; 0 without one."""
    model.eval()
    out = np.zeros((history.n_users, model.spec.config.dim), dtype=np.float32)
    users = np.flatnonzero(history.lengths() > 0)
    for s in range(0, len(users), batch_users):
        u = users[s : s + batch_users]
        enc = model.encode(collate(history, u, model.spec.config.max_history))
        m = enc.mask.unsqueeze(-1).float()
        out[u] = ((enc.states * m).sum(1) / m.sum(1).clamp(min=1.0)).numpy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)


def choose_clusters(reps: np.ndarray, has_history: np.ndarray, candidates: list[int], seed: int) -> UserClusters:
    """Cluster the users with a history; K from ``candidates`` chosen on held-out users."""
    users = np.flatnonzero(has_history)
    rng = np.random.default_rng(seed)
    held = rng.random(len(users)) < HELD_OUT_SHARE
    fit_users, held_users = users[~held], users[held]
    usable = sorted({k for k in candidates if 2 <= k <= len(fit_users) // 2})
    if not usable or len(held_users) < 3:
        raise ValueError(
            f"distill.clusters: {len(users)} users with a history are too few for K-means with K in {candidates}; "
            "give smaller K values (at most a third of the users), or drop the part with distill.weights: {cluster: 0}"
        )
    if len(held_users) > MAX_SILHOUETTE_USERS:
        held_users = rng.choice(held_users, MAX_SILHOUETTE_USERS, replace=False)
    scores: dict[int, float] = {}
    for k in usable:
        predicted = _kmeans(reps[fit_users], k, seed).predict(reps[held_users])
        scores[k] = float(silhouette_score(reps[held_users], predicted, metric="cosine")) if len(set(predicted)) > 1 else -1.0
    k = max(scores, key=lambda c: (scores[c], -c))  # ties: the smaller K
    labels = np.full(len(reps), -1, dtype=np.int64)
    labels[users] = _kmeans(reps[users], k, seed).labels_
    sizes = np.bincount(labels[users], minlength=k).astype(np.float64)
    weights = np.zeros(len(reps))
    weights[users] = len(users) / (np.count_nonzero(sizes) * sizes[labels[users]])
    return UserClusters(k, labels, scores, weights)
