"""Knowledge distillation: soft terms, replayed draws, clusters, the recipe end to end.

The teacher's language model is a stand-in: ``encode_texts`` is replaced by seeded random
vectors whose width depends on the encoder's name (24-d "teacher", 8-d "student"), so the
recipe runs with two different text features and no language model is loaded.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from synthetic import AUTOENCODER_EPOCHS, is_a_cached_fit, tiny_config, write_dataset

import polyrec.pipeline
from polyrec.bench.distill import ratio_checks
from polyrec.cli import main
from polyrec.config import DISTILL_PARTS, DistillConfig, RunConfig
from polyrec.distill import distill
from polyrec.distill.clusters import choose_clusters
from polyrec.distill.objective import DistillObjective, soft_binary_kl, without_target
from polyrec.distill.teacher import load_teacher
from polyrec.pipeline import run
from polyrec.run_loader import load_run
from polyrec.text.packaged_mpnet import _part_files, unpack_mpnet
from polyrec.train.finetune import build_model
from polyrec.train.losses import soft_kl_rows, task_outputs
from polyrec.train.refit_head import SoftProfileTargets, refit_profile_head
from polyrec.train.sequences import collate

TEACHER_TEXT, STUDENT_TEXT = "stand-in-teacher", "stand-in-student"


def fake_encode(texts, encoder, cache_dir=None, batch_size=64, progress=True, max_tokens=None):
    width = 24 if encoder == TEACHER_TEXT else 8
    return np.random.default_rng(len(encoder)).normal(size=(len(texts), width)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "synthetic")


def teacher_config(folder: Path):
    cfg = tiny_config(folder, epochs=3)
    cfg.text.enabled, cfg.text.encoder = True, TEACHER_TEXT
    cfg.model.dim, cfg.model.layers, cfg.model.heads = 32, 2, 2
    cfg.model.user_engagement_autoencoder = 8  # the teacher joins both engagement views
    cfg.seeds = [0, 1]
    return cfg


def student_config(folder: Path):
    cfg = tiny_config(folder, epochs=3)
    cfg.text.enabled, cfg.text.encoder = True, STUDENT_TEXT
    cfg.model.dim = 8
    cfg.distill.clusters = [2, 4]
    return cfg


@pytest.fixture(scope="module")
def teacher_run(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "teacher"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(polyrec.pipeline, "encode_texts", fake_encode)
        run(teacher_config(folder), out, progress=False, log=lambda _: None, baselines=False)
    return out


@pytest.fixture(scope="module")
def student_run(folder, teacher_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "student"
    cfg = student_config(folder)
    cfg.model.item_id_rank = 4  # as configs/student-tiny.yaml: narrow IDs, next item alone under B
    cfg.train.auxiliary = {"B": False}
    # As configs/student-tiny.yaml: the unseen part on under A, next item alone under B.
    cfg.distill.weights = {
        "A": {"cluster": 0.5, "rating": 2.0, "ctr": 2.0, "profile": 1.0, "next_item": 1.0, "unseen": 1.0},
        "B": {"next_item": 0.0},
    }
    cfg.train.fit_cache = str(out.parent / "fit-cache")  # the student's autoencoder fits, as fitted
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(polyrec.pipeline, "encode_texts", fake_encode)
        distill(teacher_run, out, cfg, progress=False, log=lambda _: None, baselines=False)
    return out


def test_the_students_fitted_autoencoders_come_out_as_fitted(student_run) -> None:
    """The unseen part reads the student's joined pair outputs while it trains, where its
    autoencoders' joins are still off: they get zero gradients, which weight decay alone
    would turn into steps. Fitted before fine-tuning, they must come out as fitted."""
    cache = student_run.parent / "fit-cache"
    assert len(list(cache.glob("*.pt"))) == 6  # an item, a user and an engagement autoencoder per seed
    for seed in (0, 1):
        student = load_teacher(student_run, "A", seed)
        for ae in (student.item_autoencoder, student.user_autoencoder, *student.engagement_views().values()):
            assert is_a_cached_fit(ae, cache), (seed, type(ae).__name__)


def test_a_run_keeps_every_seeds_model(teacher_run) -> None:
    assert (teacher_run / "model" / "A" / "model.safetensors").is_file()
    assert (teacher_run / "seeds" / "B" / "seed1" / "model.safetensors").is_file()
    seed0, seed1 = load_teacher(teacher_run, "A", 0), load_teacher(teacher_run, "A", 1)
    assert not torch.equal(seed0.item_tower.ids.weight, seed1.item_tower.ids.weight)
    assert not any(p.requires_grad for p in seed0.parameters()) and not seed0.training


def test_distilled_student_is_an_ordinary_run(student_run, teacher_run) -> None:
    metrics = json.loads((student_run / "metrics.json").read_text())
    teacher = json.loads((teacher_run / "metrics.json").read_text())
    task_keys = {k for k in teacher if k[:2] in ("A.", "B.")}
    assert task_keys <= set(metrics)  # the same metrics.json keys as `polyrec run`
    for key in ("model.trainable_params", "model.users_per_s", "distill.A.clusters", "distill.A.silhouette"):
        assert np.isfinite(metrics[key])
    assert "distill.B.clusters" not in metrics  # protocol B's default weights have no cluster part
    # K is chosen per seed from the candidates (metrics.json holds the mean over seeds).
    records = sorted((student_run / "progress").glob("seed*.json"))
    assert len(records) == 2
    for record in records:
        assert json.loads(record.read_text())["metrics"]["distill.A.clusters"] in (2, 4), record.name
    assert metrics["model.trainable_params"] < teacher["model.trainable_params"]
    # Under B the student learns next item alone (auxiliary off), while its teacher has every head.
    student_b, teacher_b = load_teacher(student_run, "B", 1), load_teacher(teacher_run, "B", 1)
    assert set(student_b.heads) == {"next_item"} and set(teacher_b.heads) == {"profile", "rating", "ctr", "next_item"}
    assert set(load_teacher(student_run, "A", 1).heads) == {"profile", "rating", "ctr", "next_item"}
    assert student_b.item_tower.ids.weight.shape[1] == 4
    student = load_run(student_run)  # saved, reloadable, served like any polyrec run
    assert len(student.recommend("u001", k=5)) == 5


def test_student_takes_the_teachers_data_and_seeds(student_run, teacher_run) -> None:
    from polyrec.config import RunConfig

    cfg = RunConfig.load(student_run / "config.yaml")
    assert cfg.seeds == [0, 1] and cfg.distill.teacher == str(teacher_run)
    assert cfg.text.encoder == STUDENT_TEXT and cfg.model.dim == 8


def test_unknown_seed_or_missing_teacher_is_one_line(teacher_run, tmp_path, capsys) -> None:
    assert main(["distill", "--teacher", str(teacher_run), "--seeds", "7", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seeds [7]" in err, err
    assert main(["distill", "--teacher", str(tmp_path / "nothing"), "--out", str(tmp_path / "s")]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_the_student_defaults_to_the_protocols_the_teacher_has_models_for(teacher_run, tmp_path) -> None:
    """A teacher run may have skipped a protocol its data could not support."""
    import shutil

    from polyrec.distill.run import student_config as distill_config
    from polyrec.models.io import trained_seeds

    only_a = tmp_path / "teacher-a"
    shutil.copytree(teacher_run, only_a)
    for folder in only_a.rglob("B"):
        if folder.is_dir():
            shutil.rmtree(folder)
    assert trained_seeds(only_a, "A") == [0, 1] and trained_seeds(only_a, "B") == []
    assert distill_config(only_a).protocols == ["A"]
    assert distill_config(teacher_run).protocols == ["A", "B"]
    with pytest.raises(ValueError, match="no model for protocol B with seeds"):
        distill_config(only_a, protocols=["B"])


def _batch_and_models(folder, teacher_run):
    from polyrec.data.generic import load_generic
    from polyrec.train.protocol_data import prepare

    ds = load_generic(folder)
    data = prepare(ds, "A", 0, 4.0, 10, True)
    cfg = student_config(folder)
    student = build_model(data, cfg.tasks, ds.n_items, fake_encode(ds.items["text"].tolist(), STUDENT_TEXT), cfg.model, ds.rating_range)
    users = np.flatnonzero(data.train.lengths() > 1)[:16]
    return data, cfg, student, collate(data.train, users, 20)


def test_soft_terms_vanish_when_the_student_is_the_teacher(folder, teacher_run) -> None:
    """A teacher identical to the student: every soft term is 0, which also checks that the
    teacher is scored on the student's own draws (positions, negatives)."""
    data, cfg, student, batch = _batch_and_models(folder, teacher_run)
    student.eval()
    twin = copy.deepcopy(student)
    objective = DistillObjective(twin, data.profile_labels, cfg.distill, "A", cfg.model.dim, None, sampled_negatives=5)
    s = task_outputs(student, batch, 5, 0.5, 0.5)
    t = task_outputs(twin, batch, draws=s.draws)
    terms = objective._soft_terms(s, t, 2.0, None)
    assert set(terms) == {"rating", "ctr", "next_item", "profile"}
    for name, value in terms.items():
        assert abs(float(value.detach())) < 1e-5, (name, float(value.detach()))
    other = task_outputs(twin, batch, 5, 0.5, 0.5)  # fresh draws: other positions and negatives
    assert not torch.equal(other.draws.pair_positions, s.draws.pair_positions)


