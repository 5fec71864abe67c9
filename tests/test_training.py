"""Training on tiny synthetic data: losses fall, loss weights act, causal training is
leak-free, and `pipeline.run` writes a complete run folder (also on label-poor data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch

import polyrec
from synthetic import TINY_YAML, item_group, preferred_group, text_projections_shared_and_per_item, tiny_config, write_dataset

from polyrec.config import TASKS, RunConfig
from polyrec.data.generic import load_generic
from polyrec.models.pair import PairEncoder
from polyrec.pipeline import aggregate, run
from polyrec.train.finetune import build_model, epoch_summary, finetune
from polyrec.train.weight_average import WeightAverage, ema_decay
from polyrec.train.losses import joint_loss, task_losses
from polyrec.train.protocol_data import prepare
from polyrec.train.sequences import collate


def new_model(ds, data, seed: int = 0, **model_options):
    torch.manual_seed(seed)
    cfg = tiny_config().model
    for key, value in model_options.items():
        setattr(cfg, key, value)
    return build_model(data, list(TASKS), ds.n_items, None, cfg, ds.rating_range)


# ---------------------------------------------------------------- finetune


def test_training_losses_fall_for_every_task(ds, data_a) -> None:
    cfg = tiny_config()
    fit = finetune(new_model(ds, data_a), data_a, cfg.train, progress=False)
    assert set(fit.curves) == set(TASKS)
    for task in TASKS:
        train = fit.curves[task]["train"]
        assert len(train) == cfg.train.epochs, task  # patience 100: no early stop
        assert all(math.isfinite(x) for x in train), task
        assert train[0] > train[-1], f"{task}: train loss did not fall: {train}"
    # Validation losses are recorded per epoch for the protocol's own tasks, and fall too.
    for task in ("rating", "ctr", "profile"):
        valid = fit.curves[task]["valid"]
        assert len(valid) == cfg.train.epochs and valid[0] > min(valid[1:]), task
    assert fit.model.training is False  # finetune hands back the best weights in eval mode


def test_a_model_without_item_ids_or_the_wide_profile_part_is_smaller_and_still_learns(ds, data_a) -> None:
    """The switches a small student uses: items as projected text alone, profile from the
    deep path alone. Each removes exactly its per-item parameters; training still works."""
    texts = torch.randn(ds.n_items, 12)
    cfg = tiny_config()
    full = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    cfg.model.item_ids, cfg.model.profile_wide = False, False
    torch.manual_seed(0)
    small = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    classes = sum(len(v) for v in data_a.attribute_classes.values())
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert count(full) - count(small) == ds.n_items * cfg.model.dim + 2 * ds.n_items * classes
    assert small.item_tower.ids is None and small.heads["profile"].wide_seen is None
    fit = finetune(small, data_a, cfg.train, progress=False)
    for task in TASKS:
        assert fit.curves[task]["train"][0] > fit.curves[task]["train"][-1], task
    with pytest.raises(ValueError, match="item_ids: false.*needs item text"):
        RunConfig.from_dict({"model": {"item_ids": False}, "text": {"enabled": False}})


def test_low_rank_item_ids_cost_rank_per_item_and_still_learn(ds, data_a) -> None:
    """``model.item_id_rank``: each item's own vector is r wide, widened by one shared
    (r × dim) map, so IDs cost r / dim of the full table plus that map."""
    texts = torch.randn(ds.n_items, 12)
    cfg = tiny_config()
    full = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    cfg.model.item_id_rank = 3
    torch.manual_seed(0)
    low = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    dim = cfg.model.dim
    assert count(full) - count(low) == ds.n_items * dim - (ds.n_items * 3 + 3 * dim)
    items = torch.arange(ds.n_items)
    low.eval()
    widened = low.item_tower.id_up(low.item_tower.ids(items)) + low.item_tower.text_proj(low.item_tower.text)
    assert torch.allclose(low.item_tower.all_items(), low.item_tower.norm(widened), atol=1e-6)
    before = low.item_tower.ids.weight.detach().clone()
    fit = finetune(low, data_a, cfg.train, progress=False)
    assert fit.curves["next_item"]["train"][0] > fit.curves["next_item"]["train"][-1]
    assert not torch.equal(before, low.item_tower.ids.weight)  # the narrow IDs learn
    with pytest.raises(ValueError, match="item_id_rank"):
        RunConfig.from_dict({"model": {"item_id_rank": -1}})


def test_with_auxiliary_tasks_off_a_protocol_learns_only_the_tasks_it_evaluates() -> None:
    tasks = ["profile", "rating", "ctr", "next_item"]
    cfg = RunConfig.from_dict({"train": {"auxiliary": {"B": False}}}).train
    assert cfg.tasks_for(tasks, "B") == ["next_item"]
    assert cfg.tasks_for(tasks, "A") == tasks  # a protocol the mapping leaves out keeps them
    assert RunConfig.from_dict({"train": {"auxiliary": False}}).train.tasks_for(tasks, "A") == ["profile", "rating", "ctr"]
    assert RunConfig().train.tasks_for(tasks, "B") == tasks
    with pytest.raises(ValueError, match="train.auxiliary"):
        RunConfig.from_dict({"train": {"auxiliary": {"C": False}}})


def test_the_profile_text_part_reads_the_standardised_mean_text_of_the_history_and_learns(ds, data_a) -> None:
    """``model.profile_text_rank``: a low-rank linear path from the history's mean text vector
    to the attribute logits, with no per-item parameters."""
    torch.manual_seed(0)
    texts = torch.randn(ds.n_items, 12)
    cfg = tiny_config()
    cfg.model.item_ids, cfg.model.profile_wide = False, False
    plain = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    cfg.model.profile_text_rank = 3
    model = build_model(data_a, list(TASKS), ds.n_items, texts.numpy(), cfg.model, ds.rating_range)
    classes = sum(len(v) for v in data_a.attribute_classes.values())
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert count(model) - count(plain) == 12 * 3 + 3 * classes + classes  # independent of the catalogue
    assert plain.pooled_text(plain.encode(collate(data_a.train, np.arange(3), 50))) is None

    users = np.arange(4)
    enc = model.encode(collate(data_a.train, users, 50))
    text = model.item_tower.text
    means = torch.stack([text[torch.from_numpy(data_a.train.items[u][-50:])].mean(0) for u in users])
    assert torch.allclose(model.pooled_text(enc), (means - text.mean(0)) / text.std(0), atol=1e-5)

    fit = finetune(model, data_a, cfg.train, progress=False)
    assert fit.curves["profile"]["train"][0] > fit.curves["profile"]["train"][-1]
    assert model.heads["profile"].text[1].weight.abs().sum() > 0  # zero at the start: the loss reached it


def test_one_projection_of_the_catalogue_text_gives_the_losses_and_gradients_of_one_per_item(ds, data_a) -> None:
    """Training steps take history and target items' text parts as rows of the catalogue's
    projection (``ItemTower.catalogue_text_once``): the same losses and gradients as each
    item projecting its own text, to float rounding; ID dropout draws the same masks."""
    texts = torch.randn(ds.n_items, 12).numpy()
    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, texts, tiny_config().model, ds.rating_range)
    model.train()
    batch = collate(data_a.train, np.flatnonzero(data_a.train.lengths() > 1)[:8], 20)
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        losses = task_losses(model, batch, data_a.profile_labels)
        assert losses.keys() == set(TASKS)
        return losses, torch.autograd.grad(joint_loss(losses, {}), params, allow_unused=True)

    shared_calls, own_calls = text_projections_shared_and_per_item(model.item_tower, step)
    assert shared_calls == [ds.n_items] and len(own_calls) == 3  # history, targets, catalogue
    assert model.item_tower._catalogue_text is None  # nothing kept past the step


def test_weight_average_is_the_exponential_average_of_the_steps() -> None:
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.9)
    for step in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(step)
        average.update()
    expected = 0.9 * (0.9 * 1.0 + 0.1 * 2.0) + 0.1 * 3.0  # the first step starts the average
    with average.applied():
        assert torch.allclose(model.weight, torch.full((1, 2), expected))
    assert torch.equal(model.weight, torch.full((1, 2), 3.0))  # its own weights again after
    off = WeightAverage(model, decay=0.0)
    off.update()
    with off.applied():
        assert torch.equal(model.weight, torch.full((1, 2), 3.0))
    assert ema_decay(0.0, 50, 80) == 0.0 and ema_decay(8, 50, 80) == 1 - 1 / 400
    assert ema_decay(8, 50, 20) == 1 - 1 / 100  # at most a tenth of the epochs


def test_training_with_a_weight_average_keeps_the_averaged_weights(ds, data_a) -> None:
    plain, cfg = tiny_config(), tiny_config()
    plain.train.epochs = cfg.train.epochs = 10  # the average spans at most a tenth of them
    plain.train.ema_epochs, cfg.train.ema_epochs = 0.0, 1.0
    raw = finetune(new_model(ds, data_a), data_a, plain.train, progress=False)
    averaged = finetune(new_model(ds, data_a), data_a, cfg.train, progress=False)
    assert all(math.isfinite(v) for v in averaged.curves["rating"]["valid"])
    # Same seed, same steps: only what is validated and kept differs.
    assert not torch.allclose(raw.model.heads["rating"].mlp[0].weight, averaged.model.heads["rating"].mlp[0].weight)


# ---------------------------------------------------------------- joint objective


def _head_grads(model, task: str) -> list[torch.Tensor]:
    return [p.grad for p in model.heads[task].parameters()]


def _has_gradient(grads: list[torch.Tensor | None]) -> bool:
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("zero_task", ["rating", "profile"])
def test_zero_loss_weight_gives_its_head_no_gradient(ds, data_a, zero_task: str) -> None:
    users = np.flatnonzero(data_a.train.lengths() > 1)[:16]
    batch = collate(data_a.train, users, 20)
    weights = {"profile": 1.0, "rating": 1.0, "ctr": 0.5, "next_item": 1.0}

    for weight in (0.0, 1.0):
        model = new_model(ds, data_a)
        model.train()
        losses = task_losses(model, batch, data_a.profile_labels)
        assert set(losses) == set(TASKS)
        w = {**weights, zero_task: weight}
        loss = joint_loss(losses, w)
        expected = sum(w[k] * float(v.detach()) for k, v in losses.items())
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
        loss.backward()
        others = [t for t in TASKS if t != zero_task]
        assert all(_has_gradient(_head_grads(model, t)) for t in others)
        # weight 0: no gradient at all reaches the head; weight 1: it does (the test can fail)
        assert _has_gradient(_head_grads(model, zero_task)) == (weight > 0)


# ---------------------------------------------------------------- leak-freeness


class _Recorder(torch.nn.Module):
    """Wraps a task head and keeps what it predicted on the last call."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head
        self.out: torch.Tensor | None = None

    def forward(self, pair: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        y = self.head(pair, items)
        self.out = y.detach()
        return y


@torch.no_grad()
def training_predictions(model, batch, task: str) -> torch.Tensor:
    """(B, L) what the training objective predicts for each history item as a target: the
    head's output inside ``task_losses`` itself, however the model builds its features."""
    recorder = _Recorder(model.heads[task])
    model.heads[task] = recorder
    try:
        task_losses(model, batch, {})
    finally:
        model.heads[task] = recorder.head
    out = recorder.out
    if out.shape == batch.mask.shape:
        return out.masked_fill(~batch.mask, float("nan"))
    full = torch.full(batch.mask.shape, float("nan"))
    full[batch.mask] = out  # heads that run on the real positions only, in mask order
    return full


def _with_flipped_rating(data, users: np.ndarray, t: int):
    batch = collate(data.train, users, 20)
    old = batch.ratings[:, t].double().numpy()
    new = 6.0 - old  # 1↔5, 2↔4: every rating moves
    labels = (new >= 4.0).astype(np.float64)
    batch.ratings[:, t] = torch.from_numpy(new).float()
    batch.labels[:, t] = torch.from_numpy(labels).float()
    batch.tokens[:, t] = torch.from_numpy(data.rating_tokens.encode(new, labels))
    return batch


@pytest.mark.parametrize("rated_summary", [False, True])
def test_training_targets_never_see_their_own_rating(ds, data_a, rated_summary) -> None:
    """Changing the rating of history item t leaves the training prediction for item t
    unchanged, but does change the prediction for a later item (so the check has teeth)."""
    model = new_model(ds, data_a, seed=1, rated_summary=rated_summary)
    model.eval()
    users = np.flatnonzero(data_a.train.lengths() >= 8)[:6]
    assert len(users) == 6
    t = 4
    batch = collate(data_a.train, users, 20)
    changed = _with_flipped_rating(data_a, users, t)
    assert not torch.equal(changed.tokens, batch.tokens)
    for task in ("rating", "ctr"):
        diff = (training_predictions(model, batch, task) - training_predictions(model, changed, task)).abs()
        assert diff[:, t].max() < 1e-6, f"{task}: the target at t reads its own rating"
        assert bool((diff[:, t + 1] > 1e-5).all()), f"{task}: the item after t ignores the rating at t"


def test_user_states_are_causal(ds, data_a) -> None:
    """State t (which predicts item t+1) reads items 0..t only: changing item t or its rating
    leaves the states before t untouched, and changes state t."""
    model = new_model(ds, data_a, seed=1)
    model.eval()
    users = np.flatnonzero(data_a.train.lengths() >= 8)[:6]
    t = 4
    batch = collate(data_a.train, users, 20)
    other_item = collate(data_a.train, users, 20)
    other_item.items[:, t] = (other_item.items[:, t] + 7) % ds.n_items
    with torch.no_grad():
        before = model.encode(batch).states
        for changed in (_with_flipped_rating(data_a, users, t), other_item):
            diff = (model.encode(changed).states - before).abs().amax(-1)  # (B, L)
            assert diff[:, :t].max() < 1e-6
            assert bool((diff[:, t] > 1e-6).all())


# ---------------------------------------------------------------- the whole pipeline


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    cfg = tiny_config(write_dataset(root / "data"), epochs=12)  # 12: enough to learn the structure
    cfg.seeds = [0, 1]
    lines: list[str] = []
    result = run(cfg, root / "run", progress=False, log=lines.append)
    return cfg, result, root / "run", lines


REQUIRED_KEYS = (
    "A.rating.rmse",
    "A.rating.mae",
    "A.ctr.auc",
    "A.ctr.logloss",
    "A.profile.gender.auc",
    "A.profile.gender.accuracy",
    "B.next_item.ndcg@10",
    "B.next_item.hr@10",
    "model.trainable_params",
    "model.users_per_s",
    "baseline.bias.A.rating.rmse",
    "baseline.popularity.B.next_item.ndcg@10",
    "baseline.majority.A.profile.gender.accuracy",
)


def test_pipeline_writes_the_run_folder(two_seed_run) -> None:
    cfg, result, out, lines = two_seed_run
    for name in ("report.md", "metrics.json", "config.yaml"):
        assert (out / name).is_file(), name
    for protocol in ("A", "B"):
        assert (out / "model" / protocol / "model.safetensors").is_file()
        assert (out / "model" / protocol / "spec.yaml").is_file()
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == [f"loss_{t}.png" for t in sorted(TASKS)]
    assert all((out / "plots" / p).stat().st_size > 1000 for p in plots)
    assert RunConfig.load(out / "config.yaml") == cfg
    assert any("60 users, 40 items, 960 interactions" in line for line in lines)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics)
    missing = [k for k in REQUIRED_KEYS if k not in metrics]
    assert not missing, missing
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["model.trainable_params"] > 1000 and metrics["model.users_per_s"] > 0
    # The item autoencoder (protocol A only) and how it joined the model.
    assert metrics["model.A.trainable_params"] > metrics["model.B.trainable_params"]
    assert 0.0 <= metrics["autoencoder.A.rating_share"] <= 1.0
    assert metrics["autoencoder.A.profile_gender"] in (0.0, 0.5, 1.0)  # kept or not, per seed (mean of 2)
    report = (out / "report.md").read_text()
    assert "| metric | polyrec |" in report and "A.rating.rmse" in report
    assert f" · torch {torch.__version__} · polyrec {polyrec.__version__} · seeds 0, 1" in report  # what measured it
    assert f"Libraries: numpy {np.__version__} · scipy " in report and f"scikit-learn {sklearn.__version__} · pandas " in report
    assert "plots/loss_rating.png" in report


