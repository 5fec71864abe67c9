"""Recipe: self-supervised pretraining of the item tower and user encoder on interactions alone.

Read top to bottom: which interactions → batches of item sequences (augmented views for the
contrastive objective) → the weighted sum of the objectives of ``pretrain_objectives.py`` →
a checkpoint → the fine-tuned model starts from it (``init_from_pretraining``).

Which interactions (the rule): for protocol P and seed s, pretraining reads the item
sequences of the *training side* of the very split fine-tuning is then evaluated on
(``ProtocolData.train``): never a valid or test interaction, and never a rating, label or
attribute (only ``Histories.items`` is read). So a checkpoint belongs to one protocol and
seed, and ``polyrec pretrain`` writes one per pair: ``<out>/<P>/seed<s>/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import yaml

from ..config import ModelConfig, MtlConfig, PretrainConfig, RunConfig
from ..models.io import load_model, save_model
from ..models.polyrec import ModelSpec, PolyRecModel
from ..progress import bar as progress_bar
from ..text.adapter import TextAdapter
from .pretrain_objectives import (
    PretrainExtras,
    contrastive_loss,
    mim_loss,
    sample_mask,
    text_id_loss,
)
from .protocol_data import ProtocolData
from .rating_tokens import NO_RATING_TOKEN, PAD_TOKEN, RatingTokens
from .sequences import length_bucketed_batches

INFO = "pretrain.yaml"
REORDER = 0.3  # share of a history a "reorder" view shuffles (one contiguous stretch)
# The modules a checkpoint carries into fine-tuning; heads and experts start fresh.
PRETRAINED_MODULES = ("item_tower.", "user_encoder.")


@dataclass
class PretrainResult:
    curves: dict[str, list[float]]  # objective (and "total") → mean training loss per epoch
    seconds: float
    notes: list[str] = field(default_factory=list)


def active_objectives(cfg: PretrainConfig, has_text: bool, has_ids: bool = True) -> tuple[dict[str, float], list[str]]:
    """The objectives with a weight > 0 that the run can compute, and why any is skipped."""
    weights = {k: w for k, w in cfg.objectives.items() if w > 0}
    notes = []
    if "text_id" in weights and not (has_text and has_ids):
        del weights["text_id"]
        lacks = "item text vectors" if not has_text else "item ID embeddings (model.item_ids: false)"
        notes.append(f"pretraining objective 'text_id' skipped: the run has no {lacks}")
    return weights, notes


def pretrain_model(n_items: int, text_vectors: np.ndarray | None, cfg: ModelConfig) -> PolyRecModel:
    """The model pretraining trains: item tower + user encoder (no task heads, no experts),
    with neutral rating tokens only."""
    spec = ModelSpec(
        n_items=n_items,
        tasks=[],
        n_rating_tokens=RatingTokens(()).n_tokens,
        text_dim=None if text_vectors is None else int(text_vectors.shape[1]),
        config=replace(cfg, mtl=MtlConfig()),
    )
    return PolyRecModel(spec, None if text_vectors is None else torch.from_numpy(text_vectors))


def pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) items, (B, L) bool real positions, (B,) lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    items = np.zeros((len(seqs), max(1, lengths.max())), dtype=np.int64)
    for b, s in enumerate(seqs):
        items[b, : len(s)] = s
    mask = np.arange(items.shape[1])[None, :] < lengths[:, None]
    return torch.from_numpy(items), torch.from_numpy(mask), torch.from_numpy(lengths)


def augment(seq: np.ndarray, cfg: PretrainConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random view of a history: crop (a contiguous share in [crop, 1]), mask (each item
    → [MASK] with ``mask_prob``) or reorder (shuffle one stretch of ``REORDER`` of it).
    Returns the items and the bool [MASK] flags."""
    n, kind = len(seq), rng.integers(3)
    masked = np.zeros(n, dtype=bool)
    if kind == 0:
        k = max(1, round(rng.uniform(cfg.crop, 1.0) * n))
        s = int(rng.integers(n - k + 1))
        return seq[s : s + k], masked[:k]
    if kind == 1:
        return seq, rng.random(n) < cfg.mask_prob
    k = max(2, round(REORDER * n))
    s = int(rng.integers(max(1, n - k + 1)))
    out = seq.copy()
    out[s : s + k] = rng.permutation(out[s : s + k])
    return out, masked


