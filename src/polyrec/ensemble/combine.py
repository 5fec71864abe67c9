"""Combine several models' predictions for one task, with weights fitted on validation.

Two methods (DESIGN.md, step 6):

- ``softmax``: weights ``α = softmax(w)`` — non-negative, summing to one — over the
  members' predictions put on one scale, plus at most a scale and offset of the result
  (a temperature for next-item scores, a Platt calibration for ctr);
- ``stacking``: a regularised linear model on the same member inputs (free weights and
  an intercept, L2 penalty ``STACKING_L2``).

The members' inputs per task: ratings as predicted; ctr as a logit (a probability's, or a
score as it is), standardised with validation statistics; profile as class probabilities
(softmax: a mixture of them; stacking: a weighted sum of their logs, then a softmax);
next item as scores standardised per user over the catalogue, items already seen masked.
Every fit minimises the task's own loss on validation (MSE, log loss, log loss, softmax
cross-entropy of the held-out item) with L-BFGS; test data is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

METHODS = ("softmax", "stacking")
STACKING_L2 = 1e-3
SCALE_L2 = 1e-4


def _logit(x: np.ndarray) -> np.ndarray:
    if x.min() >= 0.0 and x.max() <= 1.0:
        x = np.clip(x, 1e-6, 1 - 1e-6)
        return np.log(x / (1 - x))
    return x.astype(np.float64)


def _row_standardise(scores: np.ndarray) -> np.ndarray:
    s = scores.astype(np.float32)
    return (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-6)


@dataclass
class Combiner:
    """A fitted combination of M members for one task; plain numbers, so it saves as YAML."""

    task: str
    method: str
    n_members: int = 0
    members: list[int] = field(default_factory=list)  # which of the ensemble's members these are
    params: list[float] = field(default_factory=list)  # M member weights (raw), then extras
    means: list[float] = field(default_factory=list)  # ctr: validation mean / std of each input
    stds: list[float] = field(default_factory=list)

    @property
    def weights(self) -> list[float]:
        """The members' effective weights: α (softmax) or β (stacking)."""
        w = torch.tensor(self.params[: self.n_members], dtype=torch.float64)
        return (torch.softmax(w, 0) if self.method == "softmax" else w).tolist()

    def to_dict(self) -> dict:
        return {"method": self.method, "weights": self.weights, "task": self.task, "params": self.params,
                "means": self.means, "stds": self.stds}

    @classmethod
    def from_dict(cls, raw: dict, members: list[int]) -> "Combiner":
        return cls(raw["task"], raw["method"], len(members), members, raw["params"], raw["means"], raw["stds"])

    # -- inputs --------------------------------------------------------------------------
    def _inputs(self, preds: list[np.ndarray]) -> torch.Tensor:
        if self.task == "rating":
            return torch.from_numpy(np.stack(preds, 1).astype(np.float64))
        if self.task == "ctr":
            x = np.stack([_logit(p) for p in preds], 1)
            return torch.from_numpy((x - np.array(self.means)) / np.array(self.stds))
        if self.task == "profile":
            return torch.from_numpy(np.stack(preds, 0).astype(np.float64))  # (M, n, C)
        return torch.from_numpy(np.stack([_row_standardise(p) for p in preds], 0))  # (M, n, I)

    def _output(self, params: torch.Tensor, x: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
        """rating: predictions; ctr: logits; profile: log-probabilities; next_item: logits."""
        m = self.n_members
        w = torch.softmax(params[:m], 0) if self.method == "softmax" else params[:m]
        extra = params[m:]
        if self.task == "rating":
            return x @ w + (extra[0] if self.method == "stacking" else 0.0)
        if self.task == "ctr":
            z = x @ w
            return extra[0] * z + extra[1] if self.method == "softmax" else z + extra[0]
        if self.task == "profile":
            if self.method == "softmax":
                return torch.log(torch.einsum("m,mnc->nc", w, x).clamp_min(1e-12))
            return torch.log_softmax(torch.einsum("m,mnc->nc", w, torch.log(x.clamp_min(1e-12))), -1)
        logits = torch.einsum("m,mni->ni", w.to(x.dtype), x)
        if self.method == "softmax":
            logits = logits * torch.exp(extra[0]).to(x.dtype)
        return logits if seen is None else logits.masked_fill(seen, float("-inf"))

    def _loss(self, params: torch.Tensor, x: torch.Tensor, y: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        out = self._output(params, x, seen)
        if self.task == "rating":
            loss = torch.mean((out - y) ** 2)
        elif self.task == "ctr":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y)
        elif self.task == "profile":
            loss = torch.nn.functional.nll_loss(out, y)
        else:
            loss = torch.nn.functional.cross_entropy(out, y).to(torch.float64)
        if self.method == "stacking":
            loss = loss + STACKING_L2 * (params[: self.n_members] ** 2).sum()
        # A member that separates validation perfectly would send a scale to infinity.
        return loss + SCALE_L2 * (params[self.n_members :] ** 2).sum()

    # -- fit / apply ---------------------------------------------------------------------
    def fit(self, preds: list[np.ndarray], truth: np.ndarray, seen: np.ndarray | None = None) -> "Combiner":
        """Fit on validation: ``preds`` one array per member, ``truth`` the targets
        (ratings, 0/1 labels, class codes, or held-out item indices; NaN/−1 = unknown)."""
        M = self.n_members = len(preds)
        if self.task == "ctr":
            x = np.stack([_logit(p) for p in preds], 1)
            self.means, self.stds = x.mean(0).tolist(), (x.std(0) + 1e-9).tolist()
        start = {
            ("rating", "softmax"): [0.0] * M, ("rating", "stacking"): [1.0 / M] * M + [0.0],
            ("ctr", "softmax"): [0.0] * M + [1.0, 0.0], ("ctr", "stacking"): [1.0 / M] * M + [0.0],
            ("profile", "softmax"): [0.0] * M, ("profile", "stacking"): [1.0 / M] * M,
            ("next_item", "softmax"): [0.0] * M + [0.0], ("next_item", "stacking"): [1.0 / M] * M,
        }[(self.task, self.method)]
        self.params = list(start)
        x = self._inputs(preds)
        known = ~np.isnan(truth) if truth.dtype.kind == "f" else truth >= 0
        if self.task in ("rating", "ctr"):
            x, y = x[known], torch.from_numpy(truth[known].astype(np.float64))
        elif self.task == "profile":
            x, y = x[:, known], torch.from_numpy(truth[known].astype(np.int64))
        else:
            y = torch.from_numpy(truth.astype(np.int64))
        seen_t = None if seen is None else torch.from_numpy(seen)
        params = torch.tensor(self.params, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([params], max_iter=100, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self._loss(params, x, y, seen_t)
            loss.backward()
            return loss

        opt.step(closure)
        self.params = params.detach().tolist()
        return self

    @torch.no_grad()
    def predict(self, preds: list[np.ndarray]) -> np.ndarray:
        """The combined prediction in the task's own format (ctr: probabilities;
        profile: class probabilities; next_item: scores, seen items not masked)."""
        out = self._output(torch.tensor(self.params, dtype=torch.float64), self._inputs(preds))
        if self.task == "ctr":
            out = torch.sigmoid(out)
        elif self.task == "profile":
            out = torch.exp(out)
        return out.numpy()