def test_pipeline_with_two_seeds_reports_std(two_seed_run) -> None:
    _, result, _, lines = two_seed_run
    m = result.metrics
    for key in ("A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "B.next_item.ndcg@10",
                "baseline.bias.A.rating.rmse"):  # fmt: skip
        assert f"{key}.std" in m and m[f"{key}.std"] >= 0.0, key
    # Two seeds test two disjoint profile folds: the pooled metric covers both.
    assert "A.profile.gender.pooled_auc" in m
    assert sum("seed 1" in line for line in lines) == 2  # protocols A and B for seed 1


def test_pipeline_learns_the_planted_structure(two_seed_run) -> None:
    """The synthetic data is easy: the model must clearly beat the simple baselines."""
    m = two_seed_run[1].metrics
    assert m["A.rating.rmse"] < 0.8 * m["baseline.bias.A.rating.rmse"]
    assert m["A.ctr.auc"] > max(0.8, m["baseline.popularity.A.ctr.auc"] + 0.2)
    assert m["A.profile.gender.auc"] > 0.8
    assert m["B.next_item.ndcg@10"] > m["baseline.popularity.B.next_item.ndcg@10"]


def test_aggregate_mean_and_sample_std() -> None:
    one = aggregate([{"a": 1.0}])
    assert one == {"a": 1.0}  # one seed: no .std keys
    two = aggregate([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": float("nan")}])
    assert two["a"] == 2.0 and two["a.std"] == pytest.approx(math.sqrt(2.0))
    assert two["b"] == 2.0 and two["b.std"] == 0.0  # NaN seeds are left out


def test_pipeline_without_users_ratings_or_timestamps_trains_next_item_only(tmp_path) -> None:
    folder = write_dataset(tmp_path / "data", users=False, ratings=False, timestamps=False)
    result = run(tiny_config(folder), tmp_path / "run", progress=False, log=lambda _: None)
    keys = set(result.metrics)
    assert "B.next_item.ndcg@10" in keys and "B.next_item.hr@10" in keys
    assert not [k for k in keys if k.startswith("A.") or ".A." in k]
    notes = "\n".join(result.notes)
    for task in ("rating", "ctr", "profile"):
        assert f"task '{task}' is off" in notes
    assert "protocol A skipped" in notes
    assert [p.name for p in (tmp_path / "run" / "model").iterdir()] == ["B"]
    assert [p.name for p in (tmp_path / "run" / "plots").glob("*.png")] == ["loss_next_item.png"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "task 'rating' is off" in report


def test_pipeline_on_ratings_with_gaps_learns_rating_and_ctr_from_the_rated_ones(tmp_path) -> None:
    """A third of the interactions without a rating (and no label column): they stay history
    and next-item targets; rating and ctr train and are scored on the rated ones alone."""
    folder = write_dataset(tmp_path / "data", unrated=0.3)
    result = run(tiny_config(folder), tmp_path / "run", progress=False, log=lambda _: None)
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values())
    assert {"A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "B.next_item.ndcg@10"} <= set(m)
    assert any("have no rating" in note and "rating and ctr learn from the rated ones" in note for note in result.notes)
    ctr_note = next(note for note in result.notes if note.startswith("ctr label:"))
    assert "ratings 1 to 5" in ctr_note and "% of the rated interactions positive" in ctr_note
    # Scored on the rated test pairs alone: the saved predictions over those give the metric.
    ds = load_generic(folder)
    pairs = prepare(ds, "A", 0, None, 10, True).test.pairs
    rated = ~np.isnan(pairs.ratings)
    assert 0 < rated.sum() < len(rated) and np.array_equal(rated, ~np.isnan(pairs.labels))
    predicted = np.load(tmp_path / "run" / "predictions" / "A" / "seed0" / "test.npz")["rating"]
    rmse = np.sqrt(np.mean((np.clip(predicted[rated], 1, 5) - pairs.ratings[rated]) ** 2))
    assert m["A.rating.rmse"] == pytest.approx(rmse)
    # An unrated interaction is no negative: the planted engagement stays easy to rank.
    assert m["A.ctr.auc"] > 0.9


def test_pipeline_on_click_labels_with_gaps_learns_ctr_from_the_labelled_ones(tmp_path) -> None:
    """No ratings, a click label on two thirds of the interactions: ctr trains and is scored
    on those; the unlabelled are history (their label token: none) and next-item targets."""
    folder = write_dataset(tmp_path / "data", ratings=False)
    inter = pd.read_csv(folder / "interactions.csv")
    liked = [item_group(int(i[1:])) == preferred_group(int(u[1:])) for u, i in zip(inter["user_id"], inter["item_id"])]
    gaps = np.random.default_rng(0).random(len(inter)) < 1 / 3
    inter["clicked"] = pd.Series(np.array(liked, dtype=int), dtype="Int64").mask(gaps)
    inter.to_csv(folder / "interactions.csv", index=False)
    spec = (folder / "dataset.yaml").read_text().replace("timestamp: ts}", "timestamp: ts, label: clicked}")
    (folder / "dataset.yaml").write_text(spec)
    result = run(tiny_config(folder, epochs=12), tmp_path / "run", progress=False, log=lambda _: None)
    m = result.metrics
    assert all(math.isfinite(v) for v in m.values()) and "A.rating.rmse" not in m
    assert any("have no label" in note for note in result.notes)
    pairs = prepare(load_generic(folder), "A", 0, None, 10, True).test.pairs
    labelled = ~np.isnan(pairs.labels)
    assert 0 < labelled.sum() < len(labelled)
    assert m["A.ctr.auc"] > 0.9  # the planted clicks, scored on the labelled pairs alone


def test_pipeline_is_reproducible_whatever_ran_before(tmp_path) -> None:
    """The seed alone decides a run: the initial weights must not depend on the global RNG."""
    folder = write_dataset(tmp_path / "data", users=False, ratings=False)
    results = []
    for k, noise in enumerate((0, 12345)):
        torch.manual_seed(noise)  # as if other work had run before in this process
        torch.rand(noise % 97)
        result = run(tiny_config(folder), tmp_path / f"run{k}", progress=False, log=lambda _: None)
        results.append({k: v for k, v in result.metrics.items() if k.startswith(("B.", "model.trainable"))})
    assert results[0] == results[1]


def test_item_side_raters_never_show_the_target_its_own_rating(ds, data_a) -> None:
    """The item-side view reads other users' ratings of the target item. Changing user u's
    rating token in item i's rater list leaves u's training prediction for i unchanged, but
    changes another user's prediction for i (so the mask is what protects it)."""
    cfg = tiny_config().model
    cfg.item_raters = 32
    torch.manual_seed(2)
    model = build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)
    model.eval()
    raters = model.item_raters
    assert raters is not None
    u = int(np.flatnonzero(data_a.train.lengths() >= 8)[0])
    t = 3
    i = int(data_a.train.items[u][t])
    filled = raters.rater_tokens[i].numpy() != 0
    slot = np.flatnonzero((raters.rater_users[i].numpy() == u) & filled)
    assert len(slot) == 1, "user u should be among item i's sampled raters"
    others = [v for v in raters.rater_users[i].numpy()[filled] if v != u and i in data_a.train.items[v]]
    v = int(others[0])
    t_v = int(np.flatnonzero(data_a.train.items[v] == i)[0])
    batch = collate(data_a.train, np.array([u, v]), 20)
    before = training_predictions(model, batch, "rating")
    tokens = raters.rater_tokens.clone()
    raters.rater_tokens[i, slot[0]] = 2 if int(tokens[i, slot[0]]) != 2 else 3
    after = training_predictions(model, batch, "rating")
    raters.rater_tokens.copy_(tokens)
    assert abs(float(before[0, t] - after[0, t])) < 1e-6, "the target read its own rating through the item side"
    assert abs(float(before[1, t_v] - after[1, t_v])) > 1e-6, "another user's prediction ignores u's rating of i"


def test_training_windows_cover_every_position_of_a_long_history() -> None:
    from polyrec.train.sequences import Histories

    n, max_len = 30, 8
    items = np.arange(n)
    hist = Histories([items], [np.full(n, np.nan)], [np.full(n, np.nan)], [np.full(n, 2)])
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(200):
        window = collate(hist, np.array([0]), max_len, rng).items[0].numpy()
        assert np.all(np.diff(window) == 1)  # consecutive, in time order
        seen.update(window.tolist())
    assert seen == set(range(n))
    # Without a generator (evaluation, serving) the most recent items are kept.
    assert collate(hist, np.array([0]), max_len).items[0].tolist() == list(range(n - max_len, n))


def test_next_item_softmax_masks_exactly_the_items_taken_so_far() -> None:
    from polyrec.tasks.next_item import seen_before

    history = torch.tensor([[3, 1, 4, 1, 0, 0], [2, 0, 2, 5, 6, 0]])  # right-padded with item 0
    lengths = [4, 5]
    seen = seen_before(history, 7, 5)
    for b, n in enumerate(lengths):
        for t in range(n):
            taken = set(history[b, : t + 1].tolist())
            assert set(torch.nonzero(seen[b, t]).flatten().tolist()) == taken


def test_a_target_the_user_took_before_is_no_next_item_target() -> None:
    """Re-consumed items are never candidates in the ranking, so they are not trained for."""
    from polyrec.tasks import next_item

    head, history, valid = _head_and_histories(7)
    # Row 0 takes 3, 1, 4, 1: position 2's target, 1, was taken at position 1. Row 1 takes
    # 2, 0, 2, 5, 6: position 1's target, 2, was taken at position 0.
    fresh = next_item.fresh_targets(history, history[:, 1:])
    assert (valid & ~fresh).nonzero().tolist() == [[0, 2], [1, 1]]
    _, target = next_item.logits(head, torch.randn(2, 5, 8), history[:, 1:], valid, torch.randn(7, 8), history=history)
    assert target.tolist() == [1, 4, 0, 5, 6]  # the valid positions' targets, less the two


def _head_and_histories(n_items: int):
    """A next-item head (width 8) with random item biases; two right-padded histories; the
    positions that have a next item."""
    from polyrec.tasks import next_item

    torch.manual_seed(0)
    head = next_item.NextItemHead(8, n_items)
    with torch.no_grad():
        head.item_bias.normal_()
    history = torch.tensor([[3, 1, 4, 1, 0, 0], [2, 0, 2, 5, 6, 0]])
    valid = torch.tensor([[True, True, True, False, False], [True, True, True, True, False]])
    return head, history, valid


def test_next_item_logits_and_their_gradients_are_the_plain_masked_softmax_ones() -> None:
    """The fused bias and the in-place mask change no value and no gradient."""
    from polyrec.tasks import next_item

    head, history, valid = _head_and_histories(7)
    states = torch.randn(2, 5, 8, requires_grad=True)
    vecs = torch.randn(7, 8, requires_grad=True)
    out, target = next_item.logits(head, states, history[:, 1:], valid, vecs, history=history)
    next_item.loss((out, target)).backward()
    fused = [t.grad.clone() for t in (states, vecs, head.item_bias, head.query.weight)]
    for t in (states, vecs, head.item_bias, head.query.weight):
        t.grad = None
    # The plain computation: the positions whose target is new to the user, product, then
    # bias, then the items taken so far out.
    fresh = valid & next_item.fresh_targets(history, history[:, 1:])
    plain = head.query(states[fresh]) @ vecs.T + head.item_bias
    seen = next_item.seen_before(history, 7, 5)[fresh]
    plain = plain.masked_fill(seen, float("-inf"))
    torch.nn.functional.cross_entropy(plain, target).backward()
    assert torch.allclose(out, plain, atol=1e-6) and torch.equal(torch.isinf(out), seen)
    for got, want in zip(fused, (states.grad, vecs.grad, head.item_bias.grad, head.query.weight.grad)):
        assert torch.allclose(got, want, atol=1e-6)


def test_sampled_next_item_logits_are_the_full_softmax_columns_of_the_target_and_the_negatives() -> None:
    """The sampled softmax scores column 0 as the target and then each negative as the full
    softmax scores it, with the same items masked: a negative the user took already, and a
    negative that is the target."""
    from polyrec.tasks import next_item

    head, history, valid = _head_and_histories(9)
    states, vecs = torch.randn(2, 5, 8), torch.randn(9, 8)
    negatives = torch.tensor([1, 4, 7, 8, 2])
    full, target = next_item.logits(head, states, history[:, 1:], valid, vecs, history=history)
    sampled, zeros = next_item.sampled_logits(
        head, states, history[:, 1:], valid, lambda items: vecs[items], negatives, history=history
    )
    assert sampled.shape == (len(target), 1 + len(negatives)) and not zeros.any()
    torch.testing.assert_close(sampled[:, 0], full[torch.arange(len(target)), target])
    want = full[:, negatives].masked_fill(negatives == target.unsqueeze(1), float("-inf"))
    torch.testing.assert_close(sampled[:, 1:], want)
    assert torch.isinf(sampled[:, 1:]).any() and torch.isfinite(sampled[:, 1:]).any()  # both kinds occur


def test_a_sampled_softmax_step_gives_vectors_to_the_sampled_items_alone(ds, data_a) -> None:
    """With ``train.sampled_negatives`` a training step projects the text of the history, the
    targets and the negatives, never the whole catalogue, and its loss reaches the projection."""
    texts = torch.randn(ds.n_items, 12).numpy()
    torch.manual_seed(0)
    model = build_model(data_a, ["next_item"], ds.n_items, texts, tiny_config().model, ds.rating_range).train()
    batch = collate(data_a.train, np.flatnonzero(data_a.train.lengths() > 1)[:8], 20)
    rows = []
    model.item_tower.text_proj.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[:-1].numel()))
    negatives = 5
    losses = task_losses(model, batch, {}, sampled_negatives=negatives)
    positions = int(batch.mask[:, 1:].sum())
    # The history, the targets, the negatives: no projection of the catalogue (the full
    # softmax's one call, over ds.n_items rows).
    assert rows == [int(batch.mask.numel()), positions, negatives]
    assert torch.isfinite(losses["next_item"])
    losses["next_item"].backward()
    assert model.item_tower.text_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="train.sampled_negatives"):
        RunConfig.from_dict({"train": {"sampled_negatives": -1}})


