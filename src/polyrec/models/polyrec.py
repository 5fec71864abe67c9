"""The shared multi-task model: item tower → user encoder → expert layer (one state per task;
none by default, see experts.py) → pair features → task heads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..tasks.ctr import CtrHead
from ..tasks.next_item import NextItemHead
from ..tasks.profile import ProfileHead
from ..tasks.rating import RatingHead
from ..train.sequences import HistoryBatch
from .engagement_autoencoder import EngagementAutoencoder, EngagementLogit, UserEngagementAutoencoder
from .experts import build_experts
from .history_profile import HistoryProfile
from .item_autoencoder import FoldedRows, ItemAutoencoder, UserRowProfile
from .item_neighbors import ItemNeighbors
from .item_prior import ItemPrior, blend_parts
from .item_raters import ItemRaters
from .item_tower import ItemTower
from .pair import PairEncoder
from .user_autoencoder import UserAutoencoder
from .user_encoder import UserEncoder

PAIR_TASKS = ("rating", "ctr")  # the tasks that score a (user, item) pair through PairEncoder

# A user index beyond every trained user: each part keyed by user (the autoencoders' rows, the
# kNN views, the profile views, the users' texts) reads it as a user it has no row for, so a
# history given ad hoc is read through the history alone. Small enough that a kNN view's
# (user × items + item) key cannot overflow.
UNKNOWN_USER = 2**31 - 1


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
    ctr_threshold: float | None = None  # the run's data.ctr_threshold; None: data without ratings
    repeat_items: bool = False  # the run's data.repeat_items: next item trains over the history too
    n_users: int = 0  # > 0 with model.item_raters > 0: the item-side view is on
    # Training ratings the item autoencoder reads (0: none is built; see models/item_autoencoder.py).
    autoencoder_ratings: int = 0
    # The autoencoder's user rows join the profile head (models/item_autoencoder.py); False in
    # a spec saved before they could, so such a model loads as it was trained.
    user_row_profile: bool = False
    # The tf-idf view of the user's training ratings joins the profile head
    # (models/history_profile.py); False in a spec saved before it could.
    history_profile: bool = False
    # Its regression is kept beside the training users' logits, so that a user given ad hoc
    # gets logits too (HistoryProfile.folded); False in a spec saved before it was.
    history_profile_weights: bool = False
    # True: the item (rating) autoencoder is built only for a model with the rating task, so a
    # model trained for ctr alone reads nothing fitted to ratings; False in a spec saved
    # before, where a ctr model without the rating task built one too.
    rating_task_autoencoder: bool = False
    # Code width of the user autoencoder mixed into the item autoencoder's deviation
    # (models/user_autoencoder.py), 0 = none: a spec saved before it existed loads without.
    user_autoencoder: int = 0
    # Code width of the engagement autoencoder added to the ctr logit
    # (models/engagement_autoencoder.py), 0 = none: a spec saved before it existed loads without.
    engagement_autoencoder: int = 0
    # The same for its user-side twin (UserEngagementAutoencoder), 0 = none.
    user_engagement_autoencoder: int = 0
    # Neighbours each pair reads in the item-kNN view joined to the ctr logit, and those each
    # item keeps (models/item_neighbors.py), 0 = none: a spec saved before it existed loads without.
    item_neighbors: int = 0
    item_neighbors_kept: int = 0
    text_neighbors: int = 0  # the same view with neighbours by text vectors, 0 = none
    # Weights kept per item by the item prior joined to next-item scores (models/item_prior.py),
    # 0 = none: fitted after fine-tuning, and only where it raised validation NDCG@10.
    item_prior_neighbors: int = 0
    # The same for the transition prior beside it (train/item_item_solves.py), 0 = none: a spec
    # saved before it existed loads without.
    transition_prior_neighbors: int = 0
    # Width of the users' text vectors (Dataset.user_vectors), None = users are not described
    # by text: a spec saved before they could be loads without.
    user_text_dim: int | None = None
    config: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class FoldedUsers:
    """What the parts fitted per trained user give users the model was not trained with,
    from their whole histories (``PolyRecModel.fold_in``): the item autoencoder's and its
    engagement twin's rows, the tf-idf profile view's logits and the kNN views' residuals
    (None, or left out, where the model has no such part or one saved before what it folds
    in from was kept)."""

    autoencoder: FoldedRows | None = None
    history_profile: dict[str, torch.Tensor] | None = None
    engagement: FoldedRows | None = None  # the item-side engagement autoencoder's
    # The kNN views' baseline residuals of each user over the catalogue, by view name.
    residuals: dict[str, torch.Tensor] = field(default_factory=dict)
    # (B,) for a history that is a trained user's (grown by live events): that user's index,
    # whose own rows the parts no history gives back read (the user-side engagement
    # autoencoder, the autoencoder's user-row profile view); UNKNOWN_USER where none. None: none.
    trained_as: torch.Tensor | None = None


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
    # Each task's view of ``states`` through the expert layer (models/experts.py); with
    # shared-bottom every entry is ``states`` itself. Gates: task → (B, L, E) softmax weights.
    task_states: dict[str, torch.Tensor] = field(default_factory=dict)
    gates: dict[str, torch.Tensor] = field(default_factory=dict)
    # What the parts fitted per trained user read for the batch's UNKNOWN_USERs (fold_in).
    folded: FoldedUsers | None = None

    def state(self, task: str) -> torch.Tensor:
        """(B, L, d) the states ``task`` reads."""
        return self.task_states.get(task, self.states)


class PolyRecModel(nn.Module):
    def __init__(self, spec: ModelSpec, text_vectors: torch.Tensor | None = None, user_vectors: torch.Tensor | None = None):
        super().__init__()
        cfg = spec.config
        self.spec = spec
        d, hidden = cfg.dim, 2 * cfg.dim
        if text_vectors is None and spec.text_dim is not None:
            text_vectors = torch.zeros(spec.n_items, spec.text_dim)  # filled by load_state_dict
        self.item_tower = ItemTower(spec.n_items, d, text_vectors, cfg.id_dropout, ids=cfg.item_ids, id_rank=cfg.item_id_rank)
        self.user_encoder = UserEncoder(
            d, cfg.layers, cfg.heads, cfg.max_history, spec.n_rating_tokens, cfg.dropout, cfg.attention_dropout
        )
        # Users described by text: each user's projected text vector is added to every token of
        # their history, so that attention, every task and a history of one item read it. A
        # frozen buffer like the items' text vectors; users without text (zero rows) and users
        # the model was not trained with add nothing (no bias).
        self.user_text: torch.Tensor | None
        self.user_text_projection: nn.Linear | None = None
        if spec.user_text_dim is not None and user_vectors is None:
            user_vectors = torch.zeros(spec.n_users, spec.user_text_dim)  # filled by load_state_dict
        self.register_buffer("user_text", None if spec.user_text_dim is None else user_vectors.float())
        if spec.user_text_dim is not None:
            with torch.random.fork_rng():  # every other layer starts as it would without it
                self.user_text_projection = nn.Linear(spec.user_text_dim, d, bias=False)
        self.pair = PairEncoder(d, rated_summary=cfg.rated_summary)
        pair_dim = self.pair.out_dim
        self.item_raters: ItemRaters | None = None
        if cfg.item_raters > 0 and spec.n_users > 0 and ("rating" in spec.tasks or "ctr" in spec.tasks):
            self.item_raters = ItemRaters(spec.n_users, spec.n_items, d, spec.n_rating_tokens, cfg.item_raters)
            pair_dim += d
        self.item_autoencoder: ItemAutoencoder | None = None
        rated = cfg.item_autoencoder > 0 and spec.autoencoder_ratings > 0
        if rated and ("rating" in spec.tasks or ("ctr" in spec.tasks and not spec.rating_task_autoencoder)):
            self.item_autoencoder = ItemAutoencoder(spec.n_users, spec.n_items, cfg.item_autoencoder, spec.autoencoder_ratings)
        self.user_autoencoder: UserAutoencoder | None = None
        if self.item_autoencoder is not None and spec.user_autoencoder > 0:
            self.user_autoencoder = UserAutoencoder(spec.n_users, spec.n_items, spec.user_autoencoder, spec.autoencoder_ratings)
        self.engagement_autoencoder: EngagementAutoencoder | None = None
        self.user_engagement_autoencoder: UserEngagementAutoencoder | None = None
        if rated and "ctr" in spec.tasks:
            # Drawn without moving the random state: every other layer starts as it would
            # without them, so a model with and one without differ by these views alone.
            with torch.random.fork_rng():
                if spec.engagement_autoencoder > 0:
                    self.engagement_autoencoder = EngagementAutoencoder(
                        spec.n_users, spec.n_items, spec.engagement_autoencoder, spec.autoencoder_ratings
                    )
                if spec.user_engagement_autoencoder > 0:
                    self.user_engagement_autoencoder = UserEngagementAutoencoder(
                        spec.n_users, spec.n_items, spec.user_engagement_autoencoder, spec.autoencoder_ratings
                    )

        def neighbors(k: int) -> ItemNeighbors | None:  # a kNN view reading k neighbours, 0 = none
            kept = spec.item_neighbors_kept
            return ItemNeighbors(spec.n_users, spec.n_items, spec.autoencoder_ratings, k, kept) if k > 0 else None

        counted = rated and "ctr" in spec.tasks
        self.item_neighbors = neighbors(spec.item_neighbors if counted else 0)
        self.text_neighbors = neighbors(spec.text_neighbors if counted and spec.text_dim is not None else 0)
        self.register_buffer("global_mean", torch.tensor(float(spec.global_mean)))
        # How the autoencoders join the ctr logit: a · head logit + b · the item autoencoder's
        # deviation + c, plus each ctr view's weight × its value (ctr_views); identity until
        # fit_join sets it on the validation pairs (None: the model has neither).
        joins_ctr = self.item_autoencoder is not None or bool(self.ctr_views())
        self.ctr_join: torch.Tensor | None
        self.register_buffer("ctr_join", torch.tensor([1.0, 0.0, 0.0]) if joins_ctr else None)
        heads: dict[str, nn.Module] = {}
        if "rating" in spec.tasks:
            heads["rating"] = RatingHead(pair_dim, hidden, spec.n_items, spec.global_mean, cfg.dropout)
        if "ctr" in spec.tasks:
            heads["ctr"] = CtrHead(pair_dim, hidden, spec.n_items, cfg.dropout)
        if "next_item" in spec.tasks:
            heads["next_item"] = NextItemHead(d, spec.n_items)
        if "profile" in spec.tasks and spec.attribute_classes:
            classes = {k: len(v) for k, v in spec.attribute_classes.items()}
            text_dim = 0 if text_vectors is None else text_vectors.shape[1]
            heads["profile"] = ProfileHead(
                d, hidden, spec.n_items, classes, cfg.dropout, cfg.profile_wide, text_dim, cfg.profile_text_rank
            )
        self.heads = nn.ModuleDict(heads)
        self.user_row_profile: UserRowProfile | None = None
        if spec.user_row_profile and self.item_autoencoder is not None and "profile" in heads:
            width = 2 * cfg.item_autoencoder
            self.user_row_profile = UserRowProfile(spec.n_users, width, {k: len(v) for k, v in spec.attribute_classes.items()})
        self.history_profile: HistoryProfile | None = None
        if spec.history_profile and "profile" in heads:
            classes = {k: len(v) for k, v in spec.attribute_classes.items()}
            self.history_profile = HistoryProfile(spec.n_users, classes, spec.n_items if spec.history_profile_weights else 0)
        self.item_prior: ItemPrior | None = None
        if spec.item_prior_neighbors > 0 and "next_item" in heads:
            self.item_prior = ItemPrior(spec.n_items, spec.item_prior_neighbors)
        self.transition_prior: ItemPrior | None = None
        if spec.transition_prior_neighbors > 0 and "next_item" in heads:
            self.transition_prior = ItemPrior(spec.n_items, spec.transition_prior_neighbors)
        # Shared-bottom (the default) has no parameters: the model is exactly the one without it.
        self.experts = build_experts(cfg.mtl, list(heads), d, cfg.dropout)

    def encode(
        self,
        batch: HistoryBatch,
        catalogue: torch.Tensor | None = None,
        user_vectors: torch.Tensor | None = None,
        folded: FoldedUsers | None = None,
    ) -> UserEncoding:
        """``catalogue``: the (I, d) ``item_tower.all_items()`` of a caller that encodes many
        batches in eval mode; history items are then looked up in it rather than built again
        token by token (the same vectors — ID dropout acts in training only — at a fraction of
        the cost where the text projection outweighs a small user encoder). ``user_vectors``:
        the (B, D) text vectors of users given ad hoc, in place of the trained users' (a model
        reading user text only); ``folded``: what the parts fitted per trained user give them
        (:meth:`fold_in`), which their rating, ctr and profile predictions need."""
        tokens = self._history_tokens(batch, catalogue, user_vectors)
        states = self.user_encoder(tokens)
        rated = ~torch.isnan(batch.ratings)
        centered = torch.where(rated, batch.ratings - self.global_mean, torch.zeros_like(batch.ratings))
        per_task = self.experts(states)
        return UserEncoding(
            batch.users, batch.items, tokens, states, batch.mask, batch.lengths, centered, rated & batch.mask,
            per_task.states, per_task.gates, folded,
        )

    @torch.no_grad()
    def fold_in(self, histories: HistoryBatch) -> FoldedUsers:
        """What the parts fitted per trained user give the users of ``histories`` read as
        users they were not trained with: the item autoencoder's and its engagement twin's
        rows (``fold_in`` of each), the tf-idf profile view's logits
        (``HistoryProfile.folded``) and the kNN views' residuals
        (``ItemNeighbors.new_users_residuals``). Give it the whole histories, not only the
        ``max_history`` the user encoder reads: these parts read every training rating of a
        known user."""
        nan = torch.full_like(histories.ratings, float("nan"))
        ratings = torch.where(histories.mask, histories.ratings, nan)
        labels = torch.where(histories.mask, histories.labels, nan)
        cfg, ae, view, ee = self.spec.config, self.item_autoencoder, self.history_profile, self.engagement_autoencoder
        rows = None if ae is None else ae.fold_in(histories.items, ratings - self.global_mean, cfg.item_autoencoder_l2)
        logits = None if view is None else view.folded(histories.items, ratings, histories.mask)
        engagement = None if ee is None else ee.fold_in(histories.items, labels, cfg.engagement_autoencoder_l2)
        residuals = {}
        for name in ("item_neighbors", "text_neighbors"):
            knn = getattr(self, name)
            counted = None if knn is None else knn.new_users_residuals(histories.items, ratings)
            if counted is not None:
                residuals[name] = counted
        return FoldedUsers(rows, logits, engagement, residuals)

    def _history_tokens(
        self, batch: HistoryBatch, catalogue: torch.Tensor | None, user_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L, d) the user encoder's input tokens of ``batch``'s histories."""
        if catalogue is not None and self.training:
            raise ValueError("encode(catalogue=...) is for eval mode: in training ID dropout draws per token")
        item_vecs = self.item_tower(batch.items) if catalogue is None else catalogue[batch.items]  # (B, L, d)
        tokens = self.user_encoder.tokens(item_vecs, batch.tokens)
        if self.user_text_projection is None:
            return tokens
        return self.with_user_text(tokens, self.user_text_of(batch.users) if user_vectors is None else user_vectors)

    def with_user_text(self, tokens: torch.Tensor, user_vectors: torch.Tensor) -> torch.Tensor:
        """(B, L, d) history ``tokens`` with each user's (B, D) text vector added to every
        token through the projection (zeros: no text). The model must read user text."""
        assert self.user_text_projection is not None
        return tokens + self.user_text_projection(user_vectors).unsqueeze(1)

    def user_text_of(self, users: torch.Tensor) -> torch.Tensor:
        """(B, D) ``users``' text vectors; zeros for users beyond the trained ones (a new user
        in serving) or without text."""
        assert self.user_text is not None
        known = (users >= 0) & (users < len(self.user_text))
        rows = self.user_text[users.clamp(0, max(len(self.user_text) - 1, 0))]
        return torch.where(known.unsqueeze(-1), rows, torch.zeros_like(rows))

    def task_state(self, states: torch.Tensor, task: str) -> torch.Tensor:
        """(B, L, d) encoder states → the states ``task`` reads (for callers that run the user
        encoder themselves rather than ``encode``)."""
        return self.experts(states).states.get(task, states)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters that more than one task reads (what PCGrad projects)."""
        owned = {id(p) for t in self.heads for m in [self.heads[t], *self.experts.task_modules(t)] for p in m.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in owned]

    def last_shared_layer(self) -> torch.Tensor:
        """The weight of the last layer every task's gradient flows through (where GradNorm
        measures): the user encoder's last feed-forward output projection."""
        if len(self.user_encoder.blocks) == 0:
            return self.user_encoder.ln.weight
        return self.user_encoder.blocks[-1].mlp[-1].weight

    def pair_features(
        self, enc: UserEncoding, target_items: torch.Tensor, visible: torch.Tensor, state_index: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(B, T) targets, each reading the history positions ``visible`` (B, T, L) → per pair
        task (rating, ctr), (B, T, F) features built from that task's own user state.

        Tasks that read the same state (shared-bottom) share one tensor.
        """
        ctx = self.pair.context(enc.tokens, enc.rating_centered, enc.rated, self.item_tower(target_items), visible)
        item_side = None if self.item_raters is None else self.item_raters(enc.users, ctx.summary, target_items)
        out: dict[str, torch.Tensor] = {}
        built: dict[int, torch.Tensor] = {}
        for task in (t for t in PAIR_TASKS if t in self.heads):
            state = enc.state(task)
            if id(state) not in built:
                features = self.pair.features(ctx, state, state_index)
                if item_side is not None:
                    # The rating deviation stays the last feature (RatingHead reads it there).
                    features = torch.cat([features[..., :-1], item_side, features[..., -1:]], dim=-1)
                built[id(state)] = features
            out[task] = built[id(state)]
        return out

    def history_pair_features(self, enc: UserEncoding, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training features for the history items at ``positions`` (T,) as targets: per pair
        task, (B, T, F).

        Leave-one-out: target t reads all other items of the history and the causal state
        before t, so its own rating never reaches its input.
        """
        B, L = enc.items.shape
        itself = positions.view(1, -1, 1) == torch.arange(L).view(1, 1, L)  # (1, T, L)
        visible = enc.mask.unsqueeze(1) & ~itself  # (B, T, L)
        state_index = (positions - 1).unsqueeze(0).expand(B, -1)
        return self.pair_features(enc, enc.items[:, positions], visible, state_index)

    def pair_outputs(self, enc: UserEncoding, target_items: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rating and engagement *logit* of (B, T) items given each user's whole history, joined
        with the autoencoders' where the model has them."""
        T = target_items.shape[1]
        visible = enc.mask.unsqueeze(1).expand(-1, T, -1)
        state_index = (enc.lengths - 1).unsqueeze(1).expand(-1, T)
        pair = self.pair_features(enc, target_items, visible, state_index)
        out = {task: self.heads[task](pair[task], target_items) for task in PAIR_TASKS if task in self.heads}
        return self.join_autoencoder(enc.users.unsqueeze(1).expand(-1, T), target_items, out, folded=enc.folded)

    def join_autoencoder(
        self, users: torch.Tensor, items: torch.Tensor, outputs: dict[str, torch.Tensor], own_ratings: torch.Tensor | None = None,
        folded: FoldedUsers | None = None,
    ) -> dict[str, torch.Tensor]:
        """The heads' ``outputs`` (rating, ctr logit) of (users, items) pairs joined with the
        item autoencoder's deviation, and the ctr logit with the engagement autoencoders' where
        the model has them: the model's whole prediction (unchanged without them).
        ``own_ratings`` (NaN: none), for training pairs the heads read leave-one-out: each
        pair's own rating is left out of its item's code too, so the result is what the
        model predicts for a pair it did not see.

        A user it was not trained with (``UNKNOWN_USER``, (B, T) ``users`` a row per user)
        reads the item autoencoder, the item-side engagement autoencoder and the kNN views
        through what is ``folded`` in from their history (``fold_in``). The user-side
        engagement autoencoder has no row for such a user and adds nothing: its fallback for
        a user without a row (an item bias) is no engagement logit of this user, and the
        fallbacks joined at the weights fitted for known users lowered validation ctr AUC on
        every seed of MovieLens-100K (docs/results/cold-users.md). Where the history is a
        trained user's (``folded.trained_as``, live events), it reads that user's rows."""
        if self.ctr_join is None:  # neither an item autoencoder nor a ctr view
            return outputs
        ae, views = self.item_autoencoder, self.ctr_views()
        unknown = users == UNKNOWN_USER
        # Every autoencoder reads the same training ratings, so any of them turns ratings into
        # inputs (the kNN views read none: an item is never its own neighbour).
        fitted = self.autoencoders()
        own = None if own_ratings is None or not fitted else fitted[0].inputs(own_ratings)
        d = None if ae is None else self.autoencoder_deviation(users, items, own)
        cold = bool(unknown.any())
        if cold and folded is None:
            raise ValueError("pairs of users the model was not trained with need their rows folded in (encode a history)")
        if d is not None and cold:  # (a user autoencoder beside it has no row to mix in)
            d = torch.where(unknown, ae.folded_deviation(folded.autoencoder, items), d)
        out = dict(outputs)
        if ae is not None and "rating" in out:
            out["rating"] = ae.join_rating(out["rating"], d, self.global_mean)
        if "ctr" in out:
            a, b, c = self.ctr_join
            logit = a * out["ctr"] + c if d is None else a * out["ctr"] + b * d + c
            for name, view in views.items():
                joined = view.joined(logit, users, items, own)
                if cold:  # a new user: the views folded in, the others nothing
                    joined = torch.where(unknown, logit + view.weight * self._folded_view(name, folded, items), joined)
                logit = joined
            out["ctr"] = logit
        return out

    def _folded_view(self, name: str, folded: FoldedUsers, items: torch.Tensor) -> torch.Tensor:
        """(B, T) ctr view ``name``'s value of ``items`` for the users of ``folded``: the
        engagement autoencoder's through its folded rows, a kNN view's through the users'
        residuals, the user-side engagement autoencoder's through the rows of the trained user a
        history is (``trained_as``), 0 for a view with nothing folded in (the user-side
        autoencoder of a new user, or a part saved before what it folds in from was kept)."""
        ee, ue = self.engagement_autoencoder, self.user_engagement_autoencoder
        if name == "engagement" and ee is not None and folded.engagement is not None:
            return ee.folded_deviation(folded.engagement, items)
        if name in folded.residuals:
            return getattr(self, name).folded(folded.residuals[name], items)
        if name == "user_engagement" and ue is not None and folded.trained_as is not None:
            users = folded.trained_as.unsqueeze(1).expand_as(items)
            trained = users != UNKNOWN_USER
            return torch.where(trained, ue(torch.where(trained, users, torch.zeros_like(users)), items), torch.zeros(items.shape))
        return torch.zeros(items.shape)

    def autoencoders(self) -> list[ItemAutoencoder]:
        """The model's autoencoders (each fitted on its own before fine-tuning), in fitting order."""
        rating_views = [ae for ae in (self.item_autoencoder, self.user_autoencoder) if ae is not None]
        return rating_views + list(self.engagement_views().values())

    def engagement_views(self) -> dict[str, EngagementAutoencoder | UserEngagementAutoencoder]:
        """The engagement autoencoders the model has, by the name their metrics carry."""
        views = {"engagement": self.engagement_autoencoder, "user_engagement": self.user_engagement_autoencoder}
        return {name: view for name, view in views.items() if view is not None}

    def ctr_views(self) -> dict[str, EngagementLogit]:
        """Every view whose logit joins the ctr logit at a weight of its own: the engagement
        autoencoders and the kNN views, by the name their metrics carry."""
        views: dict[str, EngagementLogit] = dict(self.engagement_views())
        for name in ("item_neighbors", "text_neighbors"):
            if getattr(self, name) is not None:
                views[name] = getattr(self, name)
        return views

    def autoencoder_deviation(self, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        """The deviation from the global mean that joins rating and ctr: the item
        autoencoder's, mixed with the user autoencoder's where the model has one (``own``:
        as ``ItemAutoencoder.forward``). The model must have an item autoencoder."""
        d = self.item_autoencoder(users, items, own=own)
        if self.user_autoencoder is None:
            return d
        return self.user_autoencoder.mix(d, self.user_autoencoder(users, items, own=own))

    def predict_pairs(self, enc: UserEncoding, target_items: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rating and engagement probability of (B, T) items given each user's whole history."""
        out = self.pair_outputs(enc, target_items)
        if "ctr" in out:
            out["ctr"] = torch.sigmoid(out["ctr"])
        return out

    def last_state(self, batch: HistoryBatch, catalogue: torch.Tensor | None = None, task: str = "next_item") -> torch.Tensor:
        """(B, d) ``task``'s state after each user's whole history: ``encode(batch,
        catalogue).state(task)`` at position ``length − 1``, with the user encoder's last block
        run at that one position rather than at every position of the history."""
        tokens = self._history_tokens(batch, catalogue)
        state = self.user_encoder.forward_at(tokens, (batch.lengths - 1).clamp(min=0))
        return self.task_state(state.unsqueeze(1), task).squeeze(1)

    def score_catalogue(self, batch: HistoryBatch, item_vecs: torch.Tensor | None = None) -> torch.Tensor:
        """(B, I) next-item scores after each user's whole history: the head's, or with an item
        prior, its blend with them (standardised per user; only their order means anything)."""
        if item_vecs is None:
            item_vecs = self.item_tower.all_items()
        scores = self.heads["next_item"](self.last_state(batch, item_vecs), item_vecs)
        return self.blend_priors(scores, batch.items, batch.mask)

    def priors(self) -> list[ItemPrior]:
        """The next-item priors the model joins (none, the item prior, or it and the transition prior)."""
        return [prior for _, prior in self.named_priors()]

    def named_priors(self) -> list[tuple[str, ItemPrior]]:
        """:meth:`priors` with their names ("item_prior", "transition_prior"), in blend order."""
        return [(name, prior) for name in ("item_prior", "transition_prior") if (prior := getattr(self, name)) is not None]

    def blend_priors(
        self, scores: torch.Tensor, items: torch.Tensor, mask: torch.Tensor, ends: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, I) next-item ``scores`` of (B, L) histories (as ``ItemPrior.history_scores``
        reads them) blended with the model's priors; unchanged without any."""
        priors = self.priors()
        if not priors:
            return scores
        return blend_parts(scores, [(p.history_scores(items, mask, ends), float(p.share)) for p in priors])

    def attach_item_prior(
        self, sources: np.ndarray, weights: np.ndarray, share: float, decay: float = 1.0, part: str = "item_prior"
    ) -> None:
        """Join a next-item prior (``sources``, ``weights``: (I, k), train/item_prior_fit.py)
        to the next-item scores at ``share``, reading history items at ``decay`` per step back:
        ``part`` "item_prior" (EASE) or "transition_prior". The spec records it, so a saved
        model loads with it."""
        if part not in ("item_prior", "transition_prior"):
            raise ValueError(f"unknown prior part {part!r}; parts: item_prior, transition_prior")
        prior = ItemPrior(self.spec.n_items, sources.shape[1])
        prior.set(sources, weights, share, decay)
        setattr(self, part, prior)
        setattr(self.spec, f"{part}_neighbors", int(sources.shape[1]))

    def profile_logits(self, enc: UserEncoding) -> dict[str, torch.Tensor]:
        logits = self.heads["profile"](enc.state("profile"), enc.items, enc.rating_centered, enc.mask, self.pooled_text(enc))
        # The views fitted after fine-tuning add their logits (zeros where not kept).
        if self.user_row_profile is not None and self.item_autoencoder is not None:
            users = enc.users
            if enc.folded is not None and enc.folded.trained_as is not None:  # a trained user's grown history: their rows
                users = torch.where(users == UNKNOWN_USER, enc.folded.trained_as, users)
            extra = self.user_row_profile(users, self.item_autoencoder.user_rows())
            logits = {k: v + extra[k] for k, v in logits.items()}
        if self.history_profile is not None:
            extra = self.history_profile(enc.users)
            cold = None if enc.folded is None else enc.folded.history_profile
            if cold is not None:  # users given ad hoc: the logits their histories give
                unknown = (enc.users == UNKNOWN_USER).unsqueeze(-1)
                extra = {k: torch.where(unknown, cold[k], v) for k, v in extra.items()}
            logits = {k: v + extra[k] for k, v in logits.items()}
        return logits

    def pooled_text(self, enc: UserEncoding) -> torch.Tensor | None:
        """(B, D_text) mean language-model vector of each user's history, each dimension
        standardised over the catalogue (None when the profile head has no text part)."""
        head = self.heads["profile"] if "profile" in self.heads else None
        tower = self.item_tower
        if head is None or head.text is None or tower.text is None:
            return None
        m = enc.mask.float().unsqueeze(-1)
        mean = (tower.text[enc.items] * m).sum(1) / m.sum(1).clamp(min=1.0)
        return (mean - tower.text_mean) / tower.text_std
