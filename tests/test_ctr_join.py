"""The ctr join: the model's own weights on its head logit, the item autoencoder's deviation and
the ctr views' values (engagement autoencoders, item kNN); a model without the rating task reads nothing fitted to ratings;
models saved while the join lived in the item autoencoder load with the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from synthetic import tiny_config

from polyrec.eval.predict import predict_pairs
from polyrec.models.io import SPEC, WEIGHTS, load_model, save_model
from polyrec.models.polyrec import PolyRecModel
from polyrec.train.finetune import build_model, finetune


def _trained(ds, data_a, tasks: list[str]):
    torch.manual_seed(0)
    cfg = tiny_config(epochs=2)
    cfg.model.user_engagement_autoencoder = 8
    model = build_model(data_a, tasks, ds.n_items, None, cfg.model, ds.rating_range)
    result = finetune(model, data_a, cfg.train, progress=False)
    return model, result


def _valid_predictions(model, data_a) -> dict[str, np.ndarray]:
    pairs = data_a.valid.pairs
    return predict_pairs(model, data_a.valid.history, pairs.users, pairs.items)


@pytest.fixture(scope="module")
def ctr_alone(ds, data_a):
    return _trained(ds, data_a, ["ctr"])


def test_a_ctr_model_without_the_rating_task_has_no_rating_autoencoder(ctr_alone) -> None:
    model, result = ctr_alone
    assert model.item_autoencoder is None and model.user_autoencoder is None
    assert set(model.engagement_views()) == {"engagement", "user_engagement"}
    # Its join is fitted all the same, without a deviation column.
    assert "ctr_autoencoder_weight" not in result.autoencoder and "rating_share" not in result.autoencoder
    a, b, c = model.ctr_join.tolist()
    assert b == 0.0 and a == pytest.approx(result.autoencoder["ctr_model_weight"])
    assert all(float(v.weight) == pytest.approx(result.autoencoder[f"ctr_{n}_weight"]) for n, v in model.engagement_views().items())
    assert all(f"{n}_valid_logloss" in result.autoencoder for n in model.engagement_views())


def test_the_ctr_join_is_what_the_model_predicts(ctr_alone) -> None:
    model, _ = ctr_alone
    users, items = torch.arange(5), torch.tensor([3, 1, 4, 1, 5])
    heads = {"ctr": torch.linspace(-1.0, 1.0, 5)}
    a, _, c = model.ctr_join.tolist()
    with torch.no_grad():
        views = sum(float(v.weight) * v(users, items) for v in model.ctr_views().values())
        assert torch.allclose(model.join_autoencoder(users, items, heads)["ctr"], a * heads["ctr"] + c + views, atol=1e-6)


def test_a_rating_model_has_the_rating_autoencoder_and_no_engagement_view(ds, data_a) -> None:
    cfg = tiny_config().model
    model = build_model(data_a, ["rating"], ds.n_items, None, cfg, ds.rating_range)
    assert model.item_autoencoder is not None and not model.engagement_views()


def test_a_model_saved_with_the_join_in_its_item_autoencoder_loads_the_same(ds, data_a, tmp_path) -> None:
    model, _ = _trained(ds, data_a, ["rating", "ctr"])
    before = _valid_predictions(model, data_a)
    save_model(model, tmp_path)
    # As saved before the join moved: under the item autoencoder, with a copy in each twin.
    state = load_file(str(tmp_path / WEIGHTS))
    join = state.pop("ctr_join")
    state["item_autoencoder.ctr_join"] = join
    for twin in ("user_autoencoder", "engagement_autoencoder", "user_engagement_autoencoder"):
        state[f"{twin}.ctr_join"] = torch.tensor([1.0, 0.0, 0.0])
    save_file(state, str(tmp_path / WEIGHTS))
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.ctr_join, join)
    after = _valid_predictions(loaded, data_a)
    assert all(np.allclose(before[k], after[k], atol=1e-6) for k in before)


def test_a_ctr_model_saved_before_builds_its_rating_autoencoder_as_it_was_trained(ds, data_a, tmp_path) -> None:
    spec = build_model(data_a, ["ctr"], ds.n_items, None, tiny_config().model, ds.rating_range).spec
    spec.rating_task_autoencoder = False  # as then: ctr alone built one
    save_model(PolyRecModel(spec), tmp_path)
    raw = yaml.safe_load((tmp_path / SPEC).read_text())
    raw.pop("rating_task_autoencoder")  # a spec saved before the field existed
    (tmp_path / SPEC).write_text(yaml.safe_dump(raw, sort_keys=False))
    assert load_model(tmp_path).item_autoencoder is not None