def test_a_run_on_a_large_catalogue_points_to_the_sampled_softmax() -> None:
    from polyrec.pipeline import LARGE_CATALOGUE, large_catalogue_note

    cfg = RunConfig()
    assert "train: {sampled_negatives: 1000}" in large_catalogue_note(LARGE_CATALOGUE, cfg)
    assert large_catalogue_note(LARGE_CATALOGUE - 1, cfg) is None
    sampled = RunConfig.from_dict({"train": {"sampled_negatives": 500}})
    no_next_item = RunConfig.from_dict({"tasks": ["rating"]})
    assert large_catalogue_note(LARGE_CATALOGUE, sampled) is None and large_catalogue_note(LARGE_CATALOGUE, no_next_item) is None


def test_the_progress_bar_shows_the_validation_figures_that_select_the_model() -> None:
    valid = {"rating": 0.87, "ctr": 0.55, "profile": 0.6, "next_item": 7.3, "next_item.ndcg@10": 0.1}
    assert epoch_summary(valid, ["rating", "ctr"], 4) == {
        "valid rating MSE": "0.8700", "valid ctr logloss": "0.5500", "best epoch": "5"
    }
    # Next item is selected on NDCG@10, not on its loss: the bar shows what decides.
    assert epoch_summary(valid, ["next_item"], 0) == {"valid NDCG@10": "0.1000", "best epoch": "1"}


