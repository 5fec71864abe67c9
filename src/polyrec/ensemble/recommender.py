"""A saved ensemble, loaded to answer by id: each member answers, the fitted weights combine.

The weights are those fitted for the first seed, whose members' models are the saved ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..recommender_base import RecommenderBase
from .combine import Combiner

ENSEMBLE_FILE = "ensemble.yaml"


class EnsembleRecommender(RecommenderBase):
    def __init__(
        self,
        members: list[RecommenderBase],
        combiners: dict[str, Combiner | int],
        items: pd.DataFrame,
        users: pd.DataFrame,
        interactions: pd.DataFrame,
    ):
        super().__init__(items, users, interactions)
        self.members = members
        self.combiners = combiners  # task key → fitted Combiner, or the index of the only member
        self.tasks = {"profile" if k.startswith("profile.") else k for k in combiners}
        self.rating_range = next((m.rating_range for m in members if m.rating_range is not None), None)
        self.attribute_classes = {k: v for m in members for k, v in m.attribute_classes.items()}

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleRecommender":
        from ..run_loader import load_run, load_tables

        path = Path(path)
        spec = yaml.safe_load((path / ENSEMBLE_FILE).read_text())
        names = [m["name"] for m in spec["members"]]
        members = []
        for m in spec["members"]:
            run = Path(m["run"])
            if not run.is_dir() and (path.parent / run.name).is_dir():
                run = path.parent / run.name  # the runs folder moved as a whole
            members.append(load_run(run))
        first_seed = next(iter(spec["weights"].values()))
        combiners: dict[str, Combiner | int] = {}
        for per_key in first_seed.values():
            for key, fit in per_key.items():
                idx = [names.index(n) for n in fit["members"]]
                combiners[key] = Combiner.from_dict(fit, idx) if "params" in fit else idx[0]
        return cls(members, combiners, *load_tables(path))

    def _combine(self, key: str, member_output) -> np.ndarray:
        """Task ``key`` combined from ``member_output(member_index)`` of the members that have it."""
        comb = self.combiners[key]
        if isinstance(comb, int):
            return member_output(comb)
        return comb.predict([member_output(m) for m in comb.members])

    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        if "next_item" not in self.combiners:
            return super().catalogue_scores(users)
        return self._combine("next_item", lambda m: self.members[m].catalogue_scores(users))

    def pair_predictions(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        keys = [k for k in ("rating", "ctr") if k in self.combiners]
        if not keys:
            return super().pair_predictions(users, items)
        outputs = _each_member_once(lambda m: self.members[m].pair_predictions(users, items))
        return {k: self._combine(k, lambda m, k=k: outputs(m)[k]) for k in keys}

    def profile_probabilities(self, users: np.ndarray) -> dict[str, np.ndarray]:
        keys = [k for k in self.combiners if k.startswith("profile.")]
        if not keys:
            return super().profile_probabilities(users)
        outputs = _each_member_once(lambda m: self.members[m].profile_probabilities(users))
        return {k[len("profile.") :]: self._combine(k, lambda m, a=k[len("profile.") :]: outputs(m)[a]) for k in keys}


def _each_member_once(compute):
    """``compute(member_index)``, memoised: one member answers all tasks in one call."""
    done: dict[int, dict[str, np.ndarray]] = {}

    def output(m: int) -> dict[str, np.ndarray]:
        if m not in done:
            done[m] = compute(m)
        return done[m]

    return output
