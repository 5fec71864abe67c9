"""Turn raw user attribute columns into the categorical classes the profile task predicts.

One rule for every loader (``bucketize_numeric``):

- a numeric column named like ``age`` → the seven MovieLens-1M age groups (ML-1M's own age
  codes 1, 18, 25, …, 56 fall into the same groups, so ML-100K and ML-1M agree);
- any other numeric column with more than 10 distinct values → 5 quantile ranges;
- everything else → its values as str categories.

A column counts as numeric when every non-missing value parses as a finite number; one
stray word ("unknown") keeps the whole column as str categories.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

AGE_GROUPS: tuple[str, ...] = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
# Lower bound of every group after the first; an age equal to a bound opens the next group.
_AGE_BOUNDS = np.array([18, 25, 35, 45, 50, 56], dtype=np.float64)
_N_QUANTILES = 5
_MAX_NUMERIC_CLASSES = 10
# "age", "user_age", "age_group" — but not "page", "usage" or "agent".
_AGE_NAME = re.compile(r"(^|[^a-z])age([^a-z]|$)")


def is_age_column(name: str) -> bool:
    """True when a column name says it holds ages (``age``, ``user_age``, ``Age`` …)."""
    return _AGE_NAME.search(name.lower()) is not None


def bucket_age(values: Iterable[object]) -> pd.Series:
    """Map ages (years, or ML-1M age codes) to ``AGE_GROUPS`` labels; missing stays ``pd.NA``.

    Raises ``ValueError`` when a non-missing value is not a number.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    numbers = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    groups = np.searchsorted(_AGE_BOUNDS, numbers, side="right")
    labels = [pd.NA if np.isnan(x) else AGE_GROUPS[g] for x, g in zip(numbers, groups)]
    return pd.Series(labels, index=series.index, dtype=object, name=series.name)


def bucketize_numeric(series: pd.Series, name: str) -> pd.Series:
    """Apply the module's rule to one attribute column; returns str labels or ``pd.NA``."""
    return _bucketize(series, name)[0]


def prepare_attributes(frame: pd.DataFrame, names: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Bucketize each named column of ``frame``; returns the new columns and report notes."""
    out = pd.DataFrame(index=frame.index)
    notes: list[str] = []
    for name in names:
        out[name], note = _bucketize(frame[name], name)
        if note:
            notes.append(note)
    return out, notes


def _bucketize(series: pd.Series, name: str) -> tuple[pd.Series, str | None]:
    """The rule itself, plus a report note saying which bucketing happened (if any)."""
    categories = _category_strings(series)
    present = categories.notna()
    numbers = pd.to_numeric(categories[present], errors="coerce")
    if not present.any() or numbers.isna().any() or not np.isfinite(numbers.to_numpy(float)).all():
        return categories, None
    if is_age_column(name):
        note = f"attribute '{name}': numeric, bucketed into the MovieLens-1M age groups"
        return bucket_age(pd.to_numeric(categories, errors="coerce")), note
    distinct = numbers.nunique()
    if distinct > _MAX_NUMERIC_CLASSES:
        buckets = _quantile_buckets(categories, numbers)
        note = (
            f"attribute '{name}': {distinct} distinct numeric values, "
            f"bucketed into {buckets.nunique()} quantile ranges"
        )
        return buckets, note
    return categories, None


def class_order(labels: Iterable[str]) -> list[str]:
    """A natural display order: age groups in age order, ranges by lower bound, else sorted."""
    labels = list(dict.fromkeys(labels))
    if set(labels) <= set(AGE_GROUPS):
        return [g for g in AGE_GROUPS if g in labels]
    lows = [_range_low(label) for label in labels]
    if all(low is not None for low in lows):
        return [label for _, label in sorted(zip(lows, labels))]
    return sorted(labels)


def _category_strings(series: pd.Series) -> pd.Series:
    """Values as stripped str (object dtype), with ``pd.NA`` for missing or empty."""
    if pd.api.types.is_bool_dtype(series):
        values = [pd.NA if pd.isna(v) else str(bool(v)).lower() for v in series]
    elif pd.api.types.is_numeric_dtype(series):
        # Parquet floats: write 3.0 as "3", so it matches the same value read from a CSV.
        values = [pd.NA if pd.isna(v) else _format_number(float(v)) for v in series]
    else:
        values = [pd.NA if pd.isna(v) or not str(v).strip() else str(v).strip() for v in series]
    return pd.Series(values, index=series.index, dtype=object, name=series.name)


def _quantile_buckets(categories: pd.Series, numbers: pd.Series) -> pd.Series:
    edges = np.unique(np.quantile(numbers.to_numpy(float), np.linspace(0, 1, _N_QUANTILES + 1)))
    # Heavy ties can merge quantiles, so there may be fewer than 5 ranges.
    labels = [f"[{_format_number(edges[0])}, {_format_number(edges[1])}]"]
    labels += [f"({_format_number(lo)}, {_format_number(hi)}]" for lo, hi in zip(edges[1:], edges[2:])]
    bucket = np.searchsorted(edges[1:-1], numbers.to_numpy(float), side="left")
    out = pd.Series(pd.NA, index=categories.index, dtype=object, name=categories.name)
    out[numbers.index] = [labels[b] for b in bucket]
    return out


def _format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _range_low(label: str) -> float | None:
    match = re.fullmatch(r"[\[(]\s*(-?[\d.e+-]+),.*[\])]", label)
    return float(match.group(1)) if match else None
