"""Why an item scores as it does for a known user: the next-item score taken apart.

With the next-item priors (the default), a score is a sum of linear parts, each exact:

    score(i) = (1 − Σ s_k) · (m_i − mean m) / std m  +  Σ_k s_k · (p_k,i − mean p_k) / std p_k

where ``m = user vector · item vectors`` is the model's part and ``p_k,i = Σ_h decay_k ** age(h)
· B_k[h, i]`` is prior k's, a sum over the items ``h`` of the user's history (means and stds
over the catalogue, per user). Each term says how far above this user's average item the
item stands by that view: the model (how well it matches the user vector learned from the
whole history), EASE's co-occurrences, the transitions. The terms sum to the score. A prior's
term is its history items' pulls ``s_k · decay_k ** age(h) · B_k[h, i] / std p_k`` less the
average pull over the catalogue, so the items with the largest pulls are what the
explanation names ("because you took …"). The model's term is one number: no exact split of
a Transformer's state by history item exists.

Without priors the score is the model's term alone (``vectors_rank_as_recommend``).

For the whole score, the model's term included, ``occlusion=True`` also asks a
counterfactual question of each item the model reads: what would the item's score be with
that one item left out of the history (everything recomputed, the model and the priors)?
The changes are exact answers to that question; unlike the parts they are not additive (two
items that say the same thing each matter less alone than together).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .models.polyrec import PolyRecModel
from .models.prior_maps import decay_weights, latest_positions
from .standardise import catalogue_spread
from .train.sequences import Histories, collate

if TYPE_CHECKING:
    from .recommender import Recommender

WITHOUT_COLUMNS = ["item_id", "text", "steps_back", "change"]


@dataclass(frozen=True)
class Explanation:
    user_id: str
    item_id: str
    item_text: str
    score: float  # the score ``recommend`` gives the item (to float rounding)
    parts: dict[str, float]  # "model" and each prior's name: each above the user's average item; they sum to ``score``
    because: pd.DataFrame  # history items: item_id, text, prior, steps_back, pull (largest first)
    # With occlusion: history items, item_id, text, steps_back, change (score − score without
    # it), largest first; empty otherwise.
    without: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=WITHOUT_COLUMNS))

    def summary(self, shorten: Callable[[str], str] = str) -> str:
        """A few lines a person can read (``shorten``: how to print an item's text)."""
        lines = [f"item {self.item_id} for user {self.user_id}: score {self.score:.3f}  {shorten(self.item_text)}"]
        lines += [f"  {name}: {value:+.3f}" for name, value in self.parts.items()]
        for row in self.because.itertuples(index=False):
            lines.append(f"  because of item {row.item_id} ({row.prior}, {row.steps_back} back): pulls {row.pull:+.3f}  {shorten(row.text)}")
        for row in self.without.itertuples(index=False):
            lines.append(f"  without item {row.item_id} ({row.steps_back} back) the score moves {-row.change:+.3f}  {shorten(row.text)}")
        return "\n".join(lines)


def occlusion_changes(model: PolyRecModel, hist: Histories, user: int, item: int, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(positions, changes): for each position of ``user``'s history that the model reads (its
    latest ``max_history``), ``item``'s score less its score with that one position left out,
    the rest read as the model reads any history (one older item then slides into the window)."""
    keep = model.spec.config.max_history
    n = len(hist.items[user])
    positions = np.arange(max(0, n - keep), n)
    whole = [hist.items[user]], [hist.ratings[user]], [hist.labels[user]], [hist.tokens[user]]
    variants = Histories(*([np.delete(arrays[0], j) for j in positions] for arrays in whole))
    model.eval()
    with torch.no_grad():
        base = float(model.score_catalogue(collate(Histories(*whole), np.array([0]), keep))[0, item])
        left_out = []
        for s in range(0, len(positions), batch):
            b = collate(variants, np.arange(s, min(s + batch, len(positions))), keep)
            b = replace(b, users=torch.full_like(b.users, user))  # the user's own text, where the run reads users' text
            left_out.append(model.score_catalogue(b)[:, item].numpy())
    return positions, (base - np.concatenate(left_out)) if left_out else np.zeros(0)


def explain_score(rec: Recommender, user_id: str, item_id: str, top: int = 5, occlusion: bool = False) -> Explanation:
    """The parts of ``item_id``'s next-item score for the known user ``user_id``, and the
    ``top`` history items that add most to its prior parts; with ``occlusion``, also the
    ``top`` history items whose absence would move the score most (:func:`occlusion_changes`)."""
    user, item = rec.user_index(user_id), rec.item_index(item_id)
    text = str(rec.items_["text"].iloc[item])
    p, model = rec._model("next_item", ("B", "A"))
    without = pd.DataFrame(columns=WITHOUT_COLUMNS)
    if occlusion:
        hist = rec._histories[p]
        positions, changes = occlusion_changes(model, hist, user, item)
        order = np.argsort(-np.abs(changes), kind="stable")[:top]
        taken = hist.items[user][positions[order]]
        without = pd.DataFrame(
            {
                "item_id": rec.items_["item_id"].to_numpy()[taken].astype(str),
                "text": rec.items_["text"].to_numpy()[taken].astype(str),
                "steps_back": len(hist.items[user]) - 1 - positions[order],
                "change": changes[order].astype(np.float64),
            }
        )
    vector = rec.user_vectors(users=np.array([user]))[0]
    model_scores = (rec.item_vectors() @ vector).astype(np.float64)
    named = model.named_priors()
    if not named:
        score = float(model_scores[item])
        empty = pd.DataFrame(columns=["item_id", "text", "prior", "steps_back", "pull"])
        return Explanation(str(user_id), str(item_id), text, score, {"model": score}, empty, without)
    _, histories, max_history = rec.next_item_reading()
    _, sources, steps_back = latest_positions([histories[user]], max_history)
    model_share = 1.0 - sum(float(prior.share) for _, prior in named)
    mean, std = catalogue_spread(model_scores)
    parts = {"model": model_share * (float(model_scores[item]) - mean) / std}
    rows = []
    for name, prior in named:
        share = float(prior.share)
        weight_of = np.zeros(rec.n_items)  # each history item's weight, 0 for every other item
        weight_of[sources] = decay_weights(steps_back, float(prior.decay))
        # Row j of the prior: the items whose presence adds to j's score, and by how much. The
        # user's whole row (for its spread) and item's sources read from it, in O(I · neighbours).
        from_sources, by = prior.sources.numpy(), prior.weights.numpy().astype(np.float64)
        mean, std = catalogue_spread((by * weight_of[from_sources]).sum(axis=1))
        on_item = np.bincount(from_sources[item], weights=by[item], minlength=rec.n_items)  # duplicates summed
        weights = weight_of[sources]
        pulls = share * weights * on_item[sources] / std
        parts[name] = float(pulls.sum()) - share * mean / std
        rows += [(int(h), name, int(age), float(c)) for h, age, c in zip(sources, steps_back, pulls) if c != 0.0]
    rows.sort(key=lambda r: -abs(r[3]))
    items = rec.items_
    because = pd.DataFrame(
        {
            "item_id": [str(items["item_id"].iloc[h]) for h, *_ in rows[:top]],
            "text": [str(items["text"].iloc[h]) for h, *_ in rows[:top]],
            "prior": [r[1] for r in rows[:top]],
            "steps_back": [r[2] for r in rows[:top]],
            "pull": [r[3] for r in rows[:top]],
        }
    )
    return Explanation(str(user_id), str(item_id), text, float(sum(parts.values())), parts, because, without)
