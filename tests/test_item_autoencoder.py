"""The item autoencoder: leave-one-out codes, a fit that learns, and a join no worse than
either of the two predictions it joins (on the validation pairs it is set on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import perturbed_autoencoder, random_ratings, strip_saved_field, tiny_config

from polyrec.config import TASKS
from polyrec.eval.predict import predict_pairs
from polyrec.models.engagement_autoencoder import EngagementAutoencoder
from polyrec.models.item_autoencoder import ItemAutoencoder
from polyrec.models.user_autoencoder import UserAutoencoder
from polyrec.train.finetune import build_model, finetune
from polyrec.train.item_autoencoder_fit import fit_item_autoencoder


def test_a_pairs_code_leaves_out_exactly_its_own_rating() -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(ItemAutoencoder, users, items, ratings)
    k = 7
    without = ItemAutoencoder(12, 9, hidden=5, n_ratings=len(users) - 1)
    keep = np.arange(len(users)) != k
    without.set_ratings(users[keep], items[keep], ratings[keep])
    without.load_state_dict({**ae.state_dict(), **{n: b for n, b in without.named_buffers()}})
    without.lowest.copy_(ae.lowest)  # the same input scale (the lowest rating may be the one left out)
    u, i = torch.tensor([users[k]]), torch.tensor([items[k]])
    with torch.no_grad():
        left_out = ae(u, i, own=ae.inputs(torch.tensor([ratings[k]])))
        assert torch.allclose(left_out, without(u, i), atol=1e-6)
        assert (left_out - ae(u, i)).abs().item() > 1e-4  # with its rating read, it differs


def _step_gradients(ae, users, items, own, target, reference: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One training step's deviation and the gradients of its squared error, through the
    hand-written backward (``forward``) or autograd's backward of the reference."""
    ae.zero_grad()
    d = ae._deviation(users, items, own) if reference else ae(users, items, own=own)
    ((d - target) ** 2).sum().backward()
    return d.detach(), [p.grad.clone() for p in ae.parameters()]


@pytest.mark.parametrize("cls", [ItemAutoencoder, EngagementAutoencoder, UserAutoencoder])
def test_the_training_step_agrees_with_autograds_backward_of_the_reference(cls) -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(cls, users, items, ratings)
    batch = torch.from_numpy(np.random.default_rng(1).integers(0, len(users), 40))  # repeats included
    u, i = torch.from_numpy(users)[batch], torch.from_numpy(items)[batch]
    own, target = ae.inputs(torch.from_numpy(ratings)[batch]), torch.randn(40)
    if cls is UserAutoencoder:  # its reference swaps the roles back, as its forward does
        d0, g0 = _step_gradients(ae, i, u, own, target, reference=True)
    else:
        d0, g0 = _step_gradients(ae, u, i, own, target, reference=True)
    d1, g1 = _step_gradients(ae, u, i, own, target, reference=False)
    assert torch.equal(d0, d1)  # the same values, computed in the same order
    for name, a, b in zip([n for n, _ in ae.named_parameters()], g0, g1):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), name  # summed in another order
        assert a.abs().max() > 0, name  # every parameter's gradient is checked on something
    # New ratings: the rater-major matrix the backward reads is counted again, and holds each
    # (rater, item) input value of the ratings it was given.
    before = ae.by_rater().to_dense().clone()
    changed = np.where(ratings > 3, ratings, 1.0)
    ae.set_ratings(users, items, changed)
    raters, columns = (items, users) if cls is UserAutoencoder else (users, items)  # its roles are swapped
    dense = torch.zeros(ae.n_users, ae.n_items)
    dense[torch.from_numpy(raters), torch.from_numpy(columns)] = ae.inputs(torch.from_numpy(changed))
    assert torch.equal(ae.by_rater().to_dense(), dense) and not torch.equal(dense, before)
    # A copy (as a study or a distillation makes) starts without the kept matrix, then counts it.
    import copy
    import pickle

    for twin in (copy.deepcopy(ae), pickle.loads(pickle.dumps(ae))):
        assert twin._by_rater.value is None and torch.equal(twin.by_rater().to_dense(), dense)