def test_the_rated_summary_is_the_rating_weighted_mean_of_the_visible_history() -> None:
    torch.manual_seed(0)
    pair = PairEncoder(4, shrinkage=2.0, rated_summary=True)
    tokens = torch.randn(1, 3, 4)
    centered = torch.tensor([[1.0, -2.0, 0.0]])  # the third item has no rating
    rated = torch.tensor([[True, True, False]])
    visible = torch.tensor([[[False, True, True], [True, True, True]]])  # target 0 leaves item 0 out
    ctx = pair.context(tokens, centered, rated, torch.randn(1, 2, 4), visible)
    x = pair.x(tokens)[0]
    assert torch.allclose(ctx.rated_sum[0, 0], (-2.0 * x[1]) / (1 + 2.0), atol=1e-6)
    assert torch.allclose(ctx.rated_sum[0, 1], (1.0 * x[0] - 2.0 * x[1]) / (2 + 2.0), atol=1e-6)
    features = pair.features(ctx, torch.randn(1, 3, 4), torch.tensor([[0, 2]]))
    assert features.shape[-1] == pair.out_dim == 8 * 4 + 1
    assert PairEncoder(4).out_dim == 7 * 4 + 1  # off by default: the model's shape is unchanged


def test_attention_dropout_acts_on_the_attention_weights_alone() -> None:
    """``attention_dropout`` drops attention weights only (None: the model's ``dropout``):
    with every other dropout at 0, a training-mode encoder is random with it and exact without."""
    from polyrec.models.user_encoder import UserEncoder

    assert UserEncoder(8, 1, 2, 10, 3, dropout=0.3).blocks[0].attention_dropout == 0.3
    tokens = torch.randn(4, 10, 8)
    for rate, random in ((0.5, True), (0.0, False)):
        torch.manual_seed(0)
        encoder = UserEncoder(8, 2, 2, 10, 3, dropout=0.0, attention_dropout=rate).train()
        first, second = encoder(tokens), encoder(tokens)
        assert (not torch.equal(first, second)) is random
    with pytest.raises(ValueError, match="attention_dropout"):
        RunConfig.from_dict({"model": {"attention_dropout": 1.0}})


