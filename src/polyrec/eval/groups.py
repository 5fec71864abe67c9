"""A run's test metrics by group: by each user attribute, and by how popular items are.

A mean over all users can hide a group the model serves badly: the women of a data set where
most raters are men, or the long tail of a catalogue that the head outweighs. This scores a
finished run's kept test predictions (prediction_store.py) again within each group, with the
same metric code as the run's own report, so nothing retrains:

- users by each attribute (its classes as the run encoded them, and "(missing)"): rating
  RMSE and ctr AUC over their protocol-A test pairs, NDCG@10 and HR@10 over their protocol-B
  test targets. Attributes are read for grouping only, as PROTOCOLS.md allows evaluation to.
- items by popularity on the split's training side: **head**, the most-taken items that
  together hold the first third of the training interactions, **torso** the next third,
  **tail** the rest (items never taken included). Per group: the pairs' and targets' metrics
  as above, and the share of the top-10 slots the run recommends to the protocol-B test users
  (exposure), beside the group's share of the catalogue and of the training interactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..data.tables import Dataset
from ..train.protocol_data import ProtocolData, prepare_configured
from .evaluate import next_item_side_ranks, pair_metrics
from .prediction_store import load_predictions, predictions_folder
from .ranking import ranking_metrics

POPULARITY = ("head", "torso", "tail")
MISSING = "(missing)"
TOP = 10  # the list length whose slots exposure counts, and the ranking metrics' cut-off
PAIR_METRICS = ("rating.rmse", "ctr.auc")
RANK_METRICS = (f"ndcg@{TOP}", f"hr@{TOP}")


def popularity_groups(train_counts: np.ndarray) -> np.ndarray:
    """(I,) 0 head, 1 torso, 2 tail: items by training count, most taken first; an item is in
    the group where the interactions of the items before it end (ties in item order)."""
    order = np.argsort(-train_counts, kind="stable")
    before = np.cumsum(train_counts[order]) - train_counts[order]
    share_before = before / max(float(train_counts.sum()), 1.0)
    groups = np.empty(len(train_counts), dtype=np.int64)
    groups[order] = np.where(share_before < 1 / 3, 0, np.where(share_before < 2 / 3, 1, 2))
    groups[train_counts == 0] = 2
    return groups


def top_lists(scores: np.ndarray, histories: list[np.ndarray] | None, k: int = TOP) -> np.ndarray:
    """(U, k) each row's k best items, its history excluded as the ranks exclude it (None:
    nothing excluded)."""
    scores = np.array(scores, dtype=np.float64)
    for row, seen in zip(scores, histories or []):
        row[seen] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@dataclass
class GroupMetrics:
    """Per (section, group): each seed's metrics and sizes, gathered seed by seed."""

    values: dict[tuple[str, str], dict[str, list[float]]] = field(default_factory=dict)

    def add(self, section: str, group: str, metrics: dict[str, float]) -> None:
        cell = self.values.setdefault((section, group), {})
        for name, value in metrics.items():
            cell.setdefault(name, []).append(float(value))

    def sections(self) -> list[str]:
        return list(dict.fromkeys(s for s, _ in self.values))

    def groups(self, section: str) -> list[str]:
        return [g for s, g in self.values if s == section]

    def mean_std(self, section: str, group: str, name: str) -> tuple[float, float, int] | None:
        """Mean and std (over the seeds that scored it) and that number of seeds; None if none did."""
        vals = [v for v in self.values[section, group].get(name, []) if not np.isnan(v)]
        if not vals:
            return None
        return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)

    def flat(self) -> dict[str, float]:
        """``"<section>=<group>.<metric>"`` → mean over seeds (and ``….std``), for metrics.json-style use."""
        out: dict[str, float] = {}
        for (section, group), cell in self.values.items():
            for name in cell:
                stats = self.mean_std(section, group, name)
                if stats is not None:
                    out[f"{section}={group}.{name}"] = stats[0]
                    out[f"{section}={group}.{name}.std"] = stats[1]
        return out


Attributes = dict[str, tuple[np.ndarray, list[str]]]  # name → (per-user class code, −1 missing; class names)