def test_kept_item_inputs_follow_every_change_of_what_they_read() -> None:
    """Without gradients the item inputs are computed once and kept; an optimiser step,
    loaded weights or new ratings make them computed again, and with gradients they train."""
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(ItemAutoencoder, users, items, ratings)
    fresh = lambda: ae._item_inputs().detach()  # noqa: E731
    with torch.no_grad():
        kept = ae.item_inputs()
        assert ae.item_inputs() is kept and torch.allclose(kept, fresh())
    loss = ae(torch.tensor([0, 1]), torch.tensor([2, 3])).pow(2).sum()
    loss.backward()  # gradients wanted: computed afresh, through the encoder
    assert ae.encoder.grad is not None and ae.encoder.grad.abs().sum() > 0
    torch.optim.SGD(ae.parameters(), lr=1.0).step()
    with torch.no_grad():
        assert not torch.allclose(ae.item_inputs(), kept) and torch.allclose(ae.item_inputs(), fresh())
    other = perturbed_autoencoder(ItemAutoencoder, users, items, ratings, seed=1)
    ae.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.allclose(ae.item_inputs(), other._item_inputs())
    ae.set_ratings(users, items, 6.0 - ratings)
    with torch.no_grad():
        assert torch.allclose(ae.item_inputs(), fresh())


def test_a_user_the_model_never_saw_gets_the_items_bias_alone() -> None:
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(ItemAutoencoder, users, items, ratings)
    with torch.no_grad():
        d = ae(torch.tensor([12, 40]), torch.tensor([3, 5]))
    assert torch.allclose(d, ae.item_bias[torch.tensor([3, 5])].detach())


@pytest.mark.parametrize("cls", [ItemAutoencoder, EngagementAutoencoder, UserAutoencoder])
def test_many_pairs_are_scored_in_parts_that_give_the_whole_passs_values(cls, monkeypatch) -> None:
    import polyrec.models.item_autoencoder as module

    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(cls, users, items, ratings)
    rng = np.random.default_rng(0)
    u = torch.from_numpy(rng.integers(0, 14, size=(7, 41)))  # some users beyond the 12 it knows
    i = torch.from_numpy(rng.integers(0, 9, size=(7, 41)))
    own = ae.inputs(torch.from_numpy(rng.integers(1, 6, size=(7, 41)).astype(np.float32)))
    with torch.no_grad():
        whole = ae(u, i), ae(u, i, own=own)
        monkeypatch.setattr(module, "PAIRS_AT_ONCE", 64)  # 287 pairs: five parts, the last short
        parts = ae(u, i), ae(u, i, own=own)
    for a, b in zip(whole, parts):
        assert a.shape == (7, 41)
        assert torch.equal(a, b)  # to the bit, not just close
    assert not torch.equal(whole[0], whole[1])  # own values were read