def test_item_side_raters_read_an_unknown_user_through_the_history_alone() -> None:
    """A user the model was not trained with has no embedding: the query is the history's
    summary alone, as for a trained user whose embedding is zero and who rated none of the items."""
    from polyrec.models.item_raters import ItemRaters
    from polyrec.models.polyrec import UNKNOWN_USER

    torch.manual_seed(0)
    raters = ItemRaters(n_users=4, n_items=3, dim=8, n_rating_tokens=5, max_raters=2)
    raters.set_raters(np.array([[0, 1], [1, 2], [2, 0]]), np.array([[2, 3], [4, 0], [2, 2]]))
    summary, targets = torch.randn(1, 3, 8), torch.tensor([[0, 1, 2]])
    unknown = raters(torch.tensor([UNKNOWN_USER]), summary, targets)
    with torch.no_grad():
        raters.users.weight[3] = 0.0  # user 3 rated nothing here
    np.testing.assert_allclose(unknown.detach(), raters(torch.tensor([3]), summary, targets).detach(), atol=1e-6)


def test_a_run_for_deployment_reports_validation_and_serves(tmp_path, capsys) -> None:
    """`polyrec run --deploy`: no test side, no baselines; validation's figures under valid.*,
    the report says so, and the saved model answers."""
    from polyrec.cli import main

    data = write_dataset(tmp_path / "data")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML.replace("seeds: [0]", "seeds: [3, 4]"))
    out = tmp_path / "deployed"
    assert main(["run", "--data", str(data), "--config", str(config), "--deploy", "--epochs", "2", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation figures (a run for deployment has no test side):" in printed and "| A.rating.rmse |" in printed
    used = RunConfig.load(out / "config.yaml")
    assert used.data.deploy and used.seeds == [3]  # one served model: the first seed alone
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("valid.A.rating.rmse", "valid.A.ctr.auc", "valid.A.profile.gender.auc", "valid.B.next_item.ndcg@10"):
        assert math.isfinite(metrics[key]), key
    assert not [k for k in metrics if k.startswith(("A.", "B.", "baseline."))]  # nothing measured on a test side
    report = (out / "report.md").read_text()
    assert "## Validation metrics" in report and "| valid.A" not in report and "| A.rating.rmse |" in report
    assert "data.deploy: protocol B validates on each user's latest item" in report
    assert "(for deployment, no test side: A = random 90/10 interactions" in report
    rec = polyrec.load(out)
    assert len(rec.recommend("u001", k=3)) == 3
    capsys.readouterr()
    assert main(["fairness", "--run", str(out)]) == 2
    assert "a run for deployment (data.deploy) has no test side to report on" in capsys.readouterr().err
