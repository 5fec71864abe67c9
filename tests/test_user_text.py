"""Users described by text (a generic folder's ``users.text``): read, encoded, and read by
the model as an input beside the history — never as a profile target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from synthetic import tiny_config, write_dataset

import polyrec.pipeline
import polyrec.text
from polyrec.data.describe import describe
from polyrec.data.errors import DataError
from polyrec.data.generic import load_generic
from polyrec.eval.predict import predict_pairs
from polyrec.models.io import load_model, save_model
from polyrec.pipeline import run, user_text_vectors
from polyrec.recommender import Recommender
from polyrec.serve.app import create_app
from polyrec.train.finetune import build_model
from polyrec.train.protocol_data import prepare

WIDTH = 12  # the stand-in encoder's vector width


def stand_in_encode(texts, *args, **kwargs) -> np.ndarray:
    """A unit vector per text, the same for the same text (a seeded draw from its bytes)."""
    rows = [np.random.default_rng(list(t.encode())).normal(size=WIDTH) for t in texts]
    out = np.array(rows, dtype=np.float32).reshape(len(texts), WIDTH)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def with_user_text(folder: Path, described: int) -> Path:
    """The synthetic folder with a ``bio`` column for its first ``described`` users only."""
    users = pd.read_csv(folder / "users.csv")
    users["bio"] = [f"likes group {u % 2}, reader {u}" if u < described else "" for u in range(len(users))]
    users.to_csv(folder / "users.csv", index=False)
    spec = (folder / "dataset.yaml").read_text().replace("attributes: [gender, age]}", "attributes: [gender, age], text: [bio]}")
    (folder / "dataset.yaml").write_text(spec)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return with_user_text(write_dataset(tmp_path_factory.mktemp("data") / "synthetic", n_users=30, per_user=8), described=20)


def test_the_loader_reads_user_text_and_leaves_it_empty_where_a_user_has_none(folder) -> None:
    ds = load_generic(folder)
    assert ds.user_text_columns == ["bio"]
    texts = ds.user_texts()
    assert texts is not None and len(texts) == ds.n_users
    by_id = dict(zip(ds.users["user_id"], texts))
    assert by_id["u000"] == "likes group 0, reader 0" and by_id["u025"] == ""
    assert "bio" not in ds.attributes and "text" not in ds.attributes
    assert "User text from bio: 20 of 30 users, e.g. 'likes group 0, reader 0'" in describe(ds)


def test_a_column_both_text_and_attribute_is_one_line_naming_the_key(folder, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("interactions.csv", "items.csv", "users.csv"):
        (bad / name).write_bytes((folder / name).read_bytes())
    spec = (folder / "dataset.yaml").read_text().replace("text: [bio]", "text: [bio, gender]")
    (bad / "dataset.yaml").write_text(spec)
    with pytest.raises(DataError) as info:
        load_generic(bad)
    message = str(info.value)
    assert "\n" not in message and "dataset.yaml" in message and "users.text" in message
    assert "'gender' is both a user text and an attribute" in message


def test_user_vectors_are_zero_for_users_without_text_and_off_on_request(folder, monkeypatch) -> None:
    monkeypatch.setattr(polyrec.pipeline, "encode_texts", stand_in_encode)
    ds = load_generic(folder)
    cfg = tiny_config(folder)
    cfg.text.enabled = True
    vectors = user_text_vectors(ds, cfg, progress=False)
    assert vectors is not None and vectors.shape == (ds.n_users, WIDTH)
    described = np.array([bool(t) for t in ds.user_texts()])
    assert described.sum() == 20
    np.testing.assert_allclose(np.linalg.norm(vectors[described], axis=1), 1.0, rtol=1e-5)
    assert not vectors[~described].any()
    cfg.text.users = False
    assert user_text_vectors(ds, cfg, progress=False) is None


def _model_pair(folder: Path):
    """A model built with the users' text vectors and one built without, from one seed."""
    ds = load_generic(folder)
    ds.user_vectors = np.stack([stand_in_encode([t])[0] if t else np.zeros(WIDTH, np.float32) for t in ds.user_texts()])
    data = prepare(ds, "A", 0, 4.0, 10, True)
    cfg = tiny_config(folder).model
    torch.manual_seed(0)
    with_text = build_model(data, ["rating", "ctr", "next_item"], ds.n_items, None, cfg)
    data.user_vectors = None
    torch.manual_seed(0)
    without = build_model(data, ["rating", "ctr", "next_item"], ds.n_items, None, cfg)
    data.user_vectors = ds.user_vectors
    return data, with_text, without