def view_batch(seqs: list[np.ndarray], cfg: PretrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """(items, mask, masked, lengths) of one augmented view of each sequence."""
    views = [augment(s, cfg, rng) for s in seqs]
    items, mask, lengths = pad([v[0] for v in views])
    masked = torch.zeros_like(mask)
    for b, (_, m) in enumerate(views):
        masked[b, : len(m)] = torch.from_numpy(m)
    return items, mask, masked, lengths


def batch_losses(
    model: PolyRecModel,
    extras: PretrainExtras,
    seqs: list[np.ndarray],
    cfg: PretrainConfig,
    weights: dict[str, float],
    rng: np.random.Generator,
    gen: torch.Generator,
    adapter: TextAdapter | None = None,
) -> dict[str, torch.Tensor]:
    """Each active objective's loss on one batch of item sequences (no ratings anywhere);
    with ``adapter``, text–ID alignment reads its items' vectors from the encoder being adapted."""
    items, mask, _ = pad(seqs)
    losses: dict[str, torch.Tensor] = {}
    # Masked item modelling scores the whole catalogue, so it projects every item's text: the
    # histories (its own and the contrastive views) take rows of that one projection
    # (ItemTower.catalogue_text_once) instead of projecting their own copies.
    once = "mim" in weights and model.item_tower.text_proj is not None
    with model.item_tower.catalogue_text_once() if once else nullcontext():
        if "mim" in weights:
            masked = sample_mask(mask, cfg.mask_prob, gen)
            if masked.any():
                losses["mim"] = mim_loss(model, extras, items, mask, masked)
        if "contrastive" in weights and len(seqs) > 1:
            views = (view_batch(seqs, cfg, rng), view_batch(seqs, cfg, rng))
            losses["contrastive"] = contrastive_loss(model, extras, views, cfg.temperature)
    if "text_id" in weights:
        taken = torch.unique(items[mask])
        if adapter is None:
            losses["text_id"] = text_id_loss(model, taken, cfg.temperature)
        else:  # the encoder runs in the step: a sample of the batch's items keeps it affordable
            taken = taken[torch.randperm(len(taken), generator=gen)[: cfg.adapt_items]]
            losses["text_id"] = text_id_loss(model, taken, cfg.temperature, adapter(taken))
    return losses


def training_sequences(data: ProtocolData, max_len: int) -> list[np.ndarray]:
    """Per user, the item sequence pretraining reads: the split's training side, items only
    (most recent ``max_len``)."""
    return [np.asarray(x[-max_len:], dtype=np.int64) for x in data.train.items]


def pretrain(
    model: PolyRecModel,
    seqs: list[np.ndarray],
    cfg: PretrainConfig,
    seed: int,
    shuffle: bool = False,
    progress: bool = True,
    adapter: TextAdapter | None = None,
) -> PretrainResult:
    """Train ``model``'s item tower and user encoder on ``seqs`` (per user, item indices) for
    ``cfg.epochs`` epochs. ``shuffle``: each history in a random order every step (protocol A,
    where order carries no signal). ``adapter``: the sentence encoder being adapted
    (``pretrain.adapt_text``); after each epoch it re-encodes the catalogue into the model."""
    torch.manual_seed(seed)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    weights, notes = active_objectives(cfg, model.item_tower.text_proj is not None, model.item_tower.ids is not None)
    if adapter is not None and "text_id" not in weights:
        notes.append("pretrain.adapt_text: nothing adapted, the text_id objective is off")
        adapter = None
    extras = PretrainExtras(model.spec.config.dim)
    params = [p for m in (model.item_tower, model.user_encoder, extras) for p in m.parameters()]
    groups = [{"params": params}]
    if adapter is not None:
        groups.append({"params": adapter.trainable(), "lr": cfg.adapt_lr})
        params = params + adapter.trainable()
        adapter.train()
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.01)
    lengths = np.array([len(s) for s in seqs])
    users = np.flatnonzero(lengths > 1)
    curves: dict[str, list[float]] = {}
    start = time.perf_counter()
    model.train()
    for _ in progress_bar(range(cfg.epochs if weights else 0), "pretrain", progress):
        sums: dict[str, float] = {}
        batches = length_bucketed_batches(users, lengths, cfg.batch_size, rng)
        for batch_users in batches:
            batch = [rng.permutation(seqs[u]) if shuffle else seqs[u] for u in batch_users]
            losses = batch_losses(model, extras, batch, cfg, weights, rng, gen, adapter)
            if not losses:
                continue
            total = sum(weights[k] * v for k, v in losses.items())
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            for k, v in {**losses, "total": total}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
        for k, v in sums.items():
            curves.setdefault(k, []).append(v)
        if adapter is not None:
            # The other objectives (and fine-tuning, after the last epoch) read the cached
            # vectors: bring them up to date with the adapted encoder. A new tensor, not an
            # in-place copy: the old one is shared with the run's vectors for other splits.
            model.item_tower.text = torch.from_numpy(adapter.encode_all())
    model.eval()
    return PretrainResult(curves, time.perf_counter() - start, notes)


