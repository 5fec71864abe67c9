"""`polyrec serve`: every endpoint and every error case, through FastAPI's test client.

One tiny run with item text (the real sentence encoder, so new items are embedded on the
fly) and item types, and one without text to reload to, are trained once for the module.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

import polyrec
from polyrec.models.io import load_model, save_model
from polyrec.models.item_prior import blend_scores
from polyrec.data.loader import load_dataset
from polyrec.pipeline import item_text_vectors, run
from polyrec.serve.app import ADMIN_KEY_ENV, ServeSettings, create_app
from polyrec.serve.blended import BlendedScorer
from polyrec.serve.events import read_events
from polyrec.serve.retrieval import IndexSettings
from polyrec.serve.schemas import MAX_HISTORY, MAX_K, MAX_PAIRS
from polyrec.top_k import top_k_allowed
from polyrec.train.item_prior_fit import ease_neighbours, taken_matrix
from polyrec.train.sequences import collate
from synthetic import interactions_frame, item_group, item_id, preferred_group, tiny_config, torch_threads, user_id, write_dataset

KEY = "test-admin-key"
RECS = "/users/{}/recommendations"


def item_type(i: int) -> str:
    return "ad" if i % 4 == 0 else "product"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two runs of the synthetic data with item types: 'text' (MiniLM item text), 'plain' (none)."""
    root = tmp_path_factory.mktemp("serve")
    data = write_dataset(root / "data")
    items = pd.read_csv(data / "items.csv")
    items["item_type"] = [item_type(i) for i in range(len(items))]
    items.to_csv(data / "items.csv", index=False)
    spec = (data / "dataset.yaml").read_text().replace("text: [title, categories]}", "text: [title, categories], type: item_type}")
    (data / "dataset.yaml").write_text(spec)
    with torch_threads(1):
        cfg = tiny_config(data, epochs=12)
        cfg.text.enabled, cfg.text.cache_dir = True, str(root / "text-cache")
        cfg.model.item_prior = False  # its scores are the vectors' inner products (the index path)
        run(cfg, root / "text", progress=False, log=lambda _: None)
        run(tiny_config(data, epochs=2), root / "plain", progress=False, log=lambda _: None)
    shutil.copytree(root / "text", root / "prior")
    model = load_model(root / "prior" / "model" / "B")
    history = polyrec.load(root / "text")._histories["B"]
    model.attach_item_prior(*ease_neighbours(taken_matrix(history, model.spec.n_items), 10.0, 5, 100), share=0.4, decay=0.9)
    save_model(model, root / "prior" / "model" / "B")
    return {"text": root / "text", "plain": root / "plain", "prior": root / "prior", "root": root}


@pytest.fixture(scope="module")
def rec(runs) -> polyrec.Recommender:
    return polyrec.load(runs["text"])


@pytest.fixture(scope="module")
def client(runs):
    with torch_threads(1), TestClient(create_app(runs["text"], runs["root"] / "events.sqlite")) as c:
        yield c


@pytest.fixture(scope="module")
def history() -> dict[str, list[str]]:
    inter = interactions_frame()
    return {u: list(g["item_id"]) for u, g in inter.groupby("user_id")}


def ids(response) -> list[str]:
    return [x["item_id"] for x in response.json()["items"]]


def detail(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["detail"]


# ---------------------------------------------------------------- the library methods the service uses


def test_vectors_reproduce_the_recommenders_scores(rec) -> None:
    users, items = rec.user_vectors(), rec.item_vectors()
    assert users.shape == (60, 17) and items.shape == (40, 17)
    for u in ("u000", "u007"):
        expected = rec.recommend(u, k=40, exclude_seen=False)
        scores = users[rec.user_index(u)] @ items.T
        np.testing.assert_allclose(scores[[rec.item_index(i) for i in expected["item_id"]]], expected["score"], rtol=1e-5, atol=1e-5)


def test_history_vector_of_a_known_history_is_that_users_vector(rec) -> None:
    inter = interactions_frame()  # chronological file order = the run's timestamp order
    for u in ("u003", "u010"):
        mine = inter[inter["user_id"] == u]
        vector = rec.history_vector(mine["item_id"].tolist(), mine["rating"].tolist())
        np.testing.assert_allclose(vector, rec.user_vectors()[rec.user_index(u)], atol=1e-5)


# ---------------------------------------------------------------- GET /users/{id}/recommendations


def test_health_describes_the_run_and_its_exact_index(client, runs) -> None:
    body = client.get("/healthz").json()
    assert body["run"] == str(runs["text"]) and body["status"] == "ok"
    assert (body["users"], body["items"]) == (60, 40)
    assert body["item_types"] == ["ad", "product"]
    assert body["index"]["kind"] == "exact" and body["index"]["recall_at_10"] == 1.0


@pytest.mark.parametrize("u", [0, 7])
def test_recommendations_match_the_library_and_skip_seen_items(client, rec, history, u: int) -> None:
    r = client.get(RECS.format(user_id(u)), params={"k": 5})
    assert r.status_code == 200
    assert ids(r) == rec.recommend(user_id(u), k=5)["item_id"].tolist()
    assert not set(ids(r)) & set(history[user_id(u)])
    scores = [x["score"] for x in r.json()["items"]]
    assert scores == sorted(scores, reverse=True)
    assert r.json()["items"][0]["item_type"] == item_type(int(ids(r)[0][1:]))


def test_recommendations_never_pad_and_may_include_seen(client, history) -> None:
    unseen = {item_id(i) for i in range(40)} - set(history["u000"])
    assert set(ids(client.get(RECS.format("u000"), params={"k": MAX_K}))) == unseen
    everything = client.get(RECS.format("u000"), params={"k": MAX_K, "exclude_seen": "false"})
    assert sorted(ids(everything)) == [item_id(i) for i in range(40)]


def test_recommendations_filter_by_item_type(client, rec, history) -> None:
    r = client.get(RECS.format("u001"), params={"k": 3, "item_type": "ad"})
    assert len(ids(r)) == 3 and all(int(i[1:]) % 4 == 0 for i in ids(r))
    ranked = [i for i in rec.recommend("u001", k=40)["item_id"] if int(i[1:]) % 4 == 0]
    assert ids(r) == ranked[:3]  # the best ads, not just any ads


def test_unknown_user_gets_404_pointing_to_post_recommend(client) -> None:
    message = detail(client.get(RECS.format("nobody")), 404)
    assert "unknown user 'nobody'" in message and "POST /recommend" in message


@pytest.mark.parametrize(
    "params, field",
    [({"k": 0}, "query.k"), ({"k": MAX_K + 1}, "query.k"), ({"k": "ten"}, "query.k"), ({"exclude_seen": "maybe"}, "query.exclude_seen")],
)
def test_bad_query_parameters_get_422_naming_them(client, params, field: str) -> None:
    r = client.get(RECS.format("u000"), params=params)
    assert detail(r, 422).startswith(f"{field}: ")
    assert r.json()["errors"][0]["loc"] == field.split(".")


def test_unknown_item_type_and_too_long_id_get_422(client) -> None:
    assert "unknown type 'video'; known: ad, product" in detail(client.get(RECS.format("u000"), params={"item_type": "video"}), 422)
    assert detail(client.get(RECS.format("u" * 129)), 422).startswith("path.user_id: String should have at most 128")


# ---------------------------------------------------------------- POST /recommend (cold start)


def test_recommend_for_a_known_history_equals_that_users_recommendations(client) -> None:
    inter = interactions_frame()
    mine = inter[inter["user_id"] == "u004"]
    history = [{"item_id": i, "rating": float(r)} for i, r in zip(mine["item_id"], mine["rating"])]
    r = client.post("/recommend", json={"history": history, "k": 5})
    assert r.status_code == 200
    assert ids(r) == ids(client.get(RECS.format("u004"), params={"k": 5}))


def test_recommend_embeds_new_items_from_their_text(client, rec) -> None:
    known = [{"item_id": item_id(i), "rating": 5.0} for i in (20, 21, 22)]
    new = {"item_id": "brand-new", "rating": 5.0, "text": "title: Action story number 99. categories: action|thriller"}
    with_new = client.post("/recommend", json={"history": known + [new], "k": 10})
    assert with_new.status_code == 200 and len(ids(with_new)) == 10
    assert not {"i020", "i021", "i022"} & set(ids(with_new))  # seen items stay out
    expected = rec.recommend_history([h["item_id"] for h in known + [new]], [5.0] * 4, {"brand-new": new["text"]}, k=10)
    assert ids(with_new) == expected["item_id"].tolist()
    without = client.post("/recommend", json={"history": known, "k": 10})
    assert [x["score"] for x in with_new.json()["items"]] != [x["score"] for x in without.json()["items"]]


@pytest.mark.parametrize("per_field", [True, False])
def test_a_new_item_given_by_its_fields_gets_the_vector_training_gave_its_twin(runs, tmp_path, per_field: bool) -> None:
    """A catalogue item's fields, sent as a new item's, give the very vector training gave it:
    averaged field by field (the default) or joined as the loader joins them."""
    import yaml

    folder = tmp_path / "run"
    shutil.copytree(runs["text"], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["text"]["per_field"] = per_field
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = tiny_config(runs["root"] / "data")
    cfg.text.enabled, cfg.text.cache_dir, cfg.text.per_field = True, config["text"]["cache_dir"], per_field
    ds = load_dataset(None, runs["root"] / "data")
    trained = item_text_vectors(ds, cfg, progress=False)
    rec = polyrec.load(folder)
    assert rec.text_fields == ("title", "categories")
    picks = [3, 17]
    fields = [{"title": ds.items["title"][i], "categories": ds.items["categories"][i]} for i in picks]
    np.testing.assert_allclose(rec.embed_texts(fields), trained[picks], atol=1e-6)
    whole = rec.embed_texts([ds.items["text"][i] for i in picks])  # one string: the joined text, encoded whole
    assert np.allclose(whole, trained[picks], atol=1e-6) != per_field


def test_new_item_fields_are_checked_against_the_catalogues(rec, runs) -> None:
    with pytest.raises(ValueError, match="unknown text field 'colour' \\(this run's fields: title, categories\\)"):
        rec.embed_texts([{"title": "a kettle", "colour": "blue"}])
    with pytest.raises(ValueError, match="are all empty"):
        rec.embed_texts([{"title": "  "}])
    with pytest.raises(ValueError, match="reads no item text"):
        polyrec.load(runs["plain"]).embed_texts([{"title": "a kettle"}])


def test_recommend_embeds_a_new_item_from_its_fields(client, rec) -> None:
    known = [{"item_id": item_id(i), "rating": 5.0} for i in (20, 21, 22)]
    fields = {"title": "Action story number 99", "categories": "action|thriller"}
    r = client.post("/recommend", json={"history": known + [{"item_id": "brand-new", "rating": 5.0, "fields": fields}], "k": 10})
    assert r.status_code == 200
    expected = rec.recommend_history([h["item_id"] for h in known] + ["brand-new"], [5.0] * 4, {"brand-new": fields}, k=10)
    assert ids(r) == expected["item_id"].tolist()


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"history": [{"item_id": "ghost"}]}, 404, "unknown item 'ghost'"),
        ({"history": []}, 422, "body.history: List should have at least 1 item"),
        ({"history": [{"item_id": "i001"}] * (MAX_HISTORY + 1)}, 422, f"at most {MAX_HISTORY} items"),
        ({"history": [{"item_id": "i001"}], "k": MAX_K + 1}, 422, "body.k: Input should be less than or equal to 100"),
        ({"history": [{"item_id": "i001", "stars": 5}]}, 422, "body.history.0.stars: Extra inputs are not permitted"),
        ({"history": [{"item_id": "i001", "rating": "high"}]}, 422, "body.history.0.rating"),
        ({"history": [{"item_id": "new", "text": ""}]}, 422, "body.history.0.text"),
        ({"history": [{"item_id": "new", "text": "a", "fields": {"title": "a"}}]}, 422, "`text` or its `fields`, not both"),
        ({"history": [{"item_id": "new", "fields": {}}]}, 422, "body.history.0.fields"),
        ({"history": [{"item_id": "new", "fields": {"title": ""}}]}, 422, "body.history.0.fields.title"),
        ({"history": [{"item_id": "new", "fields": {"colour": "blue"}}]}, 422, "unknown text field 'colour'"),
        ({"history": [{"item_id": "i001"}], "item_type": "video"}, 422, "unknown type 'video'"),
        ({"history": [{"item_id": "i001"}], "user_text": "likes ads"}, 422, "this model reads no user text"),
        ({"history": [{"item_id": "i001"}], "user_text": "x" * 2001}, 422, "body.user_text"),
        (None, 422, "body: a JSON body is required"),
    ],
)
def test_bad_recommend_requests(client, body, status: int, message: str) -> None:
    assert message in detail(client.post("/recommend", json=body), status)