def test_the_model_reads_a_users_text_and_nothing_else_changes(folder, tmp_path) -> None:
    data, model, plain = _model_pair(folder)
    # Every other layer starts exactly as it would without user text.
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("user_text")}
    assert own.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in own.items())
    users, items = np.array([0, 1, 2]), np.array([3, 4, 5])
    before = predict_pairs(model, data.valid.history, users, items)["rating"]
    with torch.no_grad():
        model.user_text[1] = -model.user_text[1]  # another description of user 1 only
    after = predict_pairs(model, data.valid.history, users, items)["rating"]
    assert after[1] != pytest.approx(before[1], abs=1e-6)
    np.testing.assert_allclose(after[[0, 2]], before[[0, 2]], rtol=1e-6)
    # A user beyond the trained ones (a new user in serving) reads no text: a zero row.
    beyond = torch.tensor([len(model.user_text), 1])
    assert not model.user_text_of(beyond)[0].any() and model.user_text_of(beyond)[1].any()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.spec.user_text_dim == WIDTH and torch.equal(loaded.user_text, model.user_text)
    np.testing.assert_allclose(predict_pairs(loaded, data.valid.history, users, items)["rating"], after, rtol=1e-6)


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory) -> Path:
    """A one-epoch protocol-A run of ``folder`` (users described by text), the stand-in encoder
    reading every text."""
    out = tmp_path_factory.mktemp("user-text-run") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(polyrec.pipeline, "encode_texts", stand_in_encode)
        cfg = tiny_config(folder, epochs=1)
        cfg.text.enabled = True
        cfg.protocols = ["A"]
        run(cfg, out, progress=False, log=lambda _: None, baselines=False)
    return out


@pytest.fixture
def rec(trained, monkeypatch) -> Recommender:
    """The trained run, loaded; texts it embeds on the fly go through the stand-in encoder."""
    monkeypatch.setattr(polyrec.text, "encode_texts", stand_in_encode)
    return Recommender.load(trained)


def test_a_run_on_users_described_by_text_trains_saves_and_recommends(rec) -> None:
    model = rec.models_["A"]
    assert model.spec.user_text_dim == WIDTH and model.user_text_projection is not None
    assert model.user_text[: 20].any(dim=1).all() and not model.user_text[20:].any()
    top = rec.recommend("u003", k=3)
    assert len(top) == 3


def _history_of(folder: Path, user: str) -> tuple[list[str], list[float]]:
    inter = pd.read_csv(folder / "interactions.csv")
    mine = inter[inter["user_id"] == user].sort_values("ts", kind="stable")  # a history's order
    return mine["item_id"].astype(str).tolist(), mine["rating"].tolist()


def test_an_ad_hoc_history_reads_the_users_text_as_training_did(rec, folder) -> None:
    described = pd.read_csv(folder / "users.csv")
    bios = dict(zip(described["user_id"], described["bio"].fillna("")))
    users = rec.user_vectors()
    items, ratings = _history_of(folder, "u003")
    known = users[rec.user_index("u003")]
    # A described user's history and text give exactly the vector the model holds for them ...
    np.testing.assert_allclose(rec.history_vector(items, ratings, user_text=bios["u003"]), known, atol=1e-5)
    # ... and the text is read: without it (a zero vector) the same history lands elsewhere.
    assert np.abs(rec.history_vector(items, ratings) - known).max() > 1e-3
    np.testing.assert_allclose(rec.history_vector(items, ratings, user_text="  "), rec.history_vector(items, ratings))
    # A user without text is read with a zero vector, in training as here.
    items, ratings = _history_of(folder, "u025")
    np.testing.assert_allclose(rec.history_vector(items, ratings), users[rec.user_index("u025")], atol=1e-5)
    top = rec.recommend_history(items, ratings, user_text=bios["u003"], k=5, exclude_seen=False)
    scores = rec.item_vectors() @ rec.history_vector(items, ratings, user_text=bios["u003"])
    np.testing.assert_allclose(top["score"], np.sort(scores)[::-1][:5], rtol=1e-5)


def test_the_service_passes_a_new_users_text_to_the_model(rec, trained, folder, tmp_path) -> None:
    items, ratings = _history_of(folder, "u003")
    expected = rec.recommend_history(items, ratings, k=5, user_text="likes group 1")
    assert not np.allclose(expected["score"], rec.recommend_history(items, ratings, k=5)["score"], rtol=1e-4)
    body = {"history": [{"item_id": i, "rating": r} for i, r in zip(items, ratings)], "k": 5, "user_text": "likes group 1"}
    with TestClient(create_app(trained, tmp_path / "events.sqlite")) as client:
        answer = client.post("/recommend", json=body)
    assert answer.status_code == 200, answer.text
    assert [x["item_id"] for x in answer.json()["items"]] == expected["item_id"].tolist()
    np.testing.assert_allclose([x["score"] for x in answer.json()["items"]], expected["score"], rtol=1e-5)
