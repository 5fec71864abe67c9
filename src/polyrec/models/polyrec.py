"""The shared multi-task model: item tower → user encoder → pair features → task heads."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ModelConfig
from ..tasks.ctr import CtrHead
from ..tasks.next_item import NextItemHead
from ..tasks.profile import ProfileHead
from ..tasks.rating import RatingHead
from ..train.sequences import HistoryBatch
from .item_tower import ItemTower
from .item_raters import ItemRaters
from .pair import PairEncoder
from .user_encoder import UserEncoder


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model's shape; saved beside its weights."""

    n_items: int
    tasks: list[str]
    n_rating_tokens: int
    global_mean: float = 0.0
    text_dim: int | None = None
    attribute_classes: dict[str, list[str]] = field(default_factory=dict)
    rating_levels: list[float] = field(default_factory=list)  # see train.sequences.RatingTokens
    labels_only: bool = False
    rating_range: tuple[float, float] | None = None
    ctr_threshold: float = 4.0
    n_users: int = 0  # > 0 with model.item_raters > 0: the item-side view is on
    config: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class UserEncoding:
    """A batch of encoded histories."""

    users: torch.Tensor  # (B,)
    items: torch.Tensor  # (B, L)
    tokens: torch.Tensor  # (B, L, d) inputs before mixing
    states: torch.Tensor  # (B, L, d) causal states
    mask: torch.Tensor  # (B, L)
    lengths: torch.Tensor  # (B,)
    rating_centered: torch.Tensor  # (B, L) rating − μ, 0 where none
    rated: torch.Tensor  # (B, L) bool

    def last_state(self) -> torch.Tensor:
        """(B, d) state after the whole history."""
        idx = (self.lengths - 1).clamp(min=0)
        return self.states[torch.arange(len(idx)), idx]


class PolyRecModel(nn.Module):
    def __init__(self, spec: ModelSpec, text_vectors: torch.Tensor | None = None):
        super().__init__()
        cfg = spec.config
        self.spec = spec
        d, hidden = cfg.dim, 2 * cfg.dim
        if text_vectors is None and spec.text_dim is not None:
            text_vectors = torch.zeros(spec.n_items, spec.text_dim)  # filled by load_state_dict
        self.item_tower = ItemTower(spec.n_items, d, text_vectors, cfg.id_dropout)
        self.user_encoder = UserEncoder(d, cfg.layers, cfg.heads, cfg.max_history, spec.n_rating_tokens, cfg.dropout)
        self.pair = PairEncoder(d)
        pair_dim = self.pair.out_dim
        self.item_raters: ItemRaters | None = None
        if cfg.item_raters > 0 and spec.n_users > 0 and ("rating" in spec.tasks or "ctr" in spec.tasks):
            self.item_raters = ItemRaters(spec.n_users, spec.n_items, d, spec.n_rating_tokens, cfg.item_raters)
            pair_dim += d
        self.register_buffer("global_mean", torch.tensor(float(spec.global_mean)))
        heads: dict[str, nn.Module] = {}
        if "rating" in spec.tasks:
            heads["rating"] = RatingHead(pair_dim, hidden, spec.n_items, spec.global_mean, cfg.dropout)
        if "ctr" in spec.tasks:
            heads["ctr"] = CtrHead(pair_dim, hidden, spec.n_items, cfg.dropout)
        if "next_item" in spec.tasks:
            heads["next_item"] = NextItemHead(d, spec.n_items)
        if "profile" in spec.tasks and spec.attribute_classes:
            classes = {k: len(v) for k, v in spec.attribute_classes.items()}
            heads["profile"] = ProfileHead(d, hidden, spec.n_items, classes, cfg.dropout)
        self.heads = nn.ModuleDict(heads)

    def encode(self, batch: HistoryBatch) -> UserEncoding:
        item_vecs = self.item_tower(batch.items)  # (B, L, d)
        tokens = self.user_encoder.tokens(item_vecs, batch.tokens)
        states = self.user_encoder(tokens)
        rated = ~torch.isnan(batch.ratings)
        centered = torch.where(rated, batch.ratings - self.global_mean, torch.zeros_like(batch.ratings))
        return UserEncoding(batch.users, batch.items, tokens, states, batch.mask, batch.lengths, centered, rated & batch.mask)

    def pair_features(
        self, enc: UserEncoding, target_items: torch.Tensor, visible: torch.Tensor, state_index: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) targets, each reading the history positions ``visible`` (B, T, L) → (B, T, F)."""
        features = self.pair(
            enc.tokens, enc.states, enc.rating_centered, enc.rated, self.item_tower(target_items), visible, state_index
        )
        if self.item_raters is None:
            return features
        summary = PairEncoder.summary_of(features, self.spec.config.dim)
        item_side = self.item_raters(enc.users, summary, target_items)
        # The rating deviation stays the last feature (RatingHead reads it there).
        return torch.cat([features[..., :-1], item_side, features[..., -1:]], dim=-1)

    def history_pair_features(self, enc: UserEncoding, positions: torch.Tensor) -> torch.Tensor:
        """Training features for the history items at ``positions`` (T,) as targets: (B, T, F).

        Leave-one-out: target t reads all other items of the history and the causal state
        before t, so its own rating never reaches its input.
        """
        B, L = enc.items.shape
        itself = positions.view(1, -1, 1) == torch.arange(L).view(1, 1, L)  # (1, T, L)
        visible = enc.mask.unsqueeze(1) & ~itself  # (B, T, L)
        state_index = (positions - 1).unsqueeze(0).expand(B, -1)
        return self.pair_features(enc, enc.items[:, positions], visible, state_index)

    def predict_pairs(self, enc: UserEncoding, target_items: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rating and engagement probability of (B, T) items given each user's whole history."""
        T = target_items.shape[1]
        visible = enc.mask.unsqueeze(1).expand(-1, T, -1)
        state_index = (enc.lengths - 1).unsqueeze(1).expand(-1, T)
        pair = self.pair_features(enc, target_items, visible, state_index)
        out: dict[str, torch.Tensor] = {}
        if "rating" in self.heads:
            out["rating"] = self.heads["rating"](pair, target_items)
        if "ctr" in self.heads:
            out["ctr"] = torch.sigmoid(self.heads["ctr"](pair, target_items))
        return out

    def score_catalogue(self, enc: UserEncoding, item_vecs: torch.Tensor | None = None) -> torch.Tensor:
        """(B, I) next-item scores after each user's whole history."""
        if item_vecs is None:
            item_vecs = self.item_tower.all_items()
        return self.heads["next_item"](enc.last_state(), item_vecs)

    def profile_logits(self, enc: UserEncoding) -> dict[str, torch.Tensor]:
        return self.heads["profile"](enc.states, enc.items, enc.rating_centered, enc.mask)
