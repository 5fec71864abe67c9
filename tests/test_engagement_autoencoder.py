"""The engagement autoencoder: fitted to the ctr labels, joined to the ctr logit at a weight set
on validation, changing nothing else, and models saved before it loading without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import strip_saved_field, tiny_config

from polyrec.config import TASKS, ModelConfig
from polyrec.models.io import load_model, save_model
from polyrec.train.finetune import build_model, finetune
from polyrec.train.item_autoencoder_fit import engagement_targets, fit_engagement_autoencoder, validation_labels


def _model(ds, data_a, engagement: int):
    torch.manual_seed(0)
    cfg = tiny_config().model
    cfg.engagement_autoencoder = engagement
    return build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)


def _validation_logloss(ae, data_a) -> float:
    users, items, labels = validation_labels(data_a)
    train_labels = engagement_targets(data_a)[3]
    offset = float(np.log(train_labels.mean() / (1 - train_labels.mean())))
    with torch.no_grad():
        ae.eval()
        logit = offset + ae(torch.from_numpy(users), torch.from_numpy(items))
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.from_numpy(labels).float()))


def test_every_other_weight_starts_as_in_the_model_without_it(ds, data_a) -> None:
    without, with_it = _model(ds, data_a, 0), _model(ds, data_a, 8)
    assert without.engagement_autoencoder is None and with_it.engagement_autoencoder is not None
    theirs = with_it.state_dict()
    for name, tensor in without.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    assert float(with_it.engagement_autoencoder.weight) == 0.0  # joins nothing until fitted


def test_its_fit_lowers_the_validation_log_loss_it_returns(ds, data_a) -> None:
    model = _model(ds, data_a, 8)
    ae = model.engagement_autoencoder
    before = _validation_logloss(ae, data_a)
    returned = fit_engagement_autoencoder(ae, data_a, l2=1.0, progress=False)
    assert returned is not None and returned < before
    assert returned == pytest.approx(_validation_logloss(ae, data_a), abs=1e-5)  # the kept state's


def test_finetune_joins_its_logit_to_the_ctr_logit_at_the_validation_weight(ds, data_a) -> None:
    model = _model(ds, data_a, 8)
    result = finetune(model, data_a, tiny_config(epochs=2).train, progress=False)
    ae = model.engagement_autoencoder
    weight = float(ae.weight)
    assert weight != 0.0 and result.autoencoder["ctr_engagement_weight"] == pytest.approx(weight)
    assert "engagement_valid_logloss" in result.autoencoder
    assert not any(p.requires_grad for p in ae.parameters())  # frozen after its fit
    users, items = torch.arange(6), torch.tensor([0, 1, 2, 3, 4, 5])
    heads = {"ctr": torch.zeros(6)}
    with torch.no_grad():
        joined = model.join_autoencoder(users, items, heads)["ctr"]
        ae.weight.zero_()
        unjoined = model.join_autoencoder(users, items, heads)["ctr"]
        assert torch.allclose(joined - unjoined, weight * ae(users, items), atol=1e-6)


def test_a_model_saved_before_it_loads_without_it(ds, data_a, tmp_path) -> None:
    model = _model(ds, data_a, 8)
    model.engagement_autoencoder.weight.fill_(0.7)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.engagement_autoencoder is not None and float(loaded.engagement_autoencoder.weight) == pytest.approx(0.7)
    strip_saved_field(tmp_path, "engagement_autoencoder", "engagement_autoencoder.")
    old = load_model(tmp_path)
    assert old.engagement_autoencoder is None and old.item_autoencoder is not None


def test_a_negative_width_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'model.engagement_autoencoder'"):
        ModelConfig(engagement_autoencoder=-1)