def test_malformed_json_gets_422(client) -> None:
    r = client.post("/recommend", content=b'{"history": [', headers={"content-type": "application/json"})
    assert "not valid JSON" in detail(r, 422)


# ---------------------------------------------------------------- POST /predict, profile, similar


def test_predict_matches_the_library(client, rec) -> None:
    pairs = [{"user_id": user_id(u), "item_id": item_id(i)} for u, i in ((0, 3), (0, 30), (5, 12))]
    r = client.post("/predict", json={"pairs": pairs})
    assert r.status_code == 200
    expected = rec.predict([p["user_id"] for p in pairs], [p["item_id"] for p in pairs])
    got = r.json()["predictions"]
    assert [(p["user_id"], p["item_id"]) for p in got] == [(p["user_id"], p["item_id"]) for p in pairs]
    np.testing.assert_allclose([p["rating"] for p in got], expected["rating"], rtol=1e-5)
    np.testing.assert_allclose([p["ctr"] for p in got], expected["ctr"], rtol=1e-5)


@pytest.mark.parametrize(
    "pairs, status, message",
    [
        ([{"user_id": "nobody", "item_id": "i001"}], 404, "POST /recommend"),
        ([{"user_id": "u000", "item_id": "ghost"}], 404, "unknown item 'ghost'"),
        ([], 422, "at least 1 item"),
        ([{"user_id": "u000", "item_id": "i001"}] * (MAX_PAIRS + 1), 422, f"at most {MAX_PAIRS} items"),
        ([{"user_id": "u000"}], 422, "body.pairs.0.item_id: Field required"),
    ],
)
def test_bad_predict_requests(client, pairs, status: int, message: str) -> None:
    assert message in detail(client.post("/predict", json={"pairs": pairs}), status)


def test_predict_for_a_history_matches_the_library(client, rec) -> None:
    inter = interactions_frame()
    mine = inter[inter["user_id"] == "u006"]
    history = [{"item_id": i, "rating": float(r)} for i, r in zip(mine["item_id"], mine["rating"])]
    new = {"item_id": "brand-new", "rating": 2.0, "text": "title: Romance story number 98. categories: romance|drama"}
    targets = ["i003", "i030", "i012"]
    r = client.post("/predict/history", json={"history": history + [new], "items": targets})
    assert r.status_code == 200, r.text
    expected = rec.predict_history([h["item_id"] for h in history + [new]], targets, [h["rating"] for h in history + [new]],
                                   {"brand-new": new["text"]})  # fmt: skip
    got = r.json()["predictions"]
    assert [(p["user_id"], p["item_id"]) for p in got] == [(None, t) for t in targets]
    np.testing.assert_allclose([p["rating"] for p in got], expected["rating"], rtol=1e-5)
    np.testing.assert_allclose([p["ctr"] for p in got], expected["ctr"], rtol=1e-5)
    without_new = client.post("/predict/history", json={"history": history, "items": targets}).json()["predictions"]
    assert [p["rating"] for p in without_new] != [p["rating"] for p in got]  # the new item was read