def _grouped(users: np.ndarray, items: np.ndarray, attributes: Attributes, popularity: np.ndarray) -> Iterator[tuple[str, str, np.ndarray]]:
    """(section, group, mask over the rows) of each non-empty group of (user, item) rows: by
    each user attribute's classes, then its missing values, then by the item's popularity."""
    sections = [(name, codes[users], classes) for name, (codes, classes) in attributes.items()]
    sections.append(("item popularity", popularity[items], list(POPULARITY)))
    for section, codes, classes in sections:
        masks = [(name, codes == c) for c, name in enumerate(classes)] + [(MISSING, codes < 0)]
        yield from ((section, group, mask) for group, mask in masks if mask.any())


def score_groups(run: Path, cfg: RunConfig, ds: Dataset) -> GroupMetrics:
    """Every seed's test metrics of run ``run`` (made with ``cfg`` on ``ds``) within each group."""
    out = GroupMetrics()
    attributes = {name: ds.attribute_codes(name) for name in ds.attributes}
    # A baseline's run keeps predictions for the protocols of its tasks only (BPR: B).
    protocols = [p for p in cfg.protocols if (predictions_folder(run, p, cfg.seeds[0]) / "test.npz").is_file()]
    if not protocols:
        raise FileNotFoundError(f"{run}: no kept test predictions (predictions/<protocol>/seed{cfg.seeds[0]}/test.npz)")
    for seed in cfg.seeds:
        for protocol in protocols:
            data = prepare_configured(ds, protocol, seed, cfg, profile=False)
            pred = load_predictions(run, protocol, seed, "test")
            train_counts = np.bincount(np.concatenate([np.asarray(x) for x in data.train.items]), minlength=ds.n_items)
            popularity = popularity_groups(train_counts)
            if protocol == "A":
                _pairs_by_group(out, data, pred, attributes, popularity, ds.rating_range)
            else:
                _targets_by_group(out, data, pred, attributes, popularity, train_counts)
    return out


def _pairs_by_group(
    out: GroupMetrics, data: ProtocolData, pred: dict[str, np.ndarray], attributes: Attributes, popularity: np.ndarray,
    rating_range: tuple[float, float] | None,
) -> None:
    pairs = data.test.pairs
    if pairs is None or not len(pairs) or not ({"rating", "ctr"} & set(pred)):
        return
    for section, group, mask in _grouped(pairs.users, pairs.items, attributes, popularity):
        part = {k: pred[k][mask] for k in ("rating", "ctr") if k in pred}
        metrics = pair_metrics("A", pairs.ratings[mask], pairs.labels[mask], part, rating_range)
        out.add(section, group, {k[2:]: v for k, v in metrics.items() if k[2:] in PAIR_METRICS} | {"test pairs": int(mask.sum())})


def _targets_by_group(
    out: GroupMetrics, data: ProtocolData, pred: dict[str, np.ndarray], attributes: Attributes, popularity: np.ndarray,
    train_counts: np.ndarray,
) -> None:
    side = data.test
    ranks = next_item_side_ranks(side, pred)
    if ranks is None or not len(ranks):
        return
    users = side.next_users
    for section, group, mask in _grouped(users, side.next_items, attributes, popularity):
        metrics = ranking_metrics(np.asarray(ranks)[mask])
        out.add(section, group, {f"next_item.{m}": metrics[m] for m in RANK_METRICS} | {"test targets": int(mask.sum())})
    if "next_item" not in pred:  # only the ranks were kept (a large catalogue): no lists to count
        return
    lists = top_lists(pred["next_item"], side.excluded(users))
    shown = np.bincount(popularity[lists.ravel()], minlength=3) / lists.size
    catalogue = np.bincount(popularity, minlength=3) / len(popularity)
    taken = np.bincount(popularity, weights=train_counts, minlength=3) / max(float(train_counts.sum()), 1.0)
    for g, group in enumerate(POPULARITY):
        out.add("item popularity", group, {
            f"share of top-{TOP} slots": shown[g], "share of catalogue": catalogue[g], "share of training interactions": taken[g],
        })  # fmt: skip
    out.add("catalogue", "all", {f"coverage@{TOP}": len(np.unique(lists)) / len(popularity)})