# ---------------------------------------------------------------- checkpoints


def checkpoint_folder(root: str | Path, protocol: str, seed: int) -> Path:
    return Path(root) / protocol / f"seed{seed}"


def save_checkpoint(model: PolyRecModel, folder: Path, info: dict) -> None:
    """Weights + spec (``models/io.py``) and ``pretrain.yaml``: protocol, seed, data, losses."""
    save_model(model, folder)
    (folder / INFO).write_text(yaml.safe_dump(info, sort_keys=False))


def load_checkpoint(root: str | Path, protocol: str, seed: int, deploy: bool = False) -> PolyRecModel:
    """The checkpoint ``polyrec pretrain`` wrote for ``protocol`` and ``seed`` under ``root``,
    for a run for deployment (``deploy``) or not: a checkpoint pretrained for deployment read
    the test side, which a measuring run must never start from."""
    folder = checkpoint_folder(root, protocol, seed)
    if not (folder / INFO).is_file():
        raise FileNotFoundError(
            f"{folder / INFO}: missing; `polyrec pretrain --out {root}` writes one checkpoint per protocol and "
            f"seed (it must cover protocol {protocol}, seed {seed})"
        )
    info = yaml.safe_load((folder / INFO).read_text())
    if (info.get("protocol"), info.get("seed")) != (protocol, seed):
        raise ValueError(f"{folder}: pretrained for protocol {info.get('protocol')} seed {info.get('seed')}, not {protocol} seed {seed}")
    if info.get("deploy", False) and not deploy:
        raise ValueError(f"{folder}: pretrained for deployment (data.deploy: on the test side too); a measuring run cannot start from it")
    return load_model(folder)


def transfer(pretrained: PolyRecModel, model: PolyRecModel) -> None:
    """Copy the pretrained item tower and user encoder into ``model`` (heads stay fresh).

    Pretraining saw the neutral rating token only: every rating token of ``model`` starts as
    that neutral embedding (padding keeps its own), so before fine-tuning the encoder computes
    exactly what was pretrained, and the rating embeddings then learn apart.
    """
    a, b = pretrained.spec, model.spec
    for name, x, y in (
        ("items", a.n_items, b.n_items),
        ("text dimension", a.text_dim, b.text_dim),
        *((f"model.{k}", getattr(a.config, k), getattr(b.config, k)) for k in ("dim", "layers", "heads", "max_history")),
    ):
        if x != y:
            raise ValueError(f"pretrained checkpoint does not fit the model: {name} {x} vs {y}")
    src, dst = pretrained.state_dict(), model.state_dict()
    rating = "user_encoder.rating_emb.weight"
    for k, v in src.items():
        if k.startswith(PRETRAINED_MODULES) and k != rating:
            dst[k] = v.clone()
    rows = src[rating][NO_RATING_TOKEN].expand_as(dst[rating]).clone()  # (n_rating_tokens, d)
    rows[PAD_TOKEN] = src[rating][PAD_TOKEN]
    dst[rating] = rows
    model.load_state_dict(dst)