def test_a_new_item_in_a_history_reads_as_its_catalogue_twin_without_an_id(runs) -> None:
    """A new item is its text alone: with a catalogue item's ID vector zeroed, that item and a
    new one given by its fields are the same history token, for every answer to a history
    that reads the tokens (the parts folded in from the rated catalogue items read no new
    item: theirs are taken out of the predictions compared)."""
    rec = polyrec.load(runs["text"])
    ds = load_dataset(None, runs["root"] / "data")
    fields = {"title": ds.items["title"][3], "categories": ds.items["categories"][3]}
    with torch.no_grad():
        for model in rec.models_.values():
            model.item_tower.ids.weight[3] = 0.0
            if model.item_autoencoder is not None:
                model.item_autoencoder.rating_share.zero_()
                model.ctr_join[1] = 0.0
            for view in model.ctr_views().values():
                view.weight.zero_()
    as_new, as_catalogue = ([item_id(20), twin] for twin in ("twin", item_id(3)))
    texts = {"twin": fields}
    np.testing.assert_allclose(rec.history_vector(as_new, [5.0, 4.0], texts), rec.history_vector(as_catalogue, [5.0, 4.0]), atol=1e-5)
    cold, twin = rec.predict_history(as_new, ["i007", "i011"], [5.0, 4.0], texts), rec.predict_history(as_catalogue, ["i007", "i011"], [5.0, 4.0])
    np.testing.assert_allclose(cold[["rating", "ctr"]].to_numpy(), twin[["rating", "ctr"]].to_numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"history": [{"item_id": "i001"}], "items": ["ghost"]}, 404, "unknown item 'ghost'"),
        ({"history": [{"item_id": "ghost"}], "items": ["i002"]}, 404, "unknown item 'ghost'"),
        ({"history": [{"item_id": "i001"}], "items": []}, 422, "body.items: List should have at least 1 item"),
        ({"history": [{"item_id": "i001"}]}, 422, "body.items: Field required"),
        ({"history": [{"item_id": "i001"}], "items": ["i002"], "user_text": "x"}, 422, "this model reads no user text"),
    ],
)
def test_bad_predict_history_requests(client, body, status: int, message: str) -> None:
    assert message in detail(client.post("/predict/history", json=body), status)


def test_profile_of_a_history_is_the_librarys(client, rec) -> None:
    inter = interactions_frame()
    mine = inter[inter["user_id"] == "u001"]
    history = [{"item_id": i, "rating": float(r)} for i, r in zip(mine["item_id"], mine["rating"])]
    body = client.post("/profile", json={"history": history}).json()
    assert body["user_id"] is None
    expected = rec.profile_history(mine["item_id"].tolist(), mine["rating"].tolist())
    for name, attribute in body["attributes"].items():
        np.testing.assert_allclose(list(attribute["probabilities"].values()), list(expected[name].values()), rtol=1e-5)
    # Interests read the history's liked items, as the known user's do.
    assert body["interests"] == client.get(f"/users/{user_id(1)}/profile").json()["interests"]
    assert body["summary"].startswith("Likely gender ")
    assert "unknown item 'new'" in detail(client.post("/profile", json={"history": [{"item_id": "new", "text": "a film"}]}), 404)


def test_profile_gives_attributes_interests_and_summary(client) -> None:
    for u in (0, 1):
        body = client.get(f"/users/{user_id(u)}/profile").json()
        assert set(body["attributes"]) == {"gender", "age"}
        for attribute in body["attributes"].values():
            probs = attribute["probabilities"]
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            assert attribute["prediction"] == max(probs, key=probs.get)
        # Planted taste: liked items (rating >= 4) are all of the preferred group.
        group = {0: {"action", "thriller"}, 1: {"romance", "drama"}}[preferred_group(u)]
        assert {i["name"] for i in body["interests"]} == group
        assert all(i["share"] == 1.0 for i in body["interests"])
        g = body["attributes"]["gender"]["prediction"]
        assert body["summary"].startswith(f"Likely gender {g} (") and "Mostly " in body["summary"]
    assert "POST /recommend" in detail(client.get("/users/nobody/profile"), 404)


def test_similar_items(client, rec) -> None:
    r = client.get("/items/i005/similar", params={"k": 4})
    assert ids(r) == rec.similar_items("i005", k=4)["item_id"].tolist()
    assert "i005" not in ids(r)
    ads = client.get("/items/i005/similar", params={"k": 4, "item_type": "ad"})
    assert all(int(i[1:]) % 4 == 0 for i in ids(ads)) and len(ids(ads)) == 4
    same_group = sum(item_group(int(i[1:])) == item_group(5) for i in ids(r))
    assert same_group >= 3  # the item vectors know the two planted groups
    assert "unknown item 'ghost'" in detail(client.get("/items/ghost/similar"), 404)
    assert detail(client.get("/items/i005/similar", params={"k": 0}), 422).startswith("query.k")


# ---------------------------------------------------------------- events


def test_events_are_stored_counted_and_idempotent(client, runs) -> None:
    before = client.get("/events/count").json()["count"]
    one = client.post("/events", json={"user_id": "u000", "item_id": "i001", "event_type": "click", "event_id": "e-1"})
    assert one.status_code == 201 and one.json() == {"event_ids": ["e-1"], "stored": 1}
    batch = [
        {"user_id": "new-user", "item_id": "new-item", "event_type": "view", "time": "2024-01-02T03:04:05Z"},
        {"user_id": "u001", "item_id": "i002", "event_type": "rating", "rating": 4.5, "time": 1700000000},
        {"user_id": "u000", "item_id": "i001", "event_type": "click", "event_id": "e-1"},  # a retry
    ]
    r = client.post("/events", json=batch)
    assert r.status_code == 201 and r.json()["stored"] == 2
    assert r.json()["event_ids"][2] == "e-1" and len(set(r.json()["event_ids"])) == 3
    assert client.get("/events/count").json() == {"count": before + 3}
    stored = read_events(runs["root"] / "events.sqlite").set_index("event_id")
    row = stored.loc[r.json()["event_ids"][1]]
    assert (row["user_id"], row["event_type"], row["rating"], row["time"]) == ("u001", "rating", 4.5, 1700000000.0)
    assert stored.loc[r.json()["event_ids"][0], "time"] == pd.Timestamp("2024-01-02T03:04:05Z").timestamp()


@pytest.mark.parametrize(
    "body, message",
    [
        ({"user_id": "u000", "item_id": "i001", "event_type": "rating"}, "needs a rating"),
        ({"user_id": "u000", "item_id": "i001", "event_type": "wink"}, "body.event.event_type: Input should be 'view'"),
        ({"user_id": "", "item_id": "i001", "event_type": "click"}, "body.event.user_id"),
        ({"user_id": "u000", "item_id": "i001", "event_type": "click", "time": "yesterday"}, "body.event.time"),
        ([], "body.events: List should have at least 1 item"),
        ("click", "body.event: Input should be a valid dictionary"),
    ],
)
def test_bad_events_get_422_and_store_nothing(client, body, message: str) -> None:
    before = client.get("/events/count").json()["count"]
    assert message in detail(client.post("/events", json=body), 422)
    assert client.get("/events/count").json()["count"] == before


