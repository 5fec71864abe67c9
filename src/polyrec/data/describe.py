"""A plain-text summary of a ``Dataset``, for the report and for a first look at new data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .attributes import class_order
from .tables import Dataset

_BAR = 30  # characters of the longest bar
_MAX_CLASSES = 30  # an attribute with more classes shows only the largest ones
_MAX_EXACT_RATINGS = 20  # more distinct ratings than this → equal-width bins


def describe(ds: Dataset, notes: list[str] | None = None) -> str:
    """Counts, sparsity, per-user activity, rating/label/timestamp summaries, attribute and
    item-type distributions, and ``notes`` (default: the loader's), as multi-line text."""
    notes = ds.notes if notes is None else notes
    inter = ds.interactions
    n = len(inter)
    cells = ds.n_users * ds.n_items
    lines = [
        f"Dataset {ds.name}",
        f"  users         {ds.n_users:>12,}",
        f"  items         {ds.n_items:>12,}",
        f"  interactions  {n:>12,}",
        f"  sparsity      {f'{100 * (1 - n / cells) if cells else 100.0:.2f}%':>12}",
        f"  interactions per user: {_spread(np.bincount(inter['user'], minlength=ds.n_users))}",
        f"  interactions per item: {_spread(np.bincount(inter['item'], minlength=ds.n_items))}",
    ]
    if ds.has_rating and n:
        r = inter["rating"].to_numpy(dtype=np.float64)
        unrated = int(np.isnan(r).sum())
        r = r[~np.isnan(r)]
        lines.append(f"Ratings (min {_num(r.min())}, max {_num(r.max())}, mean {r.mean():.2f}):")
        lines += _bars(_rating_histogram(r) + ([("(none)", unrated)] if unrated else []), n)
    if ds.has_label and n:
        labels = inter["label"].to_numpy(dtype=np.float64)
        labelled = int((~np.isnan(labels)).sum())
        positives = int(np.nansum(labels))
        none = f"; {n - labelled:,} without a label" if labelled < n else ""
        lines.append(f"Labels: {100 * positives / labelled:.1f}% positive ({positives:,} of {labelled:,}{none})")
    if ds.has_timestamp and n:
        lines.append(_time_range(inter["timestamp"].to_numpy()))
    for attribute in ds.attributes:
        col = ds.users[attribute]
        counts = col.dropna().astype(str).value_counts()
        lines.append(f"Attribute '{attribute}' ({len(counts)} classes):")
        order = class_order(counts.index)
        if len(order) > _MAX_CLASSES:
            order = counts.index[:_MAX_CLASSES].tolist()
        rows = [(c, int(counts[c])) for c in order]
        if col.isna().any():
            rows.append(("(missing)", int(col.isna().sum())))
        lines += _bars(rows, len(col))
        if len(counts) > _MAX_CLASSES:
            lines.append(f"    … {len(counts) - _MAX_CLASSES} smaller classes not shown")
    if "item_type" in ds.items.columns:
        counts = ds.items["item_type"].fillna("(missing)").astype(str).value_counts()
        lines.append("Item types:")
        lines += _bars(list(counts.items()), ds.n_items)
    if ds.n_items:
        columns = ", ".join(ds.text_columns) or "item id"
        apart = " (each encoded on its own, unless text.per_field is false)" if ds.text_fields else ""
        lines.append(f"Item text from {columns}{apart}, e.g. {str(ds.items['text'].iloc[0])[:100]!r}")
    user_texts = ds.user_texts()
    if user_texts is not None:
        described = [t for t in user_texts if t.strip()]
        example = f", e.g. {described[0][:100]!r}" if described else ""
        lines.append(f"User text from {', '.join(ds.user_text_columns)}: {len(described):,} of {ds.n_users:,} users{example}")
    if notes:
        lines.append("Notes:")
        lines += [f"  - {note}" for note in notes]
    return "\n".join(lines)


def _spread(counts: np.ndarray) -> str:
    if len(counts) == 0:
        return "none"
    return f"min {counts.min():,} · median {_num(np.median(counts))} · max {counts.max():,}"


def _rating_histogram(ratings: np.ndarray) -> list[tuple[str, int]]:
    values, counts = np.unique(ratings, return_counts=True)
    if len(values) <= _MAX_EXACT_RATINGS:
        return [(_num(v), int(c)) for v, c in zip(values, counts)]
    counts, edges = np.histogram(ratings, bins=10)
    return [(f"[{_num(lo)}, {_num(hi)})", int(c)) for lo, hi, c in zip(edges, edges[1:], counts)]


def _bars(rows: list[tuple[str, int]], total: int) -> list[str]:
    """One line per (label, count): count, share of ``total`` and a bar scaled to the largest."""
    if not rows:
        return []
    width = max(len(label) for label, _ in rows)
    top = max(count for _, count in rows) or 1
    lines = []
    for label, count in rows:
        share = 100 * count / total if total else 0.0
        bar = "#" * round(_BAR * count / top)
        lines.append(f"    {label:<{width}}  {count:>10,}  {share:5.1f}%  {bar}")
    return lines


def _time_range(t: np.ndarray) -> str:
    text = f"Timestamps: {t.min():.10g} to {t.max():.10g}"
    # Only plausible Unix seconds (1973 … 2100) get calendar dates; other units stay numbers.
    if 1e8 <= t.min() and t.max() <= 4.1e9:
        first, last = (_date(x) for x in (t.min(), t.max()))
        text += f" ({first} to {last} UTC, if seconds since 1970)"
    return text


def _date(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:.4g}"