def text_adapter(cfg: RunConfig, item_texts: list[str] | None) -> TextAdapter | None:
    """The sentence encoder to adapt during pretraining, if ``pretrain.adapt_text`` asks for one."""
    p = cfg.pretrain
    if p.adapt_text == "none" or not cfg.text.enabled:
        return None
    if item_texts is None:
        raise ValueError("pretrain.adapt_text needs the items' texts")
    return TextAdapter(cfg.text.encoder, item_texts, p.adapt_text, p.adapt_layers, p.lora_rank, cfg.text.cache_dir, cfg.text.max_tokens)


def init_from_pretraining(
    model: PolyRecModel,
    data: ProtocolData,
    cfg: RunConfig,
    text_vectors: np.ndarray | None,
    progress: bool = True,
    item_texts: list[str] | None = None,
) -> float | None:
    """Start ``model`` from pretraining as ``cfg.pretrain`` says: a checkpoint (``init``), or
    pretraining now on ``data``'s training side (``enabled``). Returns the pretraining seconds
    (0 from a checkpoint), None when the model starts fresh (the default)."""
    p = cfg.pretrain
    if p.init and p.enabled:
        raise ValueError("pretrain.init (--init) and pretrain.enabled (--pretrain) both set: choose one")
    if p.init:
        transfer(load_checkpoint(p.init, data.protocol, data.seed, data.deploy), model)
        return 0.0
    if not p.enabled:
        return None
    pre = pretrain_model(model.spec.n_items, text_vectors, cfg.model)
    shuffle = cfg.train.shuffle_history_in_a and data.protocol == "A"
    adapter = text_adapter(cfg, item_texts)
    result = pretrain(pre, training_sequences(data, cfg.model.max_history), p, data.seed, shuffle, progress, adapter)
    transfer(pre, model)  # with adaptation, the adapted catalogue vectors travel in the item tower
    return result.seconds


def pretrain_run(cfg: RunConfig, out: str | Path, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """`polyrec pretrain`: one checkpoint per protocol and seed of ``cfg`` under ``out``."""
    from ..pipeline import item_text_vectors, item_texts, load_configured_dataset
    from .protocol_data import prepare_configured

    out = Path(out)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    ds = load_configured_dataset(cfg)
    text_vectors = item_text_vectors(ds, cfg, progress)
    texts = item_texts(ds) if text_vectors is not None else None
    for seed in cfg.seeds:
        for protocol in cfg.protocols:
            data = prepare_configured(ds, protocol, seed, cfg, profile=False)
            seqs = training_sequences(data, cfg.model.max_history)
            model = pretrain_model(ds.n_items, text_vectors, cfg.model)
            shuffle = cfg.train.shuffle_history_in_a and protocol == "A"
            adapter = text_adapter(cfg, texts)
            result = pretrain(model, seqs, cfg.pretrain, seed, shuffle, progress, adapter)
            info = {
                "protocol": protocol,
                "seed": seed,
                "data": cfg.data.path or cfg.data.dataset,
                "interactions": "training side of the split (no valid/test interaction, no rating/label/attribute)"
                if not cfg.data.deploy else "training side of the deployment split (its test side too; no valid interaction, no rating/label/attribute)",
                "deploy": cfg.data.deploy,
                "users": int(sum(len(s) > 1 for s in seqs)),
                "n_interactions": int(sum(len(s) for s in seqs)),
                "objectives": cfg.pretrain.objectives,
                "seconds": round(result.seconds, 2),
                "curves": result.curves,
                "notes": result.notes,
            }
            save_checkpoint(model, checkpoint_folder(out, protocol, seed), info)
            total = result.curves.get("total", [float("nan")])[-1]
            log(f"pretrain: protocol {protocol} seed {seed}: {result.seconds:.0f} s, final loss {total:.4f}")
            for note in result.notes:
                log(f"note: {note}")
    cfg.save(out / "config.yaml")
    return out
