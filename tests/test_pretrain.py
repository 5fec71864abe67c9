"""Self-supervised pretraining: objectives, masking, no labels read, checkpoints, splits."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from synthetic import TINY_YAML, text_projections_shared_and_per_item, tiny_config, write_dataset, write_thin_dataset

from polyrec.cli import main
from polyrec.config import PRETRAIN_OBJECTIVES, PretrainConfig, RunConfig
from polyrec.train.finetune import build_model
from polyrec.train.pretrain import (
    PRETRAINED_MODULES,
    batch_losses,
    init_from_pretraining,
    load_checkpoint,
    pretrain,
    pretrain_model,
    pretrain_run,
    training_sequences,
)
from polyrec.train.pretrain_objectives import PretrainExtras, encode_items, sample_mask
from polyrec.train.protocol_data import prepare
from polyrec.train.rating_tokens import NO_RATING_TOKEN, PAD_TOKEN


def text_vectors(n_items: int) -> np.ndarray:
    """Random stand-ins for language-model vectors (tests load no language model)."""
    return np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32)


def only(objective: str, epochs: int = 12) -> PretrainConfig:
    weights = {o: float(o == objective) for o in PRETRAIN_OBJECTIVES}
    return PretrainConfig(epochs=epochs, lr=1e-2, batch_size=16, objectives=weights)


def test_masked_item_modelling_and_the_views_share_one_projection_of_the_catalogue_text(ds, data_a) -> None:
    """Within a step with masked item modelling (which scores the whole catalogue), the
    histories and the contrastive views take rows of one text projection: the same losses
    and gradients, to float rounding, as each projecting its own text."""
    torch.manual_seed(0)
    model = pretrain_model(ds.n_items, text_vectors(ds.n_items), tiny_config().model).train()
    extras = PretrainExtras(model.spec.config.dim)
    cfg = PretrainConfig(objectives={"mim": 1.0, "contrastive": 0.5, "text_id": 0.0})
    seqs = training_sequences(data_a, 20)[:8]
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        rng, gen = np.random.default_rng(1), torch.Generator().manual_seed(1)  # the same masks and views
        losses = batch_losses(model, extras, seqs, cfg, {"mim": 1.0, "contrastive": 0.5}, rng, gen)
        assert losses.keys() == {"mim", "contrastive"}
        return losses, torch.autograd.grad(sum(losses.values()), params, allow_unused=True)

    shared_calls, own_calls = text_projections_shared_and_per_item(model.item_tower, step)
    assert shared_calls == [ds.n_items] and len(own_calls) == 4  # histories, catalogue, two views


@pytest.mark.parametrize("objective", PRETRAIN_OBJECTIVES)
def test_each_objective_is_finite_and_falls(ds, data_a, objective: str) -> None:
    model = pretrain_model(ds.n_items, text_vectors(ds.n_items), tiny_config().model)
    result = pretrain(model, training_sequences(data_a, 20), only(objective), seed=0, progress=False)
    curve = result.curves[objective]
    assert len(curve) == 12 and np.isfinite(curve).all()
    # Means over three epochs: the contrastive loss is noisy (random views, 4 steps an epoch).
    assert np.mean(curve[-3:]) < 0.9 * np.mean(curve[:3]), curve
    assert set(result.curves) == {objective, "total"}


def test_text_id_is_skipped_without_text(ds, data_a) -> None:
    model = pretrain_model(ds.n_items, None, tiny_config().model)
    result = pretrain(model, training_sequences(data_a, 20), PretrainConfig(epochs=1), seed=0, progress=False)
    assert set(result.curves) == {"mim", "contrastive", "total"}
    assert any("text_id" in n for n in result.notes)


def test_text_id_is_skipped_without_item_ids(ds, data_a) -> None:
    cfg = copy.deepcopy(tiny_config().model)
    cfg.item_ids = False
    model = pretrain_model(ds.n_items, text_vectors(ds.n_items), cfg)
    result = pretrain(model, training_sequences(data_a, 20), PretrainConfig(epochs=1), seed=0, progress=False)
    assert set(result.curves) == {"mim", "contrastive", "total"}
    assert any("item ID embeddings" in n for n in result.notes)


def test_text_id_aligns_low_rank_item_ids_through_their_widening_map(ds, data_a) -> None:
    cfg = copy.deepcopy(tiny_config().model)
    cfg.item_id_rank = 3
    model = pretrain_model(ds.n_items, text_vectors(ds.n_items), cfg)
    before = model.item_tower.id_up.weight.detach().clone()
    result = pretrain(model, training_sequences(data_a, 20), PretrainConfig(epochs=1), seed=0, progress=False)
    assert {"mim", "contrastive", "text_id", "total"} <= set(result.curves)
    assert not torch.equal(before, model.item_tower.id_up.weight)


def test_masked_inputs_are_exactly_the_sampled_positions(ds) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 50, (200,), generator=gen)
    mask = torch.arange(50)[None, :] < lengths[:, None]
    masked = sample_mask(mask, 0.2, gen)
    assert not (masked & ~mask).any()  # never padding
    assert abs(masked.sum().item() / mask.sum().item() - 0.2) < 0.02

    model = pretrain_model(ds.n_items, None, tiny_config().model).eval()
    extras = PretrainExtras(16)
    items = torch.randint(0, ds.n_items, (4, 12), generator=gen)
    mask, masked = torch.ones(4, 12, dtype=torch.bool), sample_mask(torch.ones(4, 12, dtype=torch.bool), 0.3, gen)
    seen = {}
    model.user_encoder.register_forward_pre_hook(lambda m, args: seen.setdefault("tokens", args[0]))
    encode_items(model, extras, items, mask, masked)
    inputs = seen["tokens"] - model.user_encoder.rating_emb.weight[NO_RATING_TOKEN]  # neutral rating token
    expected = torch.where(masked.unsqueeze(-1), extras.mask_vec, model.item_tower(items))
    torch.testing.assert_close(inputs, expected)


def test_no_rating_label_or_attribute_reaches_pretraining(ds, data_a) -> None:
    # The same split with every rating, label and token scrambled or gone, and no attributes.
    blind = copy.deepcopy(data_a)
    blind.train.ratings = [np.full(len(x), np.nan) for x in blind.train.ratings]
    blind.train.labels = [np.full(len(x), np.nan) for x in blind.train.labels]
    blind.train.tokens = [np.full(len(x), 7) for x in blind.train.tokens]
    blind.profile_labels, blind.attribute_classes = {}, {}
    curves = []
    for data in (data_a, blind):
        torch.manual_seed(0)
        model = pretrain_model(ds.n_items, text_vectors(ds.n_items), tiny_config().model)
        curves.append(pretrain(model, training_sequences(data, 20), PretrainConfig(epochs=2), seed=0, progress=False).curves)
    assert curves[0] == curves[1]


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_pretraining_reads_the_training_side_only(ds, protocol: str) -> None:
    data = prepare(ds, protocol, 0, 4.0, 10, False)
    inter = ds.interactions
    pairs = lambda rows: {(u, i) for u, i in zip(inter["user"].to_numpy()[rows], inter["item"].to_numpy()[rows])}
    read = [(u, i) for u, seq in enumerate(training_sequences(data, 10_000)) for i in seq]
    assert len(read) == len(data.split.train) and set(read) == pairs(data.split.train)
    assert not set(read) & (pairs(data.split.test) | pairs(data.split.valid))


def test_checkpoint_round_trips_and_init_loads_it(tmp_path, ds) -> None:
    folder = write_dataset(tmp_path / "data")
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    cfg = tiny_config(folder)
    cfg.pretrain.epochs = 1
    pretrain_run(cfg, tmp_path / "ck", progress=False, log=lambda _: None)
    for protocol in ("A", "B"):
        ck = load_checkpoint(tmp_path / "ck", protocol, 0)
        data = prepare(ds, protocol, 0, 4.0, 10, True)
        model = build_model(data, ["profile", "rating", "ctr", "next_item"], ds.n_items, None, cfg.model)
        run_cfg = copy.deepcopy(cfg)
        run_cfg.pretrain.init = str(tmp_path / "ck")
        assert init_from_pretraining(model, data, run_cfg, None, progress=False) == 0.0
        got, want = model.state_dict(), ck.state_dict()
        moved = [k for k in want if k.startswith(PRETRAINED_MODULES)]
        assert "user_encoder.blocks.0.qkv.weight" in moved and "item_tower.ids.weight" in moved
        for k in moved:
            if k == "user_encoder.rating_emb.weight":  # every rating token starts as the neutral one
                emb = want[k]
                assert torch.equal(got[k][PAD_TOKEN], emb[PAD_TOKEN])
                assert torch.equal(got[k][1:], emb[NO_RATING_TOKEN].expand_as(got[k][1:]))
            else:
                assert torch.equal(got[k], want[k]), k
    with pytest.raises(FileNotFoundError, match="seed 1"):
        load_checkpoint(tmp_path / "ck", "A", 1)
    # Pretrained for deployment (on the test side too): a deployment run starts from it, a measuring one may not.
    cfg.data.deploy = True
    pretrain_run(cfg, tmp_path / "ck-deploy", progress=False, log=lambda _: None)
    assert load_checkpoint(tmp_path / "ck-deploy", "B", 0, deploy=True).spec.n_items == ds.n_items
    with pytest.raises(ValueError, match="pretrained for deployment"):
        load_checkpoint(tmp_path / "ck-deploy", "B", 0)
    # The command line: `finetune --init` trains from it.
    out = tmp_path / "run"
    assert main(["finetune", "--data", str(folder), "--config", str(tmp_path / "tiny.yaml"),
                 "--init", str(tmp_path / "ck"), "--protocols", "B", "--seeds", "0",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    cfg_used = RunConfig.load(out / "config.yaml")
    assert cfg_used.pretrain.init == str(tmp_path / "ck") and not cfg_used.pretrain.enabled


def test_default_does_not_pretrain(data_a, ds) -> None:
    cfg = RunConfig()
    assert not cfg.pretrain.enabled and cfg.pretrain.init is None
    model = build_model(data_a, ["rating"], ds.n_items, None, tiny_config().model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert init_from_pretraining(model, data_a, tiny_config(), None) is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pretrain_config_is_checked() -> None:
    cfg = RunConfig.from_dict({"pretrain": {"enabled": True, "objectives": {"mim": 0.0}}})
    assert cfg.pretrain.objectives == {"mim": 0.0, "contrastive": 0.5, "text_id": 0.5}
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict({"pretrain": {"mask_rate": 0.2}})
    with pytest.raises(ValueError, match="pretrain.objectives"):
        RunConfig.from_dict({"pretrain": {"objectives": {"mlm": 1.0}}})
    with pytest.raises(ValueError, match="mask_prob"):
        RunConfig.from_dict({"pretrain": {"mask_prob": 1.5}})


def test_bench_pretrain_on_data_protocol_b_cannot_split_runs_protocol_a_alone(tmp_path) -> None:
    folder = write_thin_dataset(tmp_path / "thin")
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    doc = tmp_path / "pretrain.md"
    argv = ["bench", "pretrain", "--data", str(folder), "--config", str(tmp_path / "tiny.yaml"), "--epochs", "1",
            "--pretrain-epochs", "1", "--seeds", "0", "--out", str(tmp_path / "runs"), "--doc", str(doc), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    rows = [r.split(" | ") for r in doc.read_text().splitlines() if r.startswith("| ") and not r.startswith("| configuration")]
    assert [r[0] for r in rows] == ["| none", "| mim", "| contrastive", "| all"]
    for row in rows:  # rating RMSE measured; NDCG@10, HR@10, cold-item HR@10 and cold targets not
        assert row[1] != "—" and row[4:8] == ["—", "—", "—", "—"]
    assert RunConfig.load(tmp_path / "runs" / "none" / "config.yaml").protocols == ["A"]


def test_bench_pretrain_runs_every_configuration_and_grows_by_seeds(tmp_path, capsys) -> None:
    folder = write_dataset(tmp_path / "shop")
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    doc, out = tmp_path / "pretrain.md", tmp_path / "runs"
    argv = ["bench", "pretrain", "--data", str(folder), "--config", str(tmp_path / "tiny.yaml"), "--epochs", "1",
            "--pretrain-epochs", "1", "--seeds", "0", "--out", str(out), "--doc", str(doc), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    rows = [r.split(" | ")[0] for r in doc.read_text().splitlines() if r.startswith("| ") and not r.startswith("| configuration")]
    assert rows == ["| none", "| mim", "| contrastive", "| all"]  # no text in the tiny config: no text_id, no -notext
    # The four configurations fitted one item, one user and one engagement autoencoder between
    # them: pretraining trains no autoencoder, so every configuration of a seed reads the same fits.
    assert len(list((out / "fit-cache").glob("*.pt"))) == 3
    capsys.readouterr()
    grow = [*argv]
    grow[grow.index("--seeds") + 1] = "0,1"
    assert main(grow) == 0
    printed = capsys.readouterr().out
    assert printed.count("seed 0: finished before") == 4 and "seed 1: finished before" not in printed
    assert RunConfig.load(out / "all" / "config.yaml").seeds == [0, 1]
    assert len(list((out / "fit-cache").glob("*.pt"))) == 6  # seed 1's three
    assert main([*argv[:-5], "--epochs", "2", "--out", str(out), "--doc", str(doc), "--quiet"]) == 2
    assert "use another --out" in capsys.readouterr().err