def test_a_long_epoch_is_judged_every_period_steps(ds, data_a, monkeypatch) -> None:
    """Where an epoch holds more steps than PERIOD_STEPS (large data), the fit is validated
    every PERIOD_STEPS steps (and stops PATIENCE judgements after its best); where it holds
    no more (every tiny and MovieLens-100K fit), once an epoch, as before."""
    import polyrec.train.item_autoencoder_fit as fit_module

    def fitted(period_steps: int) -> list[int]:
        torch.manual_seed(0)
        model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
        ae, judged, steps = model.item_autoencoder, [], [0]
        original = ae.forward

        def forward(*args, **kwargs):
            if not ae.training:
                judged.append(steps[0])  # the steps taken when each validation runs
            else:
                steps[0] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(ae, "forward", forward)
        monkeypatch.setattr(fit_module, "PERIOD_STEPS", period_steps)
        fit_item_autoencoder(ae, data_a, l2=1.0, progress=False, max_epochs=2)
        return judged

    n = int((~np.isnan(data_a.train.flat()[2])).sum())
    per_epoch = -(-n // fit_module.batch_size(n))
    assert per_epoch > 5
    assert fitted(per_epoch) == [per_epoch, 2 * per_epoch]  # once an epoch, for two epochs
    # Every 5 steps, up to the same two epochs' steps rounded up to a whole period.
    assert fitted(5) == list(range(5, 2 * per_epoch + 5, 5))


def test_model_autoencoder_epochs_caps_every_autoencoder_fit(ds, data_a) -> None:
    """``model.autoencoder_epochs`` reaches each fit a training runs (item, user and
    engagement autoencoders): with 1, each takes one epoch of steps and no more."""
    import polyrec.train.item_autoencoder_fit as fit_module
    from polyrec.train.finetune import autoencoder_fits

    cfg = tiny_config().model
    cfg.autoencoder_epochs = 1
    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)
    fitted = model.autoencoders()
    assert len(fitted) == 3  # item, user and engagement autoencoders
    steps = {id(ae): 0 for ae in fitted}
    for ae in fitted:
        ae.register_forward_pre_hook(lambda m, _args: steps.__setitem__(id(m), steps[id(m)] + m.training))
    for _modules, fit in autoencoder_fits(model, data_a, progress=False, cache=None):
        fit()
    n = int((~np.isnan(data_a.train.flat()[2])).sum())
    assert set(steps.values()) == {-(-n // fit_module.batch_size(n))}  # one epoch each
    with pytest.raises(ValueError, match="model.autoencoder_epochs"):
        type(cfg)(autoencoder_epochs=0)


def test_the_fit_learns_and_the_join_is_no_worse_than_either_part(ds, data_a) -> None:
    torch.manual_seed(0)
    cfg = tiny_config().model
    model = build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range)
    ae = model.item_autoencoder
    assert ae is not None and ae.value.numel() == int((~np.isnan(data_a.train.flat()[2])).sum())
    pairs = data_a.valid.pairs
    rated = ~np.isnan(pairs.ratings)
    u, i, r = pairs.users[rated], pairs.items[rated], pairs.ratings[rated]

    def ae_mse() -> float:
        with torch.no_grad():
            d = ae(torch.from_numpy(u), torch.from_numpy(i)).numpy()
        return float(np.mean((float(model.global_mean) + d - r) ** 2))

    untrained = ae_mse()
    rmse = fit_item_autoencoder(ae, data_a, l2=1.0, progress=False)
    assert rmse**2 < untrained
    # What the fit kept is what it scored: the averaged weights, not the last raw ones.
    assert abs(ae_mse() ** 0.5 - rmse) < 1e-5

    train_cfg = tiny_config(epochs=3).train
    finetune(model, data_a, train_cfg, progress=False)  # refits the autoencoder, then joins
    share = float(ae.rating_share)
    assert 0.0 <= share <= 1.0
    joined = predict_pairs(model, data_a.valid.history, u, i)["rating"]
    ae.rating_share.zero_()
    alone = predict_pairs(model, data_a.valid.history, u, i)["rating"]
    mse = lambda p: float(np.mean((p - r) ** 2))  # noqa: E731
    assert mse(joined) <= min(mse(alone), ae_mse()) + 1e-9


def test_the_user_row_classifier_reads_known_labels_only_and_adds_nothing_until_fitted(ds, data_a) -> None:
    from polyrec.train.join_fit import user_row_classifier

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    assert model.user_row_profile is not None
    users = torch.arange(ds.n_users)
    rows = model.item_autoencoder.user_rows()
    assert all((v == 0).all() for v in model.user_row_profile(users, rows).values())
    fit_item_autoencoder(model.item_autoencoder, data_a, l2=1.0, progress=False)
    x = model.item_autoencoder.user_rows().numpy().astype(np.float64)
    labels = data_a.profile_labels["gender"]  # held-out users are −1 here (prepare)
    us = data_a.user_split
    assert (labels[us.valid] == -1).all() and (labels[us.test] == -1).all()
    weight, bias = user_row_classifier(x, labels, 2)
    x_other = x.copy()
    x_other[labels < 0] = np.random.default_rng(0).normal(size=x_other[labels < 0].shape)  # unknown users' rows
    w2, b2 = user_row_classifier(x_other, labels, 2)
    assert np.allclose(w2, weight) and np.allclose(b2, bias)  # unknown users play no part
    flipped = labels.copy()
    flipped[us.train[:5]] = 1 - flipped[us.train[:5]]
    w3, _ = user_row_classifier(x, flipped, 2)
    assert not np.allclose(w3, weight)  # known labels do
    assert user_row_classifier(x, np.where(labels >= 0, 0, -1), 2) is None  # one class: nothing to learn


def test_a_model_saved_before_the_user_row_profile_still_loads(ds, data_a, tmp_path) -> None:
    """Such a model's spec lacks ``user_row_profile`` and its weights the buffers: it loads as
    it was trained, without them; any other missing weight still fails."""
    from polyrec.models.io import load_model, save_model

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    assert model.spec.user_row_profile and model.user_row_profile is not None
    save_model(model, tmp_path)
    strip_saved_field(tmp_path, "user_row_profile", "user_row_profile.")
    old = load_model(tmp_path)
    assert old.user_row_profile is None and old.item_autoencoder is not None
    strip_saved_field(tmp_path, "user_row_profile", "heads.rating.")
    with pytest.raises(RuntimeError, match="heads.rating"):
        load_model(tmp_path)  # any other missing weight still fails


def test_the_profile_join_keeps_an_attribute_only_where_it_raises_validation(ds, data_a, monkeypatch) -> None:
    from polyrec.eval.metrics import classification_metrics
    from polyrec.eval.predict import profile_probabilities
    from polyrec.train.join_fit import fit_profile_join

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    finetune(model, data_a, tiny_config(epochs=3).train, progress=False)  # fits the autoencoder, then joins
    users, head = data_a.valid.profile_users, model.user_row_profile
    age = torch.from_numpy(data_a.profile_true["age"])
    with torch.no_grad():  # rows that tell the age groups apart (gender is already perfect here)
        model.item_autoencoder.decoder[:, : int(age.max()) + 1] = torch.nn.functional.one_hot(age).float() * 5
    # A weak prior, so that 48 training users' labels can make a decisive classifier.
    monkeypatch.setattr("polyrec.train.join_fit.PROFILE_C", 10.0)
    kept = fit_profile_join(model, data_a)
    assert kept == ["age"]

    def score(name: str) -> float:
        s = classification_metrics(data_a.profile_true[name][users], profile_probabilities(model, data_a.valid.history, users)[name])
        return s["auc"] if "auc" in s else s["accuracy"]

    for name in head.names:
        weight, bias = (t.clone() for t in head.parts(name))
        assert (name in kept) == bool(weight.abs().sum() > 0)  # what it dropped adds nothing
        if name in kept:
            with_part = score(name)
            head.clear(name)
            assert with_part > score(name)
            head.set_attribute(name, weight.numpy(), bias.numpy())


def test_the_profile_join_leaves_out_validation_users_whose_attributes_are_unknown(ds, data_a) -> None:
    """A users file may lack a user or an attribute: such validation users play no part in
    the join's choice, exactly as if they were not validation users at all."""
    import copy
    import dataclasses

    from polyrec.train.join_fit import fit_profile_join

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    fit_item_autoencoder(model.item_autoencoder, data_a, l2=1.0, progress=False)
    unknown = data_a.valid.profile_users[::3]
    with_unknown = copy.copy(data_a)
    with_unknown.profile_true = {k: v.copy() for k, v in data_a.profile_true.items()}
    for labels in with_unknown.profile_true.values():
        labels[unknown] = -1
    without_them = copy.copy(data_a)
    without_them.valid = dataclasses.replace(
        data_a.valid, profile_users=np.setdiff1d(data_a.valid.profile_users, unknown)
    )
    first, second = copy.deepcopy(model), copy.deepcopy(model)
    assert fit_profile_join(first, with_unknown) == fit_profile_join(second, without_them)
    for a, b in zip(first.user_row_profile.state_dict().values(), second.user_row_profile.state_dict().values()):
        assert torch.equal(a, b)


def test_a_new_users_rows_are_the_fits_own_optimum_for_their_ratings() -> None:
    """``fold_in`` solves the fit's objective for one new user's rows, every other weight
    held: squared error of their ratings plus l2 / 2 · ‖V‖², the bias free. At its answer the
    objective's gradient is zero; unrated positions and items beyond the catalogue are not read."""
    users, items, ratings = random_ratings()
    ae = perturbed_autoencoder(ItemAutoencoder, users, items, ratings)
    mean, l2 = 3.1, 4.0
    history = torch.tensor([[2, 5, 7, 9, 1]])  # 9: beyond the 9-item catalogue (a new item by text)
    given = torch.tensor([[4.0, 1.0, float("nan"), 5.0, 2.0]])
    rows = ae.fold_in(history, given - mean, l2)
    bias = rows.bias.detach().clone().requires_grad_()
    decoder = rows.decoder.detach().clone().requires_grad_()
    read = torch.tensor([2, 5, 1])
    with torch.no_grad():
        codes = ae.codes(read)
    error = torch.tensor([4.0, 1.0, 2.0]) - mean - ae.item_bias[read].detach() - bias - codes @ decoder[0]
    objective = (error**2).sum() + l2 / 2 * (decoder**2).sum()
    objective.backward()
    assert float(bias.grad.abs().max()) < 1e-4 and float(decoder.grad.abs().max()) < 1e-4
    assert float(rows.decoder.abs().sum()) > 1e-3  # a real answer, not the zero start
    alone = ae.fold_in(torch.tensor([[2, 5, 1]]), torch.tensor([[4.0, 1.0, 2.0]]) - mean, l2)
    torch.testing.assert_close(alone.decoder, rows.decoder)
    # Nothing rated: no row beyond the item's bias, as a fit starts one.
    empty = ae.fold_in(torch.tensor([[3]]), torch.tensor([[float("nan")]]), l2)
    assert float(empty.bias.abs().sum() + empty.decoder.abs().sum()) == 0.0
    deviation = ae.folded_deviation(rows, torch.tensor([[0, 4]]))
    expected = rows.bias[0] + ae.item_bias[torch.tensor([0, 4])] + ae.codes(torch.tensor([0, 4])) @ rows.decoder[0]
    torch.testing.assert_close(deviation[0], expected)