def test_a_teachers_soft_pair_labels_carry_its_item_autoencoder(folder, teacher_run) -> None:
    """With an item autoencoder (and its engagement twins and item-kNN view) the teacher's soft rating and ctr
    labels are its joined predictions, each pair's own rating left out of its item's codes
    (as the autoencoders read a held-out pair), not its heads' outputs alone."""
    data, cfg, student, batch = _batch_and_models(folder, teacher_run)
    teacher = load_teacher(teacher_run, "A", 0)
    ae = teacher.item_autoencoder
    assert ae is not None  # the tiny config builds one under protocol A
    ae.rating_share.fill_(0.5)
    teacher.ctr_join.copy_(torch.tensor([0.5, 2.0, 0.1]))
    engagement, user_engagement = teacher.engagement_autoencoder, teacher.user_engagement_autoencoder
    assert engagement is not None and user_engagement is not None  # the tiny config builds both beside it
    engagement.weight.fill_(0.3)
    user_engagement.weight.fill_(-0.2)
    neighbors, text_neighbors = teacher.item_neighbors, teacher.text_neighbors
    assert neighbors is not None and text_neighbors is not None  # the default's kNN views
    neighbors.weight.fill_(0.4)
    text_neighbors.weight.fill_(-0.1)
    objective = DistillObjective(teacher, data.profile_labels, cfg.distill, "A", cfg.model.dim)
    s = task_outputs(student, batch, 0, 1.0, 1.0)
    heads = task_outputs(teacher, batch, draws=s.draws)
    joined = task_outputs(teacher, batch, draws=s.draws)
    objective._join_teacher_pairs(joined, batch)
    positions = s.draws.pair_positions
    users = batch.users.unsqueeze(1).expand(-1, len(positions))[heads.pair_real]
    items = batch.items[:, positions][heads.pair_real]
    assert torch.equal(heads.pair_items, items)
    left_out = teacher.autoencoder_deviation(users, items, own=ae.inputs(heads.ratings))
    mean = teacher.global_mean
    assert torch.allclose(joined.rating, 0.5 * heads.rating + 0.5 * (mean + left_out), atol=1e-5)
    engaged = engagement(users, items, own=ae.inputs(heads.ratings))  # their codes leave the pair out too
    user_engaged = user_engagement(users, items, own=ae.inputs(heads.ratings))
    near = 0.4 * neighbors(users, items) - 0.1 * text_neighbors(users, items)  # never their own neighbours
    expected = 0.5 * heads.ctr + 2.0 * left_out + 0.1 + 0.3 * engaged - 0.2 * user_engaged + near
    assert torch.allclose(joined.ctr, expected, atol=1e-5)
    read_own = teacher.autoencoder_deviation(users, items)  # codes that read the pair's own rating: not what is used
    assert not torch.allclose(joined.rating, 0.5 * heads.rating + 0.5 * (mean + read_own), atol=1e-4)