def test_oversized_bodies_get_413_declared_or_streamed(client) -> None:
    big = b'{"user_id": "' + b"x" * (1 << 20) + b'"}'
    assert "larger than 1048576 bytes" in detail(client.post("/events", content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(20):
            yield b"y" * 65536

    assert "larger than" in detail(client.post("/predict", content=chunks(), headers={"content-type": "application/json"}), 413)


# ---------------------------------------------------------------- metrics, OpenAPI


def _sample(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_by_route_and_status(client) -> None:
    ok = 'polyrec_http_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"}'
    missing = 'polyrec_http_requests_total{method="GET",route="/users/{user_id}/recommendations",status="404"}'
    count = 'polyrec_http_request_duration_seconds_count{method="GET",route="/users/{user_id}/recommendations"}'
    inf = 'polyrec_http_request_duration_seconds_bucket{method="GET",route="/users/{user_id}/recommendations",le="+Inf"}'
    before = client.get("/metrics").text
    for u in ("u000", "u001", "u002", "nobody"):
        client.get(RECS.format(u))
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    after = r.text
    assert _sample(after, ok) - _sample(before, ok) == 3
    assert _sample(after, missing) - _sample(before, missing) == 1
    assert _sample(after, count) - _sample(before, count) == 4 and _sample(after, inf) == _sample(after, count)
    assert _sample(after, "polyrec_model_items") == 40
    assert "# TYPE polyrec_http_request_duration_seconds histogram" in after


def test_openapi_documents_every_endpoint(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        "/users/{user_id}/recommendations": "get", "/recommend": "post", "/predict": "post", "/predict/history": "post",
        "/users/{user_id}/profile": "get", "/profile": "post", "/users/{user_id}/history": "get", "/users/{user_id}/explain": "get", "/explain": "post", "/items/{item_id}/similar": "get", "/events": "post",
        "/events/count": "get", "/admin/reload": "post", "/healthz": "get", "/metrics": "get",
    }  # fmt: skip
    assert {p: next(iter(m)) for p, m in paths.items()} == expected
    assert "404" in paths["/users/{user_id}/recommendations"]["get"]["responses"]


# ---------------------------------------------------------------- POST /admin/reload


def test_reload_needs_the_admin_key(client, runs, monkeypatch) -> None:
    body = {"run": str(runs["plain"])}
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    assert ADMIN_KEY_ENV in detail(client.post("/admin/reload", json=body, headers={"X-API-Key": KEY}), 503)
    monkeypatch.setenv(ADMIN_KEY_ENV, KEY)
    assert "missing X-API-Key" in detail(client.post("/admin/reload", json=body), 401)
    assert "wrong X-API-Key" in detail(client.post("/admin/reload", json=body, headers={"X-API-Key": "guess"}), 403)
    missing = runs["root"] / "nothing"
    message = detail(client.post("/admin/reload", json={"run": str(missing)}, headers={"X-API-Key": KEY}), 400)
    assert message.startswith(f"cannot load run '{missing}': ") and str(missing) in message.split(": ", 1)[1]
    assert client.get("/healthz").json()["run"] == str(runs["text"])  # nothing changed


def test_reload_swaps_runs_while_requests_keep_being_answered(client, runs, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, KEY)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(client.get(RECS.format("u003"), params={"k": 5}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        r = client.post("/admin/reload", json={"run": str(runs["plain"])}, headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["run"] == str(runs["plain"])
        after_first = len(statuses)
        r = client.post("/admin/reload", json={"run": str(runs["text"])}, headers={"X-API-Key": KEY})
        assert r.status_code == 200
        deadline = time.monotonic() + 30
        while len(statuses) < after_first + 5 and time.monotonic() < deadline:  # answered after the swaps too
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) >= after_first + 5 and set(statuses) == {200}
    assert client.get("/healthz").json()["run"] == str(runs["text"])


def test_after_reload_the_new_run_answers(client, runs, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, KEY)
    new_item = {"history": [{"item_id": "new", "text": "A story"}]}
    assert client.post("/recommend", json=new_item).status_code == 200
    client.post("/admin/reload", json={"run": str(runs["plain"])}, headers={"X-API-Key": KEY})
    try:
        assert "reads no item text" in detail(client.post("/recommend", json=new_item), 422)
        plain = polyrec.load(runs["plain"])
        assert ids(client.get(RECS.format("u002"), params={"k": 5})) == plain.recommend("u002", k=5)["item_id"].tolist()
    finally:
        client.post("/admin/reload", json={"run": str(runs["text"])}, headers={"X-API-Key": KEY})


# ---------------------------------------------------------------- a run with an item prior


def test_with_an_item_prior_requests_score_the_catalogue_exactly(runs) -> None:
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        assert not rec.vectors_rank_as_recommend and polyrec.load(runs["text"]).vectors_rank_as_recommend
        prior = rec.models_["B"].item_prior
        u = rec.user_index("u004")
        own = torch.from_numpy(rec.user_vectors()[u] @ rec.item_vectors().T)[None]
        taken = torch.from_numpy(rec._histories["B"].items[u][-20:])[None]  # what the model reads (max_history 20)
        expected_blend = blend_scores(own, prior.history_scores(taken, torch.ones_like(taken, dtype=torch.bool)), 0.4)
        np.testing.assert_allclose(rec.catalogue_scores(np.array([u]))[0], expected_blend[0].numpy(), atol=1e-4)
        history = ["i001", "i005", "i009", "i013"]
        with TestClient(create_app(runs["prior"], runs["root"] / "prior-events.sqlite")) as c:
            assert c.get("/healthz").json()["index"]["kind"] == "blend"
            for params in ({"k": 7}, {"k": 3, "item_type": "ad"}):
                ranked = rec.recommend("u004", k=40)["item_id"].tolist()
                if "item_type" in params:
                    ranked = [i for i in ranked if int(i[1:]) % 4 == 0]
                assert ids(c.get(RECS.format("u004"), params=params)) == ranked[: params["k"]]
            body = {"history": [{"item_id": i} for i in history], "k": 6}
            expected = rec.recommend_history(history, k=6)["item_id"].tolist()
            assert ids(c.post("/recommend", json=body)) == expected
        # An ad-hoc history's scores are the same blend, its prior part read from its items.
        everything = rec.recommend_history(history, k=40, exclude_seen=False)
        by_vectors = torch.from_numpy(rec.item_vectors() @ rec.history_vector(history))[None]
        taken = torch.tensor([[rec.item_index(i) for i in history]])
        expected_blend = blend_scores(by_vectors, prior.history_scores(taken, torch.ones_like(taken, dtype=torch.bool)), 0.4)[0]
        order = [rec.item_index(i) for i in everything["item_id"]]
        np.testing.assert_allclose(everything["score"].to_numpy(), expected_blend.numpy()[order], atol=1e-4)


def test_blended_scorer_gives_the_models_scores_with_two_priors(runs) -> None:
    """What serving keeps at load scores every known user and an ad-hoc history as the model
    does, with an EASE and a transition part (repeated items, histories past max_history)."""
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        model = rec.models_["B"]
        history = rec._histories["B"]
        sources, weights = ease_neighbours(taken_matrix(history, model.spec.n_items), 30.0, 4, 100)
        model.attach_item_prior(sources[::-1].copy(), weights, share=0.2, decay=0.7, part="transition_prior")
        model.spec.config.max_history = 10  # so that some histories are cut to their latest items
        priors, histories, max_history = rec.next_item_reading()
        assert len(priors) == 2 and max(map(len, histories)) > max_history  # some histories are cut
        scorer = BlendedScorer.for_histories(rec.item_vectors(), rec.user_vectors(), priors, histories, max_history)
        users = np.arange(len(histories))
        expected = rec.catalogue_scores(users)
        got = np.stack([scorer.user_scores(u) for u in users])
        np.testing.assert_allclose(got, expected, atol=1e-4)
        for u in users[:10]:  # the same ranking as recommend's, given the same scores
            seen = rec._seen[u]
            assert top_k_allowed(expected[u], 8, seen)[0].tolist() == [rec.item_index(i) for i in rec.top_items(expected[u], 8, seen)["item_id"]]
        adhoc = ["i003", "i007", "i003", "i011", "i002"]  # a repeat: it counts once, at its latest
        vector = rec.history_vector(adhoc)
        positions = np.array([rec.item_index(i) for i in adhoc])
        everything = rec.recommend_history(adhoc, k=rec.n_items, exclude_seen=False)
        by_scorer = scorer.history_scores(vector, positions)
        order = [rec.item_index(i) for i in everything["item_id"]]
        np.testing.assert_allclose(by_scorer[order], everything["score"].to_numpy(), atol=1e-4)
        # A new item (−1) has no prior part but still takes its place in the history's ages,
        # as recommend_history reads it (the model's blend with the new item masked out).
        with_new = np.array([*positions[:2], -1, *positions[2:]])
        known = torch.from_numpy(with_new >= 0)[None]
        model_blend = model.blend_priors(
            torch.from_numpy(rec.item_vectors() @ vector)[None], torch.from_numpy(np.maximum(with_new, 0))[None], known,
            torch.tensor([len(with_new) - 1]),
        )[0].detach().numpy()
        np.testing.assert_allclose(scorer.history_scores(vector, with_new), model_blend, atol=1e-4)
        assert not np.allclose(model_blend, by_scorer, atol=1e-3)  # the new item moved the others' ages


def test_popularity_penalty_ranks_as_recommend_does_on_both_paths(runs) -> None:
    """The index path (vectors) and the blend path (priors) re-rank the whole catalogue as the
    library's recommend does with the same penalty."""
    for name in ("text", "prior"):
        with torch_threads(1), TestClient(create_app(runs[name], runs["root"] / f"penalty-{name}.sqlite")) as c:
            rec = polyrec.load(runs[name])
            for user in ("u000", "u005"):
                r = c.get(RECS.format(user), params={"k": 8, "popularity_penalty": 0.7})
                assert r.status_code == 200, r.text
                expected = rec.recommend(user, k=8, popularity_penalty=0.7)
                assert ids(r) == expected["item_id"].tolist()
                np.testing.assert_allclose([x["score"] for x in r.json()["items"]], expected["score"], atol=1e-4)
            plain = ids(c.get(RECS.format("u000"), params={"k": 8}))
            assert plain == rec.recommend("u000", k=8)["item_id"].tolist()
            assert plain != ids(c.get(RECS.format("u000"), params={"k": 8, "popularity_penalty": 0.7}))  # it did re-rank
            assert "popularity_penalty" in detail(c.get(RECS.format("u000"), params={"popularity_penalty": -1}), 422)
            # An ad-hoc history: as the library's recommend_history re-ranks it.
            given = ["i003", "i007", "i011", "i020"]
            r = c.post("/recommend", json={"history": [{"item_id": i} for i in given], "k": 8, "popularity_penalty": 0.7})
            assert r.status_code == 200, r.text
            expected = rec.recommend_history(given, k=8, popularity_penalty=0.7)
            assert ids(r) == expected["item_id"].tolist()
            np.testing.assert_allclose([x["score"] for x in r.json()["items"]], expected["score"], atol=1e-4)
            assert ids(r) != rec.recommend_history(given, k=8)["item_id"].tolist()  # it did re-rank


# ---------------------------------------------------------------- explanations


def test_explanation_takes_the_score_apart_exactly_with_two_priors(runs) -> None:
    """The parts sum to recommend's score; a prior's part is its standardised blend term, and
    its history items' pulls less the average pull over the catalogue."""
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        model = rec.models_["B"]
        sources, weights = ease_neighbours(taken_matrix(rec._histories["B"], model.spec.n_items), 30.0, 4, 100)
        model.attach_item_prior(sources[::-1].copy(), weights, share=0.2, decay=0.7, part="transition_prior")
        model.spec.config.max_history = 10  # histories cut to their latest items, as the priors read them
        for user in ("u000", "u007"):
            u = rec.user_index(user)
            scores = rec.catalogue_scores(np.array([u]))[0]
            batch = collate(rec._histories["B"], np.array([u]), 10)
            for item in ("i000", "i013", "i029"):
                e = rec.explain(user, item, top=1000)
                i = rec.item_index(item)
                assert e.score == pytest.approx(float(scores[i]), abs=1e-4)
                assert sum(e.parts.values()) == pytest.approx(e.score, abs=1e-9)
                assert list(e.parts) == ["model", "item_prior", "transition_prior"]
                for name, prior in model.named_priors():
                    raw = prior.history_scores(batch.items, batch.mask)[0].detach().numpy().astype(np.float64)
                    share, spread = float(prior.share), raw.std(ddof=1)
                    assert e.parts[name] == pytest.approx(share * (raw[i] - raw.mean()) / spread, abs=1e-4)
                    pulls = e.because.loc[e.because["prior"] == name, "pull"].sum()
                    assert pulls - share * raw.mean() / spread == pytest.approx(e.parts[name], abs=1e-4)
                latest = rec._histories["B"].items[u][-10:]
                assert set(e.because["item_id"]) <= {str(rec.items_["item_id"].iloc[j]) for j in latest}
                assert np.all(np.diff(np.abs(e.because["pull"].to_numpy())) <= 0)  # largest first
        assert len(rec.explain("u000", "i013", top=2).because) <= 2
        # Occlusion: each change is the score less the score of the history without that item.
        user = rec.user_index("u007")
        history = [str(rec.items_["item_id"].iloc[i]) for i in rec._histories["B"].items[user]]
        ratings = rec._histories["B"].ratings[user].tolist()
        e = rec.explain("u007", "i013", top=3, occlusion=True)
        assert len(e.without) == 3 and np.all(np.diff(np.abs(e.without["change"].to_numpy())) <= 0)
        for row in e.without.itertuples(index=False):
            j = len(history) - 1 - row.steps_back
            assert history[j] == row.item_id
            rest = rec.recommend_history(history[:j] + history[j + 1 :], ratings[:j] + ratings[j + 1 :], k=rec.n_items, exclude_seen=False)
            assert e.score - float(rest.set_index("item_id").loc["i013", "score"]) == pytest.approx(row.change, abs=1e-4)


def test_an_ad_hoc_history_is_explained_as_the_known_user_it_repeats(runs) -> None:
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        rec.models_["B"].spec.config.max_history = 5  # histories cut to their latest items, occlusion too
        u = rec.user_index("u007")
        history = [str(rec.items_["item_id"].iloc[i]) for i in rec._histories["B"].items[u]]
        ratings = rec._histories["B"].ratings[u].tolist()
        known = rec.explain("u007", "i013", top=10, occlusion=True)
        given = rec.explain_history(history, "i013", ratings, top=10, occlusion=True)
        alone = rec.explain_history(history[:1], "i013", ratings[:1], occlusion=True)
    assert len(history) > 5 and len(known.without) == 5
    assert alone.without.empty  # one item: nothing to leave out
    assert given.user_id is None and given.summary().startswith("item i013 for the given history: score")
    assert given.score == pytest.approx(known.score, abs=1e-4)
    assert given.parts == pytest.approx(known.parts, abs=1e-4)
    pd.testing.assert_frame_equal(given.because, known.because, atol=1e-4)
    pd.testing.assert_frame_equal(given.without, known.without, atol=1e-4)


def test_a_new_item_in_an_ad_hoc_history_takes_its_place_and_no_prior_part(runs) -> None:
    """Given by its text, it moves the older items one step back and is named where its
    absence moves the score; no prior reads it."""
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        u = rec.user_index("u007")
        history = [str(rec.items_["item_id"].iloc[i]) for i in rec._histories["B"].items[u]][-6:]
        with_new = [*history[:-1], "brand-new", history[-1]]
        texts = {"brand-new": "Quiet Harbour: a slow drama about a lighthouse keeper"}
        e = rec.explain_history(with_new, "i013", texts=texts, top=1000, occlusion=True)
        plain = rec.explain_history(history, "i013", top=1000)
        expected = rec.history_scores(with_new, texts=texts)[rec.item_index("i013")]
    assert e.score == pytest.approx(float(expected), abs=1e-4) and sum(e.parts.values()) == pytest.approx(e.score, abs=1e-9)
    assert "brand-new" not in set(e.because["item_id"])
    steps = dict(zip(e.because["item_id"], e.because["steps_back"]))
    for item, back in zip(plain.because["item_id"], plain.because["steps_back"]):
        assert steps[item] == back + (back > 0)  # every item before the new one is a step further back
    row = e.without.set_index("item_id").loc["brand-new"]
    assert (row["steps_back"], row["text"]) == (1, texts["brand-new"])
    assert len(e.without) == len(with_new)


def test_explanation_of_a_run_without_priors_is_the_models_score(rec) -> None:
    with torch_threads(1):
        e = rec.explain("u000", "i005")
        assert e.parts == {"model": e.score} and e.because.empty
        expected = rec.catalogue_scores(np.array([rec.user_index("u000")]))[0][rec.item_index("i005")]
        assert e.score == pytest.approx(float(expected), abs=1e-5)


def test_explain_endpoint(runs, history) -> None:
    with torch_threads(1), TestClient(create_app(runs["prior"], runs["root"] / "explain-events.sqlite")) as c:
        r = c.get("/users/u000/explain", params={"item_id": "i013", "top": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["item_id"] == "i013" and sum(body["parts"].values()) == pytest.approx(body["score"], abs=1e-6)
        assert 0 < len(body["because"]) <= 3 and {"item_id", "text", "prior", "steps_back", "pull"} <= set(body["because"][0])
        assert body["without"] == []
        occluded = c.get("/users/u000/explain", params={"item_id": "i013", "top": 2, "occlusion": True}).json()
        assert len(occluded["without"]) == 2 and {"item_id", "steps_back", "change"} <= set(occluded["without"][0])
        assert "unknown item 'nope'" in detail(c.get("/users/u000/explain", params={"item_id": "nope"}), 404)
        assert "unknown user" in detail(c.get("/users/nobody/explain", params={"item_id": "i013"}), 404)
        # An ad-hoc history: the library's explanation of it, with no user id.
        given = [{"item_id": i, "rating": 4.0} for i in history["u003"]]
        body = c.post("/explain", json={"history": given, "item_id": "i013", "top": 2, "occlusion": True}).json()
        expected = polyrec.load(runs["prior"]).explain_history(history["u003"], "i013", [4.0] * len(given), top=2, occlusion=True)
        assert body["user_id"] is None and body["score"] == pytest.approx(expected.score, abs=1e-5)
        assert [w["item_id"] for w in body["without"]] == expected.without["item_id"].tolist()
        assert [b["item_id"] for b in body["because"]] == expected.because["item_id"].tolist()
        assert "unknown item 'nope'" in detail(c.post("/explain", json={"history": given, "item_id": "nope"}), 404)
        assert "unknown item 'ghost'" in detail(c.post("/explain", json={"history": [{"item_id": "ghost"}], "item_id": "i013"}), 404)


# ---------------------------------------------------------------- an approximate index


def test_ivf_index_is_reported_and_still_answers(runs, rec) -> None:
    settings = ServeSettings(index=IndexSettings(exact_below=10, nlist=4, nprobe=1))
    with torch_threads(1), TestClient(create_app(runs["text"], runs["root"] / "ivf-events.sqlite", settings)) as c:
        index = c.get("/healthz").json()["index"]
        assert (index["kind"], index["nlist"], index["nprobe"]) == ("ivf", 4, 1)
        assert 0.0 < index["recall_at_10"] <= 1.0
        r = c.get(RECS.format("u000"), params={"k": 20})
        unseen = set(rec.recommend("u000", k=40)["item_id"])
        # One of four groups scanned, yet 20 unseen items come back: the search widens until k survive.
        assert len(ids(r)) == 20 and set(ids(r)) <= unseen


def test_cli_serve_names_a_missing_run(tmp_path, capsys) -> None:
    from polyrec.cli import main

    assert main(["serve", "--run", str(tmp_path / "nothing"), "--events", str(tmp_path / "ev.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyrec: error: ") and str(tmp_path / "nothing") in err and "\n" not in err


class PublicMethodsOnly:
    """A run type without vectors (as a baseline or an ensemble): recommend/predict/profile only."""

    def __init__(self, rec):
        self._rec, self.items_, self.users_ = rec, rec.items_, rec.users_

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True, **options):
        return self._rec.recommend(user_id, k, exclude_seen, **options)  # options: as RecommenderBase's (the penalty)

    def predict(self, user_ids, item_ids):
        return self._rec.predict(user_ids, item_ids)

    def profile(self, user_id: str):
        return self._rec.profile(user_id)


def test_a_run_type_without_vectors_is_served_through_its_own_methods(runs, client, monkeypatch) -> None:
    real_load = polyrec.load
    monkeypatch.setattr(polyrec, "load", lambda path: PublicMethodsOnly(real_load(path)))
    with torch_threads(1), TestClient(create_app(runs["text"], runs["root"] / "plain-events.sqlite")) as c:
        assert c.get("/healthz").json()["index"]["kind"] == "none"
        for params in ({"k": 5}, {"k": 3, "item_type": "ad"}, {"k": 7, "exclude_seen": "false"}, {"k": 6, "popularity_penalty": 0.7}):
            assert ids(c.get(RECS.format("u006"), params=params)) == ids(client.get(RECS.format("u006"), params=params))
        assert c.post("/predict", json={"pairs": [{"user_id": "u000", "item_id": "i001"}]}).status_code == 200
        assert "cannot recommend for an ad-hoc history" in detail(c.post("/recommend", json={"history": [{"item_id": "i001"}]}), 501)
        cold = {"history": [{"item_id": "i001"}], "items": ["i002"]}
        assert "cannot predict for an ad-hoc history" in detail(c.post("/predict/history", json=cold), 501)
        assert "cannot profile an ad-hoc history" in detail(c.post("/profile", json={"history": [{"item_id": "i001"}]}), 501)
        assert "has no item vectors" in detail(c.get("/items/i001/similar"), 501)
        assert c.get("/users/u000/profile").json()["interests"] == []


def test_new_item_texts_are_embedded_with_the_runs_own_text_settings(runs, tmp_path, monkeypatch) -> None:
    """A run trained with `text.max_tokens` embeds a new item's text the same way."""
    import yaml

    import polyrec.text

    folder = tmp_path / "capped"
    shutil.copytree(runs["text"], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["text"]["max_tokens"] = 8
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    asked = []

    def encode(texts, *args, **kwargs):  # what the run asks its encoder for
        asked.append((args, kwargs))
        return np.zeros((len(texts), 384), np.float32)

    monkeypatch.setattr(polyrec.text, "encode_texts", encode)
    polyrec.load(folder).embed_texts(["title: a new story"])
    polyrec.load(runs["text"]).embed_texts(["title: a new story"])
    assert [kw["max_tokens"] for _, kw in asked] == [8, None]


# ---------------------------------------------------------------- live events


def test_a_known_users_history_given_back_recommends_as_that_user(runs) -> None:
    """``history_of`` is the history the model reads: given to ``recommend_history`` it gives
    the user's own recommendations, with and without a prior's blend."""
    with torch_threads(1):
        for name in ("text", "prior"):
            rec = polyrec.load(runs[name])
            items, values = rec.history_of("u004")
            assert items == list(interactions_frame().query("user_id == 'u004'")["item_id"])
            assert all(v in (1.0, 2.0, 4.0, 5.0) for v in values)
            again = rec.recommend_history(items, values, k=8)
            own = rec.recommend("u004", k=8)
            assert again["item_id"].tolist() == own["item_id"].tolist(), name
            np.testing.assert_allclose(again["score"], own["score"], atol=1e-4)


def test_live_events_grow_a_users_history_from_the_run_s_data_on(runs, tmp_path) -> None:
    events = tmp_path / "live.sqlite"
    known = interactions_frame().query("user_id == 'u004'")
    latest = float(known["ts"].max())
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        with TestClient(create_app(runs["prior"], events, ServeSettings(live_events=True))) as live, \
                TestClient(create_app(runs["prior"], events)) as plain:  # fmt: skip
            assert live.get("/healthz").json()["live_events"] and not plain.get("/healthz").json()["live_events"]
            before = live.get(RECS.format("u004"), params={"k": 6}).json()
            assert before["new_events"] is None and [x["item_id"] for x in before["items"]] == ids(plain.get(RECS.format("u004"), params={"k": 6}))
            new = [i for i in before["items"][:2]]  # the user takes the two items ranked first
            posted = [
                {"user_id": "u004", "item_id": new[0]["item_id"], "event_type": "click"},
                {"user_id": "u004", "item_id": new[1]["item_id"], "event_type": "rating", "rating": 5, "time": latest + 60},
                {"user_id": "u004", "item_id": "i039", "event_type": "click", "time": latest},  # not after the run's data
                {"user_id": "u004", "item_id": "not-in-catalogue", "event_type": "click"},
            ]
            assert live.post("/events", json=posted).status_code == 201
            after = live.get(RECS.format("u004"), params={"k": 6}).json()
            assert after["new_events"] == 2
            # The rated one happened first (its time), the click when it was received.
            grown = known["item_id"].tolist() + [new[1]["item_id"], new[0]["item_id"]]
            values = known["rating"].astype(float).tolist() + [5.0, None]
            expected = rec.recommend_history(grown, values, k=6)
            assert [x["item_id"] for x in after["items"]] == expected["item_id"].tolist()
            np.testing.assert_allclose([x["score"] for x in after["items"]], expected["score"], atol=1e-5)
            assert not {n["item_id"] for n in new} & {x["item_id"] for x in after["items"]}  # now seen
            assert ids(plain.get(RECS.format("u004"), params={"k": 6})) == [x["item_id"] for x in before["items"]]
            # A user the run does not know: their events alone; without any, still 404.
            assert live.get(RECS.format("newcomer")).status_code == 404
            live.post("/events", json=[{"user_id": "newcomer", "item_id": i, "event_type": "click"} for i in ("i021", "i022")])
            fresh = live.get(RECS.format("newcomer"), params={"k": 4, "item_type": "ad"}).json()
            ranked = [i for i in rec.recommend_history(["i021", "i022"], [None, None], k=40)["item_id"] if int(i[1:]) % 4 == 0]
            assert fresh["new_events"] == 2 and [x["item_id"] for x in fresh["items"]] == ranked[:4]
            assert plain.get(RECS.format("newcomer")).status_code == 404


def test_live_events_reach_a_users_predictions_profile_and_explanations(runs, tmp_path) -> None:
    """With live events, a user's predictions, profile and explanations read their grown
    history as the history endpoints read one; other users' answers are the run's own."""
    latest = float(interactions_frame().query("user_id == 'u004'")["ts"].max())
    pairs = [("u004", "i010"), ("u007", "i010"), ("u004", "i011"), ("u007", "i013")]
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        items, values = rec.history_of("u004")
        with TestClient(create_app(runs["prior"], tmp_path / "ev.sqlite", ServeSettings(live_events=True))) as live, \
                TestClient(create_app(runs["prior"], tmp_path / "ev.sqlite")) as plain:  # fmt: skip
            ask = {"pairs": [{"user_id": u, "item_id": i} for u, i in pairs]}
            assert live.post("/predict", json=ask).json() == plain.post("/predict", json=ask).json()  # no events yet
            live.post("/events", json=[
                {"user_id": "u004", "item_id": "i030", "event_type": "rating", "rating": 1, "time": latest + 60},
                {"user_id": "u004", "item_id": "i031", "event_type": "click", "time": latest + 120},
            ])  # fmt: skip
            grown, grown_values = items + ["i030", "i031"], values + [1.0, None]
            got = live.post("/predict", json=ask).json()["predictions"]
            assert [(g["user_id"], g["item_id"], g["new_events"]) for g in got] == [(u, i, 2 if u == "u004" else None) for u, i in pairs]
            expected = rec.predict_history(grown, ["i010", "i011"], grown_values)
            np.testing.assert_allclose([got[0]["rating"], got[2]["rating"]], expected["rating"], atol=1e-5)
            np.testing.assert_allclose([got[0]["ctr"], got[2]["ctr"]], expected["ctr"], atol=1e-5)
            before = plain.post("/predict", json=ask).json()["predictions"]
            assert [got[1], got[3]] == [before[1], before[3]] and before[1]["ctr"] != before[3]["ctr"]
            assert abs(got[0]["rating"] - before[0]["rating"]) > 1e-4

            profile = live.get("/users/u004/profile").json()
            probabilities = rec.profile_history(grown, grown_values)
            assert profile["new_events"] == 2 and profile["user_id"] == "u004"
            for name, p in probabilities.items():
                np.testing.assert_allclose([profile["attributes"][name]["probabilities"][c] for c in p], list(p.values()), atol=1e-5)
            assert [(x["name"], round(x["share"], 6)) for x in profile["interests"]] == [
                (n, round(s, 6)) for n, s in rec.interests_history(grown, grown_values)
            ]
            assert plain.get("/users/u004/profile").json()["new_events"] is None

            whole = live.get("/users/u004/history", params={"limit": 1000}).json()
            assert [x["item_id"] for x in whole["items"]] == grown and [x["value"] for x in whole["items"]] == grown_values
            assert [x["new"] for x in whole["items"]] == [False] * len(items) + [True, True]
            assert whole["total"] == len(grown) and whole["new_events"] == 2
            assert [x["item_id"] for x in live.get("/users/u004/history", params={"limit": 3}).json()["items"]] == grown[-3:]
            own = plain.get("/users/u004/history").json()
            assert own["new_events"] is None and own["total"] == len(items) and not any(x["new"] for x in own["items"])
            assert [x["item_id"] for x in own["items"]] == items[-50:]

            why = live.get("/users/u004/explain", params={"item_id": "i012"}).json()
            assert why["user_id"] == "u004" and why["new_events"] == 2
            assert why["score"] == pytest.approx(rec.explain_history(grown, "i012", grown_values).score, abs=1e-5)
            assert plain.get("/users/u004/explain", params={"item_id": "i012"}).json()["score"] == pytest.approx(rec.explain("u004", "i012").score, abs=1e-5)

            # A user the run does not know: answered from their events alone, where the plain service says 404.
            live.post("/events", json=[{"user_id": "newcomer", "item_id": i, "event_type": "rating", "rating": 4} for i in ("i021", "i022")])
            newcomer = {"pairs": [{"user_id": "newcomer", "item_id": "i010"}]}
            got = live.post("/predict", json=newcomer).json()["predictions"][0]
            assert got["new_events"] == 2 and got["rating"] == pytest.approx(rec.predict_history(["i021", "i022"], ["i010"], [4.0, 4.0])["rating"][0], abs=1e-5)
            assert live.get("/users/newcomer/profile").json()["new_events"] == 2
            assert [(x["item_id"], x["new"]) for x in live.get("/users/newcomer/history").json()["items"]] == [("i021", True), ("i022", True)]
            assert plain.get("/users/newcomer/history").status_code == 404
            assert plain.post("/predict", json=newcomer).status_code == 404 and plain.get("/users/newcomer/profile").status_code == 404
            assert live.get("/users/nobody/profile").status_code == 404  # no events either


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def history_calls(monkeypatch) -> list[tuple[str, str | None]]:
    """(method, as_user) of every ``predict_history`` and ``profile_history`` call, in order."""
    from polyrec.recommender import Recommender

    asked: list[tuple[str, str | None]] = []
    for name in ("predict_history", "profile_history"):
        original = getattr(Recommender, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            asked.append((_name, kwargs.get("as_user")))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Recommender, name, spy)
    return asked


def test_live_answers_read_a_known_user_as_that_user(runs, tmp_path, history_calls) -> None:
    """A known user's grown history is read ``as_user`` (their own rows where no history gives
    them back: tests/test_cold_users.py); a user the run does not know is read as new; the
    commands with --events do the same."""
    from polyrec.cli import main

    asked = history_calls
    with torch_threads(1), TestClient(create_app(runs["prior"], tmp_path / "ev.sqlite", ServeSettings(live_events=True))) as c:
        c.post("/events", json=[{"user_id": u, "item_id": "i030", "event_type": "click"} for u in ("u004", "newcomer")])
        for user in ("u004", "newcomer"):
            assert c.post("/predict", json={"pairs": [{"user_id": user, "item_id": "i010"}]}).status_code == 200
            assert c.get(f"/users/{user}/profile").status_code == 200
    assert asked == [("predict_history", "u004"), ("profile_history", "u004"), ("predict_history", None), ("profile_history", None)]
    asked.clear()
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": ["newcomer", "u004"], "item_id": ["i010", "i010"]}).to_csv(pairs, index=False)
    db, run_folder = str(tmp_path / "ev.sqlite"), str(runs["prior"])
    with torch_threads(1):
        assert main(["predict", "--run", run_folder, "--pairs", str(pairs), "--out", str(tmp_path / "p.csv"), "--events", db]) == 0
        assert main(["profile", "--run", run_folder, "--user", "u004", "--events", db]) == 0
        assert main(["profile", "--run", run_folder, "--users", str(write_lines(tmp_path / "ids.txt", ["u004"])), "--out",
                     str(tmp_path / "profiles.csv"), "--events", db, "--quiet"]) == 0  # fmt: skip
    assert sorted(asked[:2], key=str) == [("predict_history", "u004"), ("predict_history", None)]
    assert asked[2:] == [("profile_history", "u004"), ("profile_history", "u004")]


def test_live_events_of_a_run_without_timestamps_are_those_after_its_tables_and_read_as_labels(tmp_path) -> None:
    """Data without times: the events after the run's tables were written are new. On 0/1
    labels without ratings, an event's value is the label it implies."""
    data = write_dataset(tmp_path / "data", ratings=False, timestamps=False)
    inter = pd.read_csv(data / "interactions.csv")
    inter.assign(clicked=[int(i % 3 > 0) for i in range(len(inter))]).to_csv(data / "interactions.csv", index=False)
    spec = (data / "dataset.yaml").read_text().replace("item: item_id}", "item: item_id, label: clicked}")
    (data / "dataset.yaml").write_text(spec)
    with torch_threads(1):
        run(tiny_config(data, epochs=1), tmp_path / "run", progress=False, log=lambda _: None)
        rec = polyrec.load(tmp_path / "run")
        assert rec.values_are_labels and rec.known_until("u004") is None
        with TestClient(create_app(tmp_path / "run", tmp_path / "ev.sqlite", ServeSettings(live_events=True))) as c:
            written = (tmp_path / "run" / "interactions.parquet").stat().st_mtime
            c.post("/events", json=[
                {"user_id": "u004", "item_id": "i030", "event_type": "purchase", "time": written - 3600},  # before: in its data
                {"user_id": "u004", "item_id": "i031", "event_type": "view"},
                {"user_id": "u004", "item_id": "i032", "event_type": "like"},
            ])  # fmt: skip
            got = c.get(RECS.format("u004"), params={"k": 5}).json()
    items, values = rec.history_of("u004")
    labelled = pd.read_csv(data / "interactions.csv").query("user_id == 'u004'")  # file order: the run's order
    assert got["new_events"] == 2 and values == labelled["clicked"].astype(float).tolist()
    expected = rec.recommend_history(items + ["i031", "i032"], values + [0.0, 1.0], k=5)
    assert [x["item_id"] for x in got["items"]] == expected["item_id"].tolist()
    np.testing.assert_allclose([x["score"] for x in got["items"]], expected["score"], atol=1e-5)


def test_cli_recommend_with_an_event_store_grows_histories_as_the_service_does(runs, tmp_path, capsys) -> None:
    from polyrec.cli import main
    from polyrec.serve.events import Event, EventStore

    db = tmp_path / "ev.sqlite"
    store = EventStore(db)
    store.append([Event("u004", "i030", "click", 2e9), Event("u004", "i031", "rating", 2e9 + 1, rating=2.0),
                  Event("stranger", "i021", "like", 2e9)], received=2e9)  # fmt: skip
    store.close()
    rec = polyrec.load(runs["prior"])
    items, values = rec.history_of("u004")
    grown = rec.recommend_history(items + ["i030", "i031"], values + [None, 2.0], k=5)["item_id"].tolist()
    with torch_threads(1):
        assert main(["recommend", "--run", str(runs["prior"]), "--user", "u004", "-k", "5", "--events", str(db)]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert printed[0] == f"read 2 new events of 1 users from {db}"
        assert [re.search(r"\(item (\S+),", line).group(1) for line in printed[1:]] == grown
        with TestClient(create_app(runs["prior"], db, ServeSettings(live_events=True))) as c:
            assert ids(c.get(RECS.format("u004"), params={"k": 5})) == grown
        out = tmp_path / "recs.csv"
        argv = ["recommend", "--run", str(runs["prior"]), "--all-users", "-k", "3", "--events", str(db), "--out", str(out), "--quiet"]
        assert main(argv) == 0
    table = pd.read_csv(out)
    assert table["user_id"].drop_duplicates().tolist() == rec.users_["user_id"].astype(str).tolist()  # the run's order
    assert table["rank"].tolist()[:6] == [1, 2, 3, 1, 2, 3]
    assert table[table["user_id"] == "u004"]["item_id"].tolist() == grown[:3]
    assert table[table["user_id"] == "u007"]["item_id"].tolist() == rec.recommend("u007", k=3)["item_id"].tolist()
    with torch_threads(1):
        assert main(["recommend", "--run", str(runs["prior"]), "--user", "stranger", "-k", "2", "--events", str(db)]) == 0
    assert "read 1 new events of 1 users" in capsys.readouterr().out


def test_cli_predict_profile_and_explain_with_an_event_store_read_grown_histories(runs, tmp_path, capsys) -> None:
    """``--events`` on predict, profile and explain: a user with new events is answered from
    their grown history, as the service with live events answers them; the others as the run
    knows them; with --histories it is an error."""
    from polyrec.cli import main
    from polyrec.serve.events import Event, EventStore

    db = tmp_path / "ev.sqlite"
    store = EventStore(db)
    store.append([Event("u004", "i030", "rating", 2e9, rating=1.0), Event("u004", "i031", "click", 2e9 + 1),
                  Event("stranger", "i021", "rating", 2e9, rating=5.0)], received=2e9)  # fmt: skip
    store.close()
    rec = polyrec.load(runs["prior"])
    items, values = rec.history_of("u004")
    grown, grown_values = items + ["i030", "i031"], values + [1.0, None]
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"user_id": ["u007", "u004", "stranger", "u004"], "item_id": ["i010", "i010", "i011", "i012"]}).to_csv(pairs, index=False)
    with torch_threads(1):
        assert main(["predict", "--run", str(runs["prior"]), "--pairs", str(pairs), "--out", str(tmp_path / "p.csv"), "--events", str(db)]) == 0
        assert "read 3 new events of 2 users" in capsys.readouterr().out
        got = pd.read_csv(tmp_path / "p.csv")
        assert got["user_id"].tolist() == ["u007", "u004", "stranger", "u004"]
        expected = rec.predict_history(grown, ["i010", "i012"], grown_values)
        np.testing.assert_allclose(got.loc[[1, 3], "rating"], expected["rating"], atol=1e-5)
        np.testing.assert_allclose(got.loc[2, "ctr"], rec.predict_history(["i021"], ["i011"], [5.0])["ctr"][0], atol=1e-5)
        np.testing.assert_allclose(got.loc[0, "ctr"], rec.predict(["u007"], ["i010"])["ctr"][0], atol=1e-5)
        with TestClient(create_app(runs["prior"], db, ServeSettings(live_events=True))) as c:
            served = c.post("/predict", json={"pairs": [{"user_id": "u004", "item_id": "i012"}]}).json()["predictions"][0]
            assert served["ctr"] == pytest.approx(got.loc[3, "ctr"], abs=1e-5)

        out = tmp_path / "profiles.csv"
        assert main(["profile", "--run", str(runs["prior"]), "--all-users", "--out", str(out), "--events", str(db), "--quiet"]) == 0
        table = pd.read_csv(out, dtype={"user_id": str})
        assert table["user_id"].drop_duplicates().tolist() == rec.users_["user_id"].astype(str).tolist()  # the run's order
        for user, probabilities in (("u004", rec.profile_history(grown, grown_values)), ("u007", rec.profile("u007"))):
            mine = table[(table["user_id"] == user) & (table["attribute"] == "gender")].set_index("value")["probability"]
            np.testing.assert_allclose([mine[v] for v in probabilities["gender"]], list(probabilities["gender"].values()), atol=1e-5)
        capsys.readouterr()
        assert main(["profile", "--run", str(runs["prior"]), "--user", "stranger", "--events", str(db)]) == 0
        printed = capsys.readouterr().out
        top_gender = max((p := rec.profile_history(["i021"], [5.0])["gender"]), key=p.get)
        assert f"gender: {top_gender} {p[top_gender]:.2f}" in printed and "read 1 new events of 1 users" in printed

        assert main(["explain", "--run", str(runs["prior"]), "--user", "u004", "--item", "i012", "--events", str(db)]) == 0
        assert f"item i012 for user u004: score {rec.explain_history(grown, 'i012', grown_values).score:.3f}" in capsys.readouterr().out
        assert main(["profile", "--run", str(runs["prior"]), "--histories", str(pairs), "--out", str(out), "--events", str(db)]) == 2
        assert "--histories gives users their own" in capsys.readouterr().err

