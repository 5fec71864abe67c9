"""Saved models: save/load round trip, and `polyrec.load(run)` answering by original ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import polyrec
from polyrec.config import TASKS
from polyrec.eval.predict import predict_pairs, profile_probabilities, score_users
from polyrec.models.io import load_model, save_model
from polyrec.pipeline import run
from polyrec.train.finetune import build_model
from polyrec.train.protocol_data import prepare
from polyrec.train.sequences import collate
from synthetic import (
    gender,
    interactions_frame,
    item_group,
    item_id,
    preferred_group,
    synthetic_dataset,
    tiny_config,
    user_id,
    write_dataset,
)


# ---------------------------------------------------------------- batch inference


def test_predictions_do_not_depend_on_how_users_are_chunked() -> None:
    ds = synthetic_dataset()
    data = prepare(ds, "A", 0, 4.0, 10, True)
    torch.manual_seed(0)
    model = build_model(data, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    side = data.valid  # users with from one to many pairs, in no particular order
    whole = predict_pairs(model, side.history, side.pairs.users, side.pairs.items, batch_users=10_000)
    chunked = predict_pairs(model, side.history, side.pairs.users, side.pairs.items, batch_users=3)
    for k in whole:
        np.testing.assert_allclose(whole[k], chunked[k], rtol=1e-5, atol=1e-5)
    users = np.arange(ds.n_users)[::-1]  # histories of every length, in no particular order
    np.testing.assert_allclose(
        score_users(model, data.train, users, batch_users=10_000),
        score_users(model, data.train, users, batch_users=3), rtol=1e-5, atol=1e-5,
    )


def test_encoding_against_a_precomputed_catalogue_is_the_same_computation() -> None:
    """Scoring looks history items up in the catalogue's vectors instead of building them token
    by token: identical in eval mode, refused in training (ID dropout draws per token)."""
    ds = synthetic_dataset()
    data = prepare(ds, "B", 0, 4.0, 10, False)
    torch.manual_seed(0)
    text = np.random.default_rng(0).normal(size=(ds.n_items, 12)).astype(np.float32)
    model = build_model(data, list(TASKS), ds.n_items, text, tiny_config().model, ds.rating_range)
    batch = collate(data.train, np.arange(7), 50)
    model.eval()
    with torch.no_grad():
        plain, looked_up = model.encode(batch), model.encode(batch, model.item_tower.all_items())
    torch.testing.assert_close(plain.states, looked_up.states)
    model.train()
    with pytest.raises(ValueError, match="eval mode"):
        model.encode(batch, model.item_tower.all_items())


@pytest.mark.parametrize("layers,heads,arch", [(1, 1, "shared_bottom"), (2, 2, "mmoe"), (2, 2, "ple")])
def test_the_state_after_the_whole_history_is_the_full_encodings_last_state(layers: int, heads: int, arch: str) -> None:
    """Scoring the catalogue runs the last block at each history's end only (``last_state``):
    the same state as encoding every position and reading the last, for histories of every
    length (an empty one included) and behind expert layers."""
    ds = synthetic_dataset()
    data = prepare(ds, "B", 0, 4.0, 10, False)
    cfg = tiny_config().model
    cfg.layers, cfg.heads, cfg.mtl.arch = layers, heads, arch
    torch.manual_seed(0)
    model = build_model(data, list(TASKS), ds.n_items, None, cfg, ds.rating_range)
    model.eval()
    users = np.arange(ds.n_users)
    batch = collate(data.train, users, 50)
    # Histories cut to every length from 0 (a user without one) to the full one: positions
    # after a history's end hold items it must not read.
    batch.lengths = torch.minimum(batch.lengths, torch.arange(len(users)) % (int(batch.lengths.max()) + 1))
    batch.mask &= torch.arange(batch.mask.shape[1]) < batch.lengths.unsqueeze(1)
    assert len(set(batch.lengths.tolist())) > 3 and int(batch.lengths.min()) == 0
    with torch.no_grad():
        enc = model.encode(batch)  # every position, read at each history's end
        ends = (batch.lengths - 1).clamp(min=0)
        full, profile_full = (enc.state(task)[torch.arange(len(ends)), ends] for task in ("next_item", "profile"))
        at_end, profile_at_end = model.last_state(batch), model.last_state(batch, task="profile")
    torch.testing.assert_close(at_end, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(profile_at_end, profile_full, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(at_end[1], at_end[2])  # states that differ by user


# ---------------------------------------------------------------- save_model / load_model


def test_save_load_round_trip_gives_identical_predictions(tmp_path) -> None:
    ds = synthetic_dataset()
    data = prepare(ds, "A", 0, 4.0, 10, True)
    torch.manual_seed(0)
    text = np.random.default_rng(0).normal(size=(ds.n_items, 12)).astype(np.float32)
    cfg = tiny_config().model
    cfg.profile_text_rank = 2  # its standardisation is derived from the text vectors, not saved
    model = build_model(data, list(TASKS), ds.n_items, text, cfg, ds.rating_range)
    with torch.no_grad():  # move every weight off its initial value (zero biases included)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()

    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec == model.spec
    assert loaded.training is False
    assert torch.equal(loaded.item_tower.text, model.item_tower.text)  # the text vectors travel too

    users = np.arange(ds.n_users)
    pairs_u = np.repeat(users[:10], 3)
    pairs_i = np.tile(np.array([0, 17, 33]), 10)
    a = predict_pairs(model, data.train, pairs_u, pairs_i)
    b = predict_pairs(loaded, data.train, pairs_u, pairs_i)
    assert set(a) == {"rating", "ctr"}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(score_users(model, data.train, users), score_users(loaded, data.train, users))
    pa, pb = profile_probabilities(model, data.train, users), profile_probabilities(loaded, data.train, users)
    assert set(pa) == {"gender", "age"}
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    # A fresh model of the same spec predicts differently: equality above is not vacuous.
    torch.manual_seed(1)
    other = build_model(data, list(TASKS), ds.n_items, text, tiny_config().model, ds.rating_range).eval()
    assert not np.allclose(predict_pairs(other, data.train, pairs_u, pairs_i)["rating"], a["rating"])


def test_load_model_names_the_missing_file(tmp_path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "spec.yaml").write_text("n_items: 3\n")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(tmp_path / "m")


# ---------------------------------------------------------------- polyrec.load(run)


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender")
    cfg = tiny_config(write_dataset(root / "data"), epochs=12)  # 12: enough to learn the structure
    run(cfg, root / "run", progress=False, log=lambda _: None)
    return polyrec.load(root / "run")


@pytest.fixture(scope="module")
def history() -> dict[str, set[str]]:
    inter = interactions_frame()
    return {u: set(g["item_id"]) for u, g in inter.groupby("user_id")}


@pytest.mark.parametrize("u", [0, 1, 7])
def test_recommend_returns_k_distinct_unseen_items(rec, history, u: int) -> None:
    recs = rec.recommend(user_id(u), k=5)
    assert list(recs.columns) == ["item_id", "text", "score"]
    assert len(recs) == 5 and recs["item_id"].is_unique
    assert not set(recs["item_id"]) & history[user_id(u)]
    assert recs["score"].is_monotonic_decreasing and np.isfinite(recs["score"]).all()
    texts = dict(zip(rec.items_["item_id"], rec.items_["text"]))
    assert all(texts[i] == t for i, t in zip(recs["item_id"], recs["text"]))
    # With seen items allowed, the top of the list may hold them, and there is more to rank.
    everything = rec.recommend(user_id(u), k=40, exclude_seen=False)
    assert len(everything) == 40 and set(everything["item_id"]) == {item_id(i) for i in range(40)}


def test_recommend_never_pads_with_seen_items(rec, history) -> None:
    """Asking for more items than the user has not seen returns only the unseen ones."""
    recs = rec.recommend(user_id(0), k=100)
    unseen = {item_id(i) for i in range(40)} - history[user_id(0)]
    assert set(recs["item_id"]) == unseen and len(recs) == len(unseen)


def test_predict_ratings_in_range_and_follow_the_planted_taste(rec) -> None:
    users = [user_id(u) for u in range(8)]
    items = [item_id(i) for i in (0, 5, 12, 22, 30, 38)]
    pairs_u = [u for u in users for _ in items]
    pairs_i = [i for _ in users for i in items]
    pred = rec.predict(pairs_u, pairs_i)
    assert list(pred["user_id"]) == pairs_u and list(pred["item_id"]) == pairs_i
    assert pred["rating"].between(1.0, 5.0).all()
    assert pred["ctr"].between(0.0, 1.0).all()
    liked = np.array([item_group(int(i[1:])) == preferred_group(int(u[1:])) for u, i in zip(pairs_u, pairs_i)])
    # preferred group rated 4-5, the other 1-2: every user's liked items score higher
    for u in users:
        mine = (pred["user_id"] == u).to_numpy()
        assert pred["rating"][mine & liked].min() > pred["rating"][mine & ~liked].max(), u


def test_predict_keeps_the_order_of_unsorted_repeated_pairs(rec) -> None:
    users, items = ["u003", "u000", "u003", "u000"], ["i001", "i025", "i030", "i001"]
    together = rec.predict(users, items)
    alone = pd.concat([rec.predict([u], [i]) for u, i in zip(users, items)], ignore_index=True)
    assert list(together["user_id"]) == users and list(together["item_id"]) == items
    np.testing.assert_allclose(together["rating"], alone["rating"], rtol=1e-5)


def test_profile_probabilities_sum_to_one_and_find_gender(rec) -> None:
    hits = 0
    for u in range(10):
        prof = rec.profile(user_id(u))
        assert set(prof) == {"gender", "age"}
        assert set(prof["gender"]) == {"F", "M"}
        for probs in prof.values():
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert all(0.0 <= p <= 1.0 for p in probs.values())
        hits += max(prof["gender"], key=prof["gender"].get) == gender(u)
    assert hits >= 9


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.recommend("nobody"),
        lambda r: r.predict(["nobody"], ["i001"]),
        lambda r: r.profile("nobody"),
    ],
    ids=["recommend", "predict", "profile"],
)
def test_unknown_user_raises_key_error_naming_it(rec, call) -> None:
    with pytest.raises(KeyError, match="unknown user 'nobody'"):
        call(rec)


def test_unknown_item_raises_key_error_naming_it(rec) -> None:
    with pytest.raises(KeyError, match="unknown item 'i999'"):
        rec.predict(["u000"], ["i999"])


def test_load_without_a_model_says_what_is_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no saved model"):
        polyrec.load(tmp_path)