def test_every_part_adds_to_the_loss_and_trains(folder, teacher_run) -> None:
    data, cfg, student, batch = _batch_and_models(folder, teacher_run)
    teacher = load_teacher(teacher_run, "A", 0)
    from polyrec.distill.clusters import user_representations

    clusters = choose_clusters(user_representations(teacher, data.train), data.train.lengths() > 0, [2, 4], 0)
    everything = DistillConfig(weights={p: 1.0 for p in DISTILL_PARTS})
    full = DistillObjective(teacher, data.profile_labels, everything, "A", cfg.model.dim, clusters)
    torch.manual_seed(0)
    losses = full.losses(student, batch, (1.0, 1.0))
    assert set(losses) == {"rating", "ctr", "next_item", "profile", "cluster"}
    sum(losses.values()).backward()
    assert full.cluster_head.weight.grad is not None and full.cluster_head.weight.grad.abs().sum() > 0
    for part in DISTILL_PARTS[1:]:
        weights = {p: float(p != part) for p in DISTILL_PARTS}
        without = DistillObjective(teacher, data.profile_labels, DistillConfig(weights=weights), "A", cfg.model.dim, clusters)
        without.cluster_head.load_state_dict(full.cluster_head.state_dict())
        torch.manual_seed(0)
        fewer = without.losses(student, batch, (1.0, 1.0))
        touched = ["rating", "ctr"] if part == "unseen" else [part]  # unseen adds to both pair tasks
        for task in touched:
            assert fewer[task].item() < losses[task].item(), (part, task)  # the soft term (≥ 0) is gone
        assert all(torch.allclose(fewer[t], losses[t]) for t in losses if t not in touched)


