"""The user autoencoder: the item autoencoder with users and items swapped, its own pair
left out of the user's code, a mix with the item view no worse than either on the
validation ratings it is set on, and models saved before it loading without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import perturbed_autoencoder, random_ratings, strip_saved_field, tiny_config

from polyrec.config import TASKS
from polyrec.models.item_autoencoder import ItemAutoencoder
from polyrec.models.user_autoencoder import UserAutoencoder
from polyrec.train.finetune import build_model, finetune
from polyrec.train.item_autoencoder_fit import validation_ratings


def test_it_is_the_item_autoencoder_read_with_users_and_items_swapped() -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(UserAutoencoder, users, items, ratings)
    swapped = ItemAutoencoder(9, 12, hidden=5, n_ratings=len(users))
    swapped.set_ratings(items, users, ratings)
    swapped.load_state_dict({k: v for k, v in ae.state_dict().items() if k != "share"})
    u, i = torch.from_numpy(users[:10]), torch.from_numpy(items[:10])
    own = ae.inputs(torch.from_numpy(ratings[:10]))
    with torch.no_grad():
        assert torch.allclose(ae(u, i), swapped(i, u))
        assert torch.allclose(ae(u, i, own=own), swapped(i, u, own=own))


def test_a_pairs_own_rating_is_left_out_of_its_users_code() -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(UserAutoencoder, users, items, ratings)
    k = 11
    keep = np.arange(len(users)) != k
    without = UserAutoencoder(12, 9, hidden=5, n_ratings=len(users) - 1)
    without.set_ratings(users[keep], items[keep], ratings[keep])
    without.load_state_dict({**ae.state_dict(), **{n: b for n, b in without.named_buffers() if n != "share"}})
    without.lowest.copy_(ae.lowest)
    u, i = torch.tensor([users[k]]), torch.tensor([items[k]])
    with torch.no_grad():
        left_out = ae(u, i, own=ae.inputs(torch.tensor([ratings[k]])))
        assert torch.allclose(left_out, without(u, i), atol=1e-6)
        assert (left_out - ae(u, i)).abs().item() > 1e-4


def test_a_user_it_never_saw_gets_the_items_bias_alone() -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(UserAutoencoder, users, items, ratings)
    with torch.no_grad():
        d = ae(torch.tensor([12, 40, 0]), torch.tensor([3, 5, 5]))
    # In the swapped roles an item's bias is the per-"user" bias.
    assert torch.allclose(d[:2], ae.user_bias[torch.tensor([3, 5])].detach())
    assert not torch.isclose(d[2], ae.user_bias[5].detach())  # a known user reads their code


def test_the_mix_share_is_set_on_validation_and_no_worse_than_either_view(ds, data_a) -> None:
    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    user_ae = model.user_autoencoder
    assert user_ae is not None and float(user_ae.share) == 0.0  # changes nothing until fitted
    result = finetune(model, data_a, tiny_config(epochs=2).train, progress=False)
    share = float(user_ae.share)
    assert 0.0 <= share <= 1.0 and result.autoencoder["user_share"] == pytest.approx(share, rel=1e-6)  # kept in float32
    users, items, ratings = (torch.from_numpy(a) for a in validation_ratings(data_a))

    def rmse(d: torch.Tensor) -> float:
        return float((model.global_mean + d - ratings).pow(2).mean().sqrt())

    with torch.no_grad():
        item_view, user_view = model.item_autoencoder(users, items), user_ae(users, items)
        mixed = model.autoencoder_deviation(users, items)
    assert torch.allclose(mixed, (1 - share) * item_view + share * user_view)
    assert abs(rmse(mixed) - result.autoencoder["mixed_valid_rmse"]) < 1e-4
    assert rmse(mixed) <= min(rmse(item_view), rmse(user_view)) + 1e-6


def test_a_model_saved_before_the_user_autoencoder_loads_without_it(ds, data_a, tmp_path) -> None:
    from polyrec.models.io import load_model, save_model

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    assert model.spec.user_autoencoder == 8
    save_model(model, tmp_path)
    assert load_model(tmp_path).user_autoencoder is not None
    strip_saved_field(tmp_path, "user_autoencoder", "user_autoencoder.")
    old = load_model(tmp_path)
    assert old.user_autoencoder is None and old.item_autoencoder is not None
