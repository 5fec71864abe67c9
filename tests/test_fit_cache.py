"""The autoencoder fit cache (`train.fit_cache`): a hit gives exactly what the fit gives,
anything the fit reads changes the key, and the configurations of one seed in
`polyrec bench mtl` share one key (which is what makes the study faster)."""

from __future__ import annotations

import copy

import pytest
import torch
from synthetic import is_a_cached_fit, tiny_config

from polyrec.config import MTL_ARCHS, RunConfig
from polyrec.train.finetune import build_model
from polyrec.train.item_autoencoder_fit import fit_item_autoencoder, validation_ratings
from polyrec.train.fit_cache import fit_key


def _model(data, tasks: list[str], arch: str = "shared_bottom", n_items: int = 0):
    torch.manual_seed(0)  # as run_jobs seeds each (protocol, seed) job
    cfg = tiny_config().model
    cfg.mtl.arch = arch
    return build_model(data, tasks, n_items, None, cfg)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_a_cached_fit_is_read_back_exactly_and_not_fitted_again(ds, data_a, tmp_path, monkeypatch) -> None:
    fitted = _model(data_a, ["rating"], n_items=ds.n_items).item_autoencoder
    rmse = fit_item_autoencoder(fitted, data_a, l2=1.0, progress=False, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1 and not list(tmp_path.glob("*.tmp*"))

    def no_fit(*args, **kwargs):  # a fit starts with its optimiser; a read-back makes none
        raise AssertionError("fitted again although the cache holds this fit")

    monkeypatch.setattr(torch.optim, "Adam", no_fit)
    again = _model(data_a, ["rating"], n_items=ds.n_items).item_autoencoder
    assert fit_item_autoencoder(again, data_a, l2=1.0, progress=False, cache=tmp_path) == rmse
    for name, value in _state(fitted).items():
        assert torch.equal(again.state_dict()[name], value), name

    # Another prior weight is another fit: the stub is reached.
    with pytest.raises(AssertionError, match="fitted again"):
        fit_item_autoencoder(_model(data_a, ["rating"], n_items=ds.n_items).item_autoencoder, data_a, l2=2.0, progress=False, cache=tmp_path)


def test_everything_the_fit_reads_is_in_the_key(ds, data_a) -> None:
    ae = _model(data_a, ["rating"], n_items=ds.n_items).item_autoencoder
    valid = validation_ratings(data_a)
    key = fit_key(ae, valid, {"seed": 0})
    assert fit_key(ae, valid, {"seed": 1}) != key
    ratings = copy.deepcopy(valid)
    ratings[2][0] += 1.0
    assert fit_key(ae, ratings, {"seed": 0}) != key
    with torch.no_grad():
        ae.value[0] += 1.0  # a training rating (the ratings live in the autoencoder's buffers)
    assert fit_key(ae, valid, {"seed": 0}) != key
    with torch.no_grad():
        ae.value[0] -= 1.0
        ae.encoder[0, 0] += 1e-3  # an initial weight
    assert fit_key(ae, valid, {"seed": 0}) != key


def test_the_study_configurations_of_a_seed_share_one_fit(ds, data_a) -> None:
    """Every architecture, and the single-task rating model, draw the same initial item
    autoencoder from the same training ratings: one key, so one fit per seed. (The
    single-task ctr model has none: nothing it reads is fitted to ratings.)"""
    valid = validation_ratings(data_a)
    models = [_model(data_a, ["rating", "ctr", "profile"], arch, ds.n_items) for arch in MTL_ARCHS]
    models.append(_model(data_a, ["rating"], n_items=ds.n_items))
    keys = {fit_key(m.item_autoencoder, valid, {"seed": 0}) for m in models}
    assert len(keys) == 1
    assert _model(data_a, ["ctr"], n_items=ds.n_items).item_autoencoder is None


def test_the_fit_cache_is_a_speed_setting_only() -> None:
    with_cache = RunConfig()
    with_cache.train.fit_cache = "somewhere"
    assert with_cache.what_results_depend_on() == RunConfig().what_results_depend_on()


@pytest.mark.parametrize("weighting", ["gradnorm", "pcgrad"])
def test_fine_tuning_never_moves_a_fitted_autoencoder(ds, data_a, tmp_path, weighting) -> None:
    """PCGrad sets a (zero) gradient on every shared parameter, the autoencoders' too, which
    AdamW's weight decay would turn into steps: they are frozen once fitted."""
    from polyrec.train.finetune import finetune

    model = _model(data_a, ["rating", "ctr", "profile"], n_items=ds.n_items)
    train = tiny_config(epochs=2).train
    train.weighting.method, train.fit_cache = weighting, str(tmp_path)
    finetune(model, data_a, train, progress=False)
    for ae in (model.item_autoencoder, model.user_autoencoder):
        assert is_a_cached_fit(ae, tmp_path), type(ae).__name__


def test_the_source_digest_follows_the_code_and_its_polyrec_bases() -> None:
    from polyrec.models.item_autoencoder import ItemAutoencoder
    from polyrec.models.user_autoencoder import UserAutoencoder
    from polyrec.train.fit_cache import source_digest

    item, user = source_digest(ItemAutoencoder), source_digest(UserAutoencoder)
    assert item != user and source_digest(ItemAutoencoder) == item

    class Edited(ItemAutoencoder):
        def penalty(self) -> torch.Tensor:
            return super().penalty() * 2

    assert source_digest(Edited) != item
