"""How a run's next-item ranking holds up when the histories it reads are damaged.

A deployed recommender reads histories that are shorter, noisier or differently ordered than
the ones it was tested on: events get lost, a shared account or a mis-click adds items the user
did not choose, a new user has a handful. For each seed's protocol-B model, the test users'
histories are perturbed (:data:`PERTURBATIONS`) and the whole catalogue is ranked again:

- items dropped at random;
- only the latest few kept;
- a share replaced by random catalogue items;
- the order shuffled.

The target and the items left out of the ranking (all the user took) stay as they were, so
only what the model reads changes. Each perturbation draws from its own seeded generator, so
a report is reproducible. Protocol A's rating and ctr are not perturbed here: their joins also
read each user's training ratings outside the history (the autoencoders, the kNN views), so a
damaged history would be only part of the story.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.polyrec import PolyRecModel
from ..train.protocol_data import EvalSide
from ..train.sequences import Histories
from .predict import next_item_ranks
from .ranking import ranking_metrics


@dataclass(frozen=True)
class Perturbation:
    """``kind``: "none", "drop" (each item lost with probability ``amount``, one kept at
    least), "latest" (the ``amount`` latest items kept), "noise" (a share ``amount`` of the
    items, at least one, replaced by items drawn uniformly from the catalogue, each keeping the
    replaced item's rating) or "shuffle" (the order permuted)."""

    kind: str
    amount: float = 0.0

    @property
    def name(self) -> str:
        if self.kind in ("drop", "noise"):
            return f"{self.kind} {self.amount:.0%}"
        if self.kind == "latest":
            return f"latest {int(self.amount)}"
        return self.kind

    def positions(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Which of a history's ``n`` positions survive, in the order the model reads them."""
        if self.kind == "drop":
            kept = np.flatnonzero(rng.random(n) >= self.amount)
            return kept if len(kept) else np.array([rng.integers(n)])
        if self.kind == "latest":
            return np.arange(max(n - int(self.amount), 0), n)
        if self.kind == "shuffle":
            return rng.permutation(n)
        return np.arange(n)

    def replaced(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Which of the surviving positions take a random item ("noise" only)."""
        if self.kind != "noise":
            return np.zeros(0, dtype=np.int64)
        return rng.choice(n, size=max(1, int(round(self.amount * n))), replace=False)


PERTURBATIONS = (
    Perturbation("none"),
    Perturbation("drop", 0.1), Perturbation("drop", 0.25), Perturbation("drop", 0.5),
    Perturbation("latest", 20), Perturbation("latest", 5), Perturbation("latest", 1),
    Perturbation("noise", 0.1), Perturbation("noise", 0.25),
    Perturbation("shuffle"),
)  # fmt: skip


def perturbed(history: Histories, users: np.ndarray, how: Perturbation, rng: np.random.Generator, n_items: int) -> Histories:
    """``history`` with ``users``' histories perturbed (the others as they were); ratings,
    labels and rating tokens travel with their items."""
    out = Histories(list(history.items), list(history.ratings), list(history.labels), list(history.tokens))
    for u in users:
        keep = how.positions(len(history.items[u]), rng)
        items = history.items[u][keep].copy()
        where = how.replaced(len(items), rng)
        items[where] = rng.integers(0, n_items, size=len(where))
        out.items[u] = items
        out.ratings[u], out.labels[u], out.tokens[u] = history.ratings[u][keep], history.labels[u][keep], history.tokens[u][keep]
    return out


def perturbation_rng(how: Perturbation, seed: int) -> np.random.Generator:
    """One seeded stream per (seed, perturbation): a report is the same when rerun, and adding
    a perturbation leaves the others' draws alone."""
    return np.random.default_rng([seed, *map(ord, how.name)])


def perturbed_metrics(
    model: PolyRecModel, side: EvalSide, how: Perturbation, seed: int, batch_users: int = 256
) -> dict[str, float]:
    """Ranking metrics of ``side``'s targets with the histories perturbed ``how`` (the
    ranking's exclusions from the unperturbed history)."""
    users, targets = np.asarray(side.next_users), np.asarray(side.next_items)
    history = perturbed(side.history, users, how, perturbation_rng(how, seed), model.spec.n_items)
    return ranking_metrics(next_item_ranks(model, history, users, targets, side.excluded(users), batch_users))