def test_with_no_soft_part_on_the_teacher_is_not_run_and_the_losses_are_the_true_labels_own(folder, teacher_run) -> None:
    """configs/student-tiny.yaml's protocol B: every part at 0 trains as the student alone."""
    from polyrec.train.losses import hard_losses

    data, cfg, student, batch = _batch_and_models(folder, teacher_run)
    teacher = load_teacher(teacher_run, "A", 0)
    calls: list[int] = []
    teacher.register_forward_pre_hook(lambda *_: calls.append(1))
    teacher.user_encoder.register_forward_pre_hook(lambda *_: calls.append(1))
    off = DistillObjective(teacher, data.profile_labels, DistillConfig(weights={p: 0.0 for p in DISTILL_PARTS}), "A", cfg.model.dim)
    torch.manual_seed(0)
    losses = off.losses(student, batch, (1.0, 1.0))
    torch.manual_seed(0)
    own = hard_losses(task_outputs(student, batch, 0, 1.0, 1.0, profile=True), batch, data.profile_labels)
    assert not calls and set(losses) == set(own)
    assert all(torch.allclose(losses[t], own[t]) for t in own)
    on = DistillObjective(teacher, data.profile_labels, DistillConfig(weights={"next_item": 0.5}), "A", cfg.model.dim)
    on.losses(student, batch, (1.0, 1.0))
    assert calls  # one soft part on: the teacher runs


def test_part_weights_are_per_protocol_and_a_bare_part_sets_every_protocol() -> None:
    default = DistillConfig()
    assert default.weights_for("B") == {"next_item": 1.0} and default.weights_for("A")["cluster"] == 0.5
    one = RunConfig.from_dict({"distill": {"weights": {"B": {"cluster": 0.25}}}}).distill
    assert one.weights_for("B") == {"next_item": 1.0, "cluster": 0.25}  # merged, not replaced
    assert one.weights_for("A") == default.weights_for("A")
    everywhere = RunConfig.from_dict({"distill": {"weights": {"next_item": 0.5}}}).distill
    assert everywhere.weights_for("A")["next_item"] == everywhere.weights_for("B")["next_item"] == 0.5
    assert everywhere.weights_for("A")["cluster"] == 0.5
    everywhere.remove("cluster")
    assert everywhere.parts_on() == ["rating", "ctr", "profile", "next_item"]
    assert DistillConfig(weights={"ctr": 1.0}).weights_for("B") == {"ctr": 1.0}  # flat: every protocol
    for bad, message in [({"C": {"ctr": 1.0}}, "protocol"), ({"B": {"ctrr": 1.0}}, "ctrr"), ({"A": {"ctr": -1.0}}, "≥ 0")]:
        with pytest.raises(ValueError, match=message):
            RunConfig.from_dict({"distill": {"weights": bad}})


def test_part_weights_set_after_construction_save_and_load_back_as_the_same_question(tmp_path) -> None:
    """A file's mappings merge with the defaults when read: weights saved with parts left out
    would read back with those parts at their default weights, and a resumed run would find
    its own records another question's."""
    cfg = RunConfig()
    cfg.distill.weights = {"A": {"rating": 2.0}}  # set after construction: checked and written out too
    assert cfg.distill.weights_for("A") == {"rating": 2.0} and cfg.distill.weights_for("B") == {}
    cfg.save(tmp_path / "config.yaml")
    back = RunConfig.load(tmp_path / "config.yaml", saved=True)
    assert back.distill.weights == cfg.distill.weights
    assert back.what_results_depend_on() == cfg.what_results_depend_on()
    with pytest.raises(ValueError, match="ctrr"):
        cfg.distill.weights = {"ctrr": 1.0}


