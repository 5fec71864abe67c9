"""Why an item scores as it does for a user, known or given by a history: the next-item
score taken apart.

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

from collections.abc import Callable, Mapping, Sequence
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
    from .text.new_items import NewItemText

WITHOUT_COLUMNS = ["item_id", "text", "steps_back", "change"]


@dataclass(frozen=True)
class Explanation:
    user_id: str | None  # None: a user given by an ad-hoc history
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
        who = "the given history" if self.user_id is None else f"user {self.user_id}"
        lines = [f"item {self.item_id} for {who}: score {self.score:.3f}  {shorten(self.item_text)}"]
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
    p, model = rec._model("next_item", ("B", "A"))
    history = rec._histories[p].items[user]
    without = pd.DataFrame(columns=WITHOUT_COLUMNS)
    if occlusion:
        positions, changes = occlusion_changes(model, rec._histories[p], user, item)
        ids, texts = rec.items_["item_id"].to_numpy().astype(str), rec.items_["text"].to_numpy().astype(str)
        without = _without(ids[history], texts[history], positions, changes, top)
    vector = rec.user_vectors(users=np.array([user]))[0]
    return _explained(rec, model, str(user_id), item, history, rec.item_vectors() @ vector, top, without)


def explain_history_score(
    rec: Recommender,
    items: Sequence[str],
    item_id: str,
    ratings: Sequence[float | None] | None = None,
    texts: Mapping[str, NewItemText] | None = None,
    user_text: str | None = None,
    top: int = 5,
    occlusion: bool = False,
) -> Explanation:
    """:func:`explain_score` for a user given by an ad-hoc history, oldest first, read as
    ``Recommender.recommend_history`` reads it (new items given by ``texts`` have no prior
    part). With ``occlusion`` the history is scored again without each item the model reads."""
    item = rec.item_index(item_id)
    _, model = rec._model("next_item", ("B", "A"))
    beyond = -1  # a new item's index: no prior reads it
    history = np.array([rec._item_index.get(str(i), beyond) for i in items], dtype=np.int64)
    vectors = rec.item_vectors()  # once: every variant of the history is scored against them
    without = pd.DataFrame(columns=WITHOUT_COLUMNS)
    if occlusion:
        whole = rec.history_scores(items, ratings, texts, user_text, vectors)[item]
        # Each item the model reads left out in turn (a one-item history has none to spare).
        positions = np.arange(max(0, len(items) - model.spec.config.max_history), len(items) if len(items) > 1 else 0)
        changes = np.array([
            whole - rec.history_scores(*_left_out(items, ratings, j), texts, user_text, vectors)[item] for j in positions
        ])  # fmt: skip
        catalogue_texts = rec.items_["text"].to_numpy().astype(str)
        shown = [catalogue_texts[h] if h != beyond else _new_item_text((texts or {})[str(i)]) for i, h in zip(items, history)]
        without = _without(np.array([str(i) for i in items]), np.array(shown, dtype=object), positions, changes, top)
    model_scores = vectors @ rec.history_vector(items, ratings, texts, user_text)
    return _explained(rec, model, None, item, history, model_scores, top, without)


def _left_out(
    items: Sequence[str], ratings: Sequence[float | None] | None, j: int
) -> tuple[list[str], list[float | None] | None]:
    """The history without its ``j``-th item (and rating)."""
    kept = [k for k in range(len(items)) if k != j]
    return [items[k] for k in kept], None if ratings is None else [ratings[k] for k in kept]


def _new_item_text(text: NewItemText) -> str:
    """A new item's text as given: one string, or its fields joined."""
    return text if isinstance(text, str) else " ".join(str(v) for v in text.values())


def _without(ids: np.ndarray, texts: np.ndarray, positions: np.ndarray, changes: np.ndarray, top: int) -> pd.DataFrame:
    """The ``top`` history items (``ids``, ``texts``: the whole history's) whose absence moves
    the score most, from their ``positions`` and ``changes`` (:func:`occlusion_changes`)."""
    order = np.argsort(-np.abs(changes), kind="stable")[:top]
    taken = positions[order]
    return pd.DataFrame(
        {"item_id": ids[taken], "text": texts[taken], "steps_back": len(ids) - 1 - taken, "change": changes[order].astype(np.float64)}
    )


def _explained(
    rec: Recommender, model: PolyRecModel, user_id: str | None, item: int, history: np.ndarray, model_scores: np.ndarray,
    top: int, without: pd.DataFrame,
) -> Explanation:
    """The score of catalogue item ``item`` for the user whose model scores (``item_vectors() @
    vector``, (I,)) and ``history`` (catalogue indices, oldest first; −1: a new item, which no
    prior reads) are given, taken apart as the module's docstring says."""
    text = str(rec.items_["text"].iloc[item])
    model_scores = model_scores.astype(np.float64)
    named = model.named_priors()
    if not named:
        score = float(model_scores[item])
        empty = pd.DataFrame(columns=["item_id", "text", "prior", "steps_back", "pull"])
        return Explanation(user_id, str(rec.items_["item_id"].iloc[item]), text, score, {"model": score}, empty, without)
    _, sources, steps_back = latest_positions([history], model.spec.config.max_history)
    catalogue = sources >= 0  # new items take their place in the order, and no prior reads them
    sources, steps_back = sources[catalogue], steps_back[catalogue]
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
    return Explanation(user_id, str(items["item_id"].iloc[item]), text, float(sum(parts.values())), parts, because, without)
