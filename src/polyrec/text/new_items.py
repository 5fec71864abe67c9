"""Text vectors of items a run has never seen, made the way its catalogue's were."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import LEGACY_VALUES, TextConfig
from ..data.generic import item_text
from .fields import mean_of_fields

NewItemText = str | Mapping[str, str]  # a whole text, or the catalogue's text fields by name


@dataclass
class NewItemEncoder:
    """The run's sentence encoder and how its catalogue's text was composed.

    ``fields``: the catalogue's text columns where it had several (``Dataset.text_fields``),
    in the loader's order; ``per_field``: whether the run encoded them apart (``text.per_field``).
    A new item given as fields is then encoded exactly as a catalogue item with those values
    was: apart and averaged, or joined as the loader joins them. Given as one text, it is
    encoded whole, which lands near, not exactly where, its fields would.
    """

    encoder: str
    cache_dir: str | None
    max_tokens: int | None
    fields: tuple[str, ...] = ()
    per_field: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_run(cls, text: Mapping[str, object], fields: Sequence[str]) -> "NewItemEncoder | None":
        """From a saved run's ``config.yaml`` text section (read leniently) and its catalogue's
        text fields; None where the run read no item text. A config written before
        ``text.per_field`` existed reads as joined, as the run was trained."""
        default = TextConfig()
        if not text.get("enabled", default.enabled):
            return None
        return cls(
            encoder=str(text.get("encoder", default.encoder)),
            cache_dir=text.get("cache_dir", default.cache_dir),  # type: ignore[arg-type]
            max_tokens=text.get("max_tokens", default.max_tokens),  # type: ignore[arg-type]
            fields=tuple(fields),
            per_field=bool(text.get("per_field", LEGACY_VALUES["text"]["per_field"])),
        )

    def embed(self, texts: Sequence[NewItemText]) -> np.ndarray:
        """(N, D) unit vectors, one per item; each item a whole text or a mapping field → value."""
        given = [self._check(t) if isinstance(t, Mapping) else None for t in texts]
        wholes = [str(t) if g is None else item_text(g, self.fields) for t, g in zip(texts, given)]
        if self.per_field and self.fields:
            columns = [[None if g is None else g[f] for g in given] for f in self.fields]
            return mean_of_fields(columns, wholes, self._encode)
        return self._encode(wholes)

    def _check(self, values: Mapping[str, str]) -> dict[str, str | None]:
        """Every field of the catalogue, None where the item lacks it; unknown names refused."""
        if not self.fields:
            raise ValueError("this run's items were read from one text, not several fields: give the item's text")
        unknown = sorted(set(values) - set(self.fields))
        if unknown:
            raise ValueError(f"unknown text field '{unknown[0]}' (this run's fields: {', '.join(self.fields)})")
        row = {f: (str(values[f]).strip() or None) if values.get(f) is not None else None for f in self.fields}
        if all(v is None for v in row.values()):
            raise ValueError("a new item's fields are all empty")
        return row

    def _encode(self, texts: list[str]) -> np.ndarray:
        from . import encode_texts  # looked up at call time, so a test can stand in for the model

        with self._lock:  # the on-disk vector cache has one writer at a time
            return encode_texts(texts, self.encoder, self.cache_dir, progress=False, max_tokens=self.max_tokens)