def test_soft_kl_is_zero_at_the_teacher_positive_elsewhere_and_ignores_masked_items() -> None:
    t = torch.randn(5, 7)
    t[:, 2] = float("-inf")  # an item masked out for both (already taken)
    s = t.clone()
    assert torch.allclose(soft_kl_rows(s, t, 2.0), torch.zeros(5), atol=1e-6)
    s[:, [0, 1, 3]] = torch.randn(5, 3)
    kl = soft_kl_rows(s, t, 2.0)
    assert torch.isfinite(kl).all() and (kl > 0).all()
    z = torch.randn(10)
    assert abs(float(soft_binary_kl(z, z, 3.0))) < 1e-6 and float(soft_binary_kl(-z, z, 3.0)) > 0


def test_the_non_target_next_item_kl_reads_every_column_but_the_true_next_items() -> None:
    t, target = torch.randn(4, 6), torch.tensor([0, 3, 5, 3])
    t[:, 2] = float("-inf")  # taken before: masked for both
    s = t.clone()
    s[torch.arange(4), target] += 5.0  # the student differs from the teacher on the targets only
    def outputs(logits: torch.Tensor) -> SimpleNamespace:  # a TaskOutputs with next item alone
        return SimpleNamespace(rating=None, ctr=None, profile=None, next_item=(logits, target))

    kl = {}
    for keep in (True, False):
        objective = DistillObjective(None, {}, DistillConfig(next_item_target=keep), "B", student_dim=4)
        kl[keep] = objective._soft_terms(outputs(s), outputs(t), 2.0, None)["next_item"]
    assert float(kl[True]) > 0 and abs(float(kl[False])) < 1e-6
    s[:, 1] += 1.0  # now off the targets too: the non-target KL sees it
    assert (soft_kl_rows(without_target(s, target), without_target(t, target), 2.0) > 0).all()
    assert torch.isinf(without_target(t, target)[torch.arange(4), target]).all()


def test_k_is_chosen_on_held_out_users_and_clusters_weigh_equally() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 5
    sizes = [200, 100, 50, 25]  # unequal clusters
    reps = np.concatenate([c + rng.normal(size=(n, 6)) * 0.3 for c, n in zip(centres, sizes)]).astype(np.float32)
    has = np.ones(len(reps), dtype=bool)
    has[:5] = False  # users without a history get no cluster
    found = choose_clusters(reps, has, [2, 4, 8], seed=0)
    assert found.k == 4 and set(found.silhouette) == {2, 4, 8}
    assert (found.labels[:5] == -1).all() and (found.weights[:5] == 0).all()
    per_cluster = [found.weights[found.labels == c].sum() for c in range(found.k)]
    assert np.allclose(per_cluster, per_cluster[0])  # each cluster counts as much, whatever its size
    assert np.isclose(found.weights[has].mean(), 1.0)


