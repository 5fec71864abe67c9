"""The three tables every loader produces, in one typed container."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def scale_ctr_threshold(low: float, high: float) -> float:
    """Three quarters of the way from the lowest rating to the highest (``Dataset.ctr_threshold``)."""
    return low + 0.75 * (high - low)


@dataclass
class Dataset:
    """Users, items and interactions, with dense integer ids.

    - ``users``: one row per user, row ``u`` is user index ``u``. Column ``user_id``
      holds the original id (str); every other column named in ``attributes`` is a
      categorical attribute stored as str (missing values as ``pd.NA``). With
      ``user_text_columns``, column ``text`` holds the text composed from them ("" for a user
      without any): an input describing the user, never a profile target.
    - ``items``: one row per item, row ``i`` is item index ``i``. Column ``item_id`` holds
      the original id (str); ``text`` is the item text built from ``text_columns``
      (what the language model reads); optional ``item_type`` (str). ``text_fields``
      names the columns of ``items`` the language model may also read one at a time
      (``text.per_field``): a generic folder's text columns where it names several; empty
      where ``text`` is one short composed sentence (the MovieLens loaders).
    - ``interactions``: one row per event, in file order (protocol B breaks timestamp ties
      by this order). Columns ``user`` and ``item`` (int64 indices into the tables above),
      and, when the data has them, ``rating`` (float64), ``timestamp`` (float64, seconds or
      any monotone unit) and ``label`` (float64, 0 or 1).
    - ``notes``: human-readable lines for the report, e.g. rows dropped and why,
      tasks switched off for lack of labels.
    """

    name: str
    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    attributes: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    text_fields: list[str] = field(default_factory=list)
    user_text_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # (n_users, D) the users' text vectors, set by the pipeline from ``users["text"]`` with the
    # run's text encoder (zero rows for users without text); None where the data has no user
    # text or the run reads none.
    user_vectors: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_texts(self) -> list[str] | None:
        """Each user's text ("" where none); None where the data describes no user by text."""
        if not self.user_text_columns:
            return None
        return ["" if pd.isna(t) else str(t) for t in self.users["text"]]

    @property
    def has_rating(self) -> bool:
        return "rating" in self.interactions.columns

    @property
    def has_timestamp(self) -> bool:
        return "timestamp" in self.interactions.columns

    @property
    def has_label(self) -> bool:
        return "label" in self.interactions.columns

    @property
    def rating_range(self) -> tuple[float, float] | None:
        """(min, max) of observed ratings; predictions are clipped to it."""
        if not self.has_rating:
            return None
        r = self.interactions["rating"].to_numpy(dtype=np.float64)
        return float(np.nanmin(r)), float(np.nanmax(r))

    def ctr_threshold(self, configured: float | None) -> float | None:
        """The rating from which an interaction counts as engaged where the data has no label
        column: ``configured`` if given, else three quarters of the way from the lowest rating
        to the highest — 4 on MovieLens' 1–5 stars, 3.875 on 0.5–5 (so 4 and up, as there),
        7.75 on 1–10 (8 and up). Only the scale's ends are read, as ``rating_range`` reads
        them for clipping. None without ratings."""
        if configured is not None or not self.has_rating:
            return configured
        return scale_ctr_threshold(*self.rating_range)

    @property
    def main_attribute(self) -> str | None:
        """The attribute the profile task is judged and stratified by: gender where the data
        has it (MovieLens), else its first attribute; None without attributes."""
        if not self.attributes:
            return None
        return "gender" if "gender" in self.attributes else self.attributes[0]

    def attribute_codes(self, attribute: str) -> tuple[np.ndarray, list[str]]:
        """Integer class codes per user (-1 where missing) and the class names."""
        col = self.users[attribute]
        classes = sorted(col.dropna().astype(str).unique().tolist())
        lookup = {c: k for k, c in enumerate(classes)}
        codes = np.array([lookup[str(v)] if not pd.isna(v) else -1 for v in col], dtype=np.int64)
        return codes, classes
