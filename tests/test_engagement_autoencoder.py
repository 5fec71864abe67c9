"""The engagement autoencoders (item- and user-side): fitted to the ctr labels, joined to the ctr
logit at weights set on validation, changing nothing else, and models saved before them
loading without them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import assert_joined_at_its_weight, strip_saved_field, tiny_config

from polyrec.config import TASKS, ModelConfig
from polyrec.models.io import load_model, save_model
from polyrec.train.finetune import build_model, finetune
from polyrec.train.item_autoencoder_fit import engagement_targets, fit_engagement_autoencoder, validation_labels


VIEWS = ("engagement_autoencoder", "user_engagement_autoencoder")


def _model(ds, data_a, engagement: int, user_engagement: int = 0):
    torch.manual_seed(0)
    cfg = tiny_config().model
    cfg.engagement_autoencoder, cfg.user_engagement_autoencoder = engagement, user_engagement
    return build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)


def _validation_logloss(ae, data_a) -> float:
    users, items, labels = validation_labels(data_a)
    train_labels = engagement_targets(data_a)[3]
    offset = float(np.log(train_labels.mean() / (1 - train_labels.mean())))
    with torch.no_grad():
        ae.eval()
        logit = offset + ae(torch.from_numpy(users), torch.from_numpy(items))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.from_numpy(labels).float()))


def test_every_other_weight_starts_as_in_the_model_without_them(ds, data_a) -> None:
    without, with_them = _model(ds, data_a, 0), _model(ds, data_a, 8, 8)
    assert all(getattr(without, v) is None and getattr(with_them, v) is not None for v in VIEWS)
    theirs = with_them.state_dict()
    for name, tensor in without.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    assert set(with_them.engagement_views()) == {"engagement", "user_engagement"}
    assert all(float(v.weight) == 0.0 for v in with_them.engagement_views().values())  # join nothing until fitted
    # The user-side view does not move the item-side one's start either.
    item_side_alone = _model(ds, data_a, 8).engagement_autoencoder.state_dict()
    assert all(torch.equal(t, item_side_alone[k]) for k, t in with_them.engagement_autoencoder.state_dict().items())


@pytest.mark.parametrize("view", VIEWS)
def test_its_fit_lowers_the_validation_log_loss_it_returns(ds, data_a, view) -> None:
    model = _model(ds, data_a, 8, 8)
    ae = getattr(model, view)
    before = _validation_logloss(ae, data_a)
    returned = fit_engagement_autoencoder(ae, data_a, l2=1.0, progress=False)
    assert returned is not None and returned < before
    if view == "engagement_autoencoder":  # it keeps the offset its fit added, for new users' rows
        mean = engagement_targets(data_a)[3].mean()
        assert float(ae.offset) == pytest.approx(np.log(mean / (1 - mean)), abs=1e-6) and bool(ae.offset_kept)
    assert returned == pytest.approx(_validation_logloss(ae, data_a), abs=1e-5)  # the kept state's


def test_finetune_joins_their_logits_to_the_ctr_logit_at_the_validation_weights(ds, data_a) -> None:
    model = _model(ds, data_a, 8, 8)
    result = finetune(model, data_a, tiny_config(epochs=2).train, progress=False)
    users, items = torch.arange(6), torch.tensor([0, 1, 2, 3, 4, 5])
    heads = {"ctr": torch.zeros(6)}
    for name, ae in model.engagement_views().items():
        weight = float(ae.weight)
        assert weight != 0.0 and result.autoencoder[f"ctr_{name}_weight"] == pytest.approx(weight)
        assert f"{name}_valid_logloss" in result.autoencoder
        assert not any(p.requires_grad for p in ae.parameters())  # frozen after its fit
        assert_joined_at_its_weight(model, ae, users, items, heads)


@pytest.mark.parametrize("view", VIEWS)
def test_a_model_saved_before_it_loads_without_it(ds, data_a, tmp_path, view) -> None:
    model = _model(ds, data_a, 8, 8)
    getattr(model, view).weight.fill_(0.7)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert getattr(loaded, view) is not None and float(getattr(loaded, view).weight) == pytest.approx(0.7)
    strip_saved_field(tmp_path, view, f"{view}.")
    old = load_model(tmp_path)
    assert getattr(old, view) is None and old.item_autoencoder is not None
    assert all(getattr(old, other) is not None for other in VIEWS if other != view)


@pytest.mark.parametrize("view", VIEWS)
def test_a_negative_width_is_refused_by_name(view) -> None:
    with pytest.raises(ValueError, match=f"'model.{view}'"):
        ModelConfig(**{view: -1})


def test_a_new_users_engagement_row_is_the_penalised_log_loss_optimum() -> None:
    """``fold_in`` of the item-side view: the row and bias minimising the log-loss of the
    user's labels plus the fit's prior on the row and a prior on the bias at the trained
    users' mean and spread; zero gradient at its answer. No offset kept: no row."""
    from synthetic import perturbed_autoencoder, random_ratings

    from polyrec.models.engagement_autoencoder import EngagementAutoencoder

    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(EngagementAutoencoder, users, items, ratings)
    history, labels = torch.tensor([[2, 5, 7, 1, 9]]), torch.tensor([[1.0, 0.0, float("nan"), 1.0, 0.0]])
    assert ae.fold_in(history, labels, 3.0) is None  # saved before the offset was kept
    ae.keep_offset(0.4)
    rows = ae.fold_in(history, labels, 3.0)
    bias = rows.bias.detach().clone().requires_grad_()
    decoder = rows.decoder.detach().clone().requires_grad_()
    read, y = torch.tensor([2, 5, 1]), torch.tensor([1.0, 0.0, 1.0])  # 9: beyond the catalogue
    with torch.no_grad():
        codes, item_bias, trained = ae.codes(read), ae.item_bias[read], ae.user_bias.double()
    logit = 0.4 + item_bias + bias + codes @ decoder[0]
    prior = (bias - float(trained.mean())) ** 2 / (2 * float(trained.var()))
    objective = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="sum") + 1.5 * (decoder**2).sum() + prior.sum()
    objective.backward()
    assert float(bias.grad.abs().max()) < 1e-4 and float(decoder.grad.abs().max()) < 1e-4
    # Labels all alike: the bias stays finite, drawn to the trained users'.
    same = ae.fold_in(torch.tensor([[2, 5, 1]]), torch.ones(1, 3), 3.0)
    assert abs(float(same.bias[0])) < 10


def test_a_model_saved_before_the_offset_was_kept_loads_and_folds_no_row_in(ds, data_a, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    model = _model(ds, data_a, 8)
    model.engagement_autoencoder.keep_offset(0.3)
    save_model(model, tmp_path)
    kept = load_model(tmp_path).engagement_autoencoder
    assert float(kept.offset) == pytest.approx(0.3) and kept.fold_in(torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.0]]), 1.0)
    weights = load_file(str(tmp_path / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.endswith(("offset", "offset_kept"))}, str(tmp_path / "model.safetensors"))
    old = load_model(tmp_path).engagement_autoencoder
    assert not old.offset_kept and old.fold_in(torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.0]]), 1.0) is None