def test_mpnet_parts_are_joined_and_unzipped_once(tmp_path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/config.json", "{}")
    raw = buffer.getvalue()
    cuts = [0, len(raw) // 3, 2 * len(raw) // 3, len(raw)]
    parts = []
    for k in range(3):
        part = tmp_path / "parts" / f"all-mpnet-base-v2.zip.{k + 1:03d}"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(raw[cuts[k] : cuts[k + 1]])
        parts.append(part)
    folder = unpack_mpnet(tmp_path / "cache", parts)
    assert (folder / "modules.json").read_text() == "[]" and (folder / "config.json").is_file()
    assert unpack_mpnet(tmp_path / "cache", [tmp_path / "gone"]) == folder  # cached: parts not read again
    with pytest.raises(FileNotFoundError, match="not installed; pip install 'polyrec\\[teacher\\]'"):
        _part_files(("no-such-package-part-001",))


def test_bench_distill_writes_every_configuration(folder, teacher_run, tmp_path, capsys) -> None:
    teacher_yaml, student_yaml = tmp_path / "teacher.yaml", tmp_path / "student.yaml"
    # A narrow item autoencoder keeps protocol A's models larger than B's (the size lines
    # per protocol); the engagement twins, two thirds of the fitting time, add nothing here,
    # and the fits are capped as the tiny configs' are.
    fitted = f"item_autoencoder: 16, engagement_autoencoder: 0, user_engagement_autoencoder: 0, autoencoder_epochs: {AUTOENCODER_EPOCHS}"
    teacher_yaml.write_text(
        f"text: {{enabled: false}}\nmodel: {{dim: 24, layers: 2, heads: 2, max_history: 20, dropout: 0.0, {fitted}}}\n"
        "train: {epochs: 2, batch_size: 16, lr: 0.01, threads: 1}\n"
    )
    student_yaml.write_text(
        f"text: {{enabled: false}}\nmodel: {{dim: 8, layers: 1, heads: 1, max_history: 20, dropout: 0.0, {fitted}}}\n"
        "train: {epochs: 2, batch_size: 16, lr: 0.01, threads: 1}\ndistill: {clusters: [2, 4]}\n"
    )
    doc = tmp_path / "distill.md"
    args = ["bench", "distill", "--teacher-config", str(teacher_yaml), "--config", str(student_yaml), "--data", str(folder),
            "--seeds", "0,1", "--ablation-seeds", "0", "--out", str(tmp_path / "bench"), "--doc", str(doc), "--quiet"]
    assert main(args) == 0
    text = doc.read_text()
    for name in ["teacher", "student", "distilled", *(f"no-{p}" for p in DistillConfig().parts_on())]:
        assert f"| {name} |" in text
    assert "smoke run" in text and "student / teacher" in text and "trainable parameters, protocol B: student / teacher" in text
    # An item autoencoder a seed for the teacher, and one a seed for all the students together:
    # alone, distilled and each ablation draw the same one, so they share its fit.
    assert len(list((tmp_path / "bench" / "fit-cache").glob("*.pt"))) == 4
    assert main(args) == 0 and "done before, reused" in capsys.readouterr().out  # resumable


def test_the_size_bar_compares_each_protocols_student_with_that_protocols_teacher() -> None:
    """The teacher's protocol-A model carries the item autoencoder and its protocol-B model
    does not: each student model is held to the teacher model of its own protocol."""
    teacher = {"model.A.trainable_params": 1000.0, "model.B.trainable_params": 400.0, "model.trainable_params": 400.0}
    student = {"model.A.trainable_params": 90.0, "model.B.trainable_params": 50.0, "model.trainable_params": 50.0}
    lines = ratio_checks(student, teacher)
    assert "- trainable parameters, protocol A: student / teacher = 0.090 (bar ≤ 0.10) — met" in lines
    assert "- trainable parameters, protocol B: student / teacher = 0.125 (bar ≤ 0.10) — NOT met" in lines
    one_count = ratio_checks({"model.trainable_params": 5.0}, {"model.trainable_params": 100.0})
    assert one_count == ["- trainable parameters: student / teacher = 0.050 (bar ≤ 0.10) — met"]


def test_the_profile_refit_follows_the_teacher_on_users_whose_attributes_it_never_sees(ds, data_a) -> None:
    """A distilled student refits its profile head on the true labels of the training users
    and the teacher's distributions for every user: on held-out users it moves towards the
    teacher. The stand-in teacher here knows every user's true class (a perfect teacher)."""
    teacher = {
        name: 4.0 * torch.nn.functional.one_hot(torch.from_numpy(codes.clip(min=0)), len(data_a.attribute_classes[name])).float()
        for name, codes in data_a.profile_true.items()
    }
    held_out = np.flatnonzero(np.all([v < 0 for v in data_a.profile_labels.values()], axis=0) & (data_a.train.lengths() > 0))

    def distance_to_teacher(soft: SoftProfileTargets | None) -> float:
        torch.manual_seed(0)
        model = build_model(data_a, ["profile", "rating"], ds.n_items, None, tiny_config().model, ds.rating_range)
        refit_profile_head(model, data_a, tiny_config().train, max_epochs=15, patience=15, soft=soft)
        with torch.no_grad():
            logits = model.profile_logits(model.encode(collate(data_a.train, held_out, 50)))
        return float(sum(soft_kl_rows(lg, teacher[k][held_out], 1.0).mean() for k, lg in logits.items()))

    assert len(held_out) > 0
    assert distance_to_teacher(SoftProfileTargets(teacher, weight=1.0, temperature=1.0)) < distance_to_teacher(None)
    same = SoftProfileTargets(teacher, weight=1.0, temperature=2.0)
    assert float(same.loss({k: v[:5] for k, v in teacher.items()}, np.arange(5))) == pytest.approx(0.0, abs=1e-6)
