"""`polyrec export`: a run's next-item recommender as ONNX and numpy files, read back without
torch, scoring as the run does (float32) or close to it (int8)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from synthetic import tiny_config, torch_threads, write_dataset
from test_user_text import stand_in_encode, with_user_text

import polyrec
import polyrec.export.writer
import polyrec.pipeline
import polyrec.text
from polyrec.cli import main
from polyrec.data.errors import DataError
from polyrec.export.format import GRAPH, ITEM_VECTORS, MANIFEST
from polyrec.export.reader import ExportedRecommender
from polyrec.export.writer import check_export, export_run
from polyrec.models.io import load_model, save_model
from polyrec.pipeline import run
from polyrec.recommender import Recommender
from polyrec.serve.app import create_app
from polyrec.train.item_prior_fit import ease_neighbours, taken_matrix
from polyrec.train.rating_tokens import NO_RATING_TOKEN, RatingTokens

MAX_HISTORY = 6  # shorter than most synthetic histories: the export must cut them as the model does


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A protocol-B run of the synthetic data, and a copy of it with two priors joined (an
    EASE map and a second map standing in for the transitions), reading the last 6 items."""
    root = tmp_path_factory.mktemp("export")
    data = write_dataset(root / "data")
    with torch_threads(1):
        cfg = tiny_config(data, epochs=3)
        cfg.protocols, cfg.model.max_history = ["B"], MAX_HISTORY
        cfg.model.item_prior = False  # the priors are joined by hand below, to the copy
        run(cfg, root / "plain", progress=False, log=lambda _: None, baselines=False)
    shutil.copytree(root / "plain", root / "prior")
    model = load_model(root / "prior" / "model" / "B")
    history = polyrec.load(root / "plain")._histories["B"]
    sources, weights = ease_neighbours(taken_matrix(history, model.spec.n_items), 10.0, 5, 100)
    model.attach_item_prior(sources, weights, share=0.3, decay=0.9)
    model.attach_item_prior(sources[::-1].copy(), weights, share=0.2, decay=0.7, part="transition_prior")
    save_model(model, root / "prior" / "model" / "B")
    return {"plain": root / "plain", "prior": root / "prior", "root": root}


@pytest.fixture(scope="module")
def exported(runs) -> Path:
    with torch_threads(1):
        export_run(runs["prior"], runs["root"] / "exported")
    return runs["root"] / "exported"


def test_the_export_scores_every_user_as_the_run_with_two_priors_and_cut_histories(runs, exported) -> None:
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        assert max(len(h) for h in rec.next_item_model()[1].items) > MAX_HISTORY  # some histories are cut
        back = polyrec.load(exported)
        assert isinstance(back, ExportedRecommender) and len(back.model.priors) == 2
        users = np.arange(len(rec.users_))
        np.testing.assert_allclose(back.catalogue_scores(users), rec.catalogue_scores(users), atol=1e-4)
        ours, theirs = back.recommend_many(k=5), rec.recommend_many(k=5)
        assert ours[["user_id", "rank", "item_id"]].equals(theirs[["user_id", "rank", "item_id"]])
        np.testing.assert_allclose(back.user_vectors(), rec.user_vectors(), atol=1e-5)
        np.testing.assert_array_equal(back.item_vectors(), rec.item_vectors())
        # An ad-hoc history with ratings, a repeat and an unrated item: the rating tokens and
        # the priors' latest-position rule as the run applies them.
        items, ratings = ["i003", "i007", "i003", "i011", "i002"], [5.0, 2.0, 4.0, None, 1.0]
        ad_hoc = back.recommend_history(items, ratings, k=back.n_items, exclude_seen=False)
        expected = rec.recommend_history(items, ratings, k=rec.n_items, exclude_seen=False)
        assert ad_hoc["item_id"].tolist()[:10] == expected["item_id"].tolist()[:10]
        np.testing.assert_allclose(ad_hoc["score"].to_numpy(), expected["score"].to_numpy(), atol=1e-4)
        # Re-ranked by the popularity penalty, as the run re-ranks it.
        ad_hoc = back.recommend_history(items, ratings, k=5, popularity_penalty=0.7)
        expected = rec.recommend_history(items, ratings, k=5, popularity_penalty=0.7)
        assert ad_hoc["item_id"].tolist() == expected["item_id"].tolist()
        np.testing.assert_allclose(ad_hoc["score"].to_numpy(), expected["score"].to_numpy(), atol=1e-4)
    manifest = json.loads((exported / MANIFEST).read_text())
    assert manifest["check"]["max_abs_difference"] < 1e-3 and manifest["check"]["top10_agreement"] == 1.0
    assert manifest["max_history"] == MAX_HISTORY and [p["name"] for p in manifest["priors"]] == ["item_prior", "transition_prior"]


def test_a_run_without_priors_exports_its_plain_inner_products(runs, tmp_path) -> None:
    with torch_threads(1):
        export_run(runs["plain"], tmp_path / "e")
        rec, back = polyrec.load(runs["plain"]), polyrec.load(tmp_path / "e")
        assert back.vectors_rank_as_recommend and not back.model.priors
        users = np.arange(len(rec.users_))
        np.testing.assert_allclose(back.catalogue_scores(users), back.user_vectors() @ back.item_vectors().T, atol=1e-6)
        np.testing.assert_allclose(back.catalogue_scores(users), rec.catalogue_scores(users), atol=1e-4)


def test_reading_an_export_never_imports_torch(exported) -> None:
    code = (
        "import sys, polyrec\n"
        f"rec = polyrec.load({str(exported)!r})\n"
        "top = rec.recommend('u001', k=3)\n"
        "assert len(top) == 3, top\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_int8_export_is_quantized_and_ranks_close_to_the_run(runs, tmp_path) -> None:
    with torch_threads(1):
        manifest = export_run(runs["prior"], tmp_path / "e8", int8=True)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "e8" / GRAPH)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # int8 products, not float ones
    assert manifest["int8"] is True
    check = manifest["check"]
    assert 0 < check["max_abs_difference"] < 0.5  # it differs from the run, a little
    assert check["top10_agreement"] >= 0.8


def test_the_check_reports_an_export_that_scores_differently(runs, exported, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    vectors = np.load(broken / ITEM_VECTORS)
    vectors[:, -1] += np.linspace(0, 3, len(vectors), dtype=np.float32)  # a different item bias
    np.save(broken / ITEM_VECTORS, vectors)
    with torch_threads(1):
        check = check_export(Recommender.load(runs["prior"]), ExportedRecommender.load(broken), users=50)
    assert check.users == 50 and check.max_abs_difference > 0.1 and check.top10_agreement < 1.0


def test_a_model_of_users_described_by_text_exports_the_users_texts(tmp_path, monkeypatch) -> None:
    folder = with_user_text(write_dataset(tmp_path / "synthetic", n_users=30, per_user=8), described=20)
    with torch_threads(1), pytest.MonkeyPatch.context() as patch:
        patch.setattr(polyrec.pipeline, "encode_texts", stand_in_encode)
        cfg = tiny_config(folder, epochs=1)
        cfg.text.enabled, cfg.protocols = True, ["B"]
        run(cfg, tmp_path / "run", progress=False, log=lambda _: None, baselines=False)
    monkeypatch.setattr(polyrec.text, "encode_texts", stand_in_encode)
    with torch_threads(1):
        export_run(tmp_path / "run", tmp_path / "e")
        rec, back = Recommender.load(tmp_path / "run"), polyrec.load(tmp_path / "e")
        assert rec.next_item_model()[0].user_text_projection is not None
        assert "users" in back.model.inputs
        users = np.arange(len(rec.users_))
        np.testing.assert_allclose(back.catalogue_scores(users), rec.catalogue_scores(users), atol=1e-4)
        # The same history read as another user's: the text, not the history, moves the vector.
        vectors = back.model.query_vectors([back.histories.items[0]] * 2, [back.histories.tokens[0]] * 2, np.array([0, 1]))
        assert not np.allclose(vectors[0], vectors[1])
    # A history grown by events could not read the user's text: no live events on this export.
    assert not back.reads_live_events and polyrec.load(tmp_path / "e").model.manifest["reads_user_text"]
    del back.model.manifest["reads_user_text"]  # an export from before the manifest said so
    assert not back.reads_live_events


def test_cli_export_prints_its_check_and_the_export_answers_recommend(runs, tmp_path, capsys) -> None:
    with torch_threads(1):
        assert main(["export", "--run", str(runs["prior"]), "--out", str(tmp_path / "e"), "--check-users", "20"]) == 0
    out = capsys.readouterr().out
    assert "checked on 20 users" in out and "top-10 agreement 100.0%" in out
    assert main(["recommend", "--run", str(tmp_path / "e"), "--user", "u002", "-k", "2"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if line.strip()]) == 2


@pytest.mark.parametrize(
    "case, message",
    [
        ("not empty", "exists and is not an export folder"),
        ("baseline", "only runs of polyrec's own model export"),
        ("predict", "predicts neither ratings nor engagement"),
        ("unknown item", "unknown item 'nope'"),
    ],
)
def test_export_errors_are_one_line(case, message, runs, exported, tmp_path, capsys) -> None:
    if case == "not empty":
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("mine")
        argv = ["export", "--run", str(runs["prior"]), "--out", str(tmp_path / "busy")]
    elif case == "baseline":
        cfg = tiny_config(runs["root"] / "data", epochs=1)
        cfg.model.name, cfg.protocols = "popularity", ["B"]
        run(cfg, tmp_path / "pop", progress=False, log=lambda _: None, baselines=False)
        argv = ["export", "--run", str(tmp_path / "pop"), "--out", str(tmp_path / "e")]
    elif case == "predict":
        (tmp_path / "pairs.csv").write_text("user_id,item_id\nu001,i002\n")
        argv = ["predict", "--run", str(exported), "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "p.csv")]
    else:
        with pytest.raises(KeyError, match=message):
            polyrec.load(exported).recommend_history(["i001", "nope"])
        return
    with torch_threads(1):
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_export_of_another_format_version_is_refused_in_one_line(exported, tmp_path) -> None:
    other = tmp_path / "other"
    shutil.copytree(exported, other)
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(DataError, match="version 99; this polyrec reads"):
        polyrec.load(other)


def test_an_ad_hoc_historys_values_become_the_tokens_the_data_gave() -> None:
    """Ratings to their nearest level's token; in a run on labels without ratings, the 0/1
    labels themselves (not labels re-derived from a rating threshold)."""
    rated = RatingTokens((1.0, 2.0, 3.0, 4.0, 5.0))
    assert rated.encode_values(np.array([5.0, 1.0, np.nan, 3.4])).tolist() == [6, 2, NO_RATING_TOKEN, 4]
    clicks = RatingTokens((), labels_only=True)
    assert clicks.encode_values(np.array([1.0, 0.0, np.nan])).tolist() == [3, 2, NO_RATING_TOKEN]
    with pytest.raises(ValueError, match="values must be 0, 1 or missing"):
        clicks.encode_values(np.array([1.0, 4.0]))
    assert RatingTokens(()).encode_values(np.array([4.0, np.nan])).tolist() == [NO_RATING_TOKEN] * 2  # implicit data


def test_the_service_serves_an_export_as_it_serves_the_run(runs, exported, tmp_path) -> None:
    """`polyrec serve --run EXPORT`: the priors' blend kept at load, known users and ad-hoc
    histories answered as the run answers them, and a one-line 501 for what is not exported."""
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        with TestClient(create_app(exported, tmp_path / "events.sqlite")) as client:
            assert client.get("/healthz").json()["index"]["kind"] == "blend"
            for user in ("u001", "u017"):
                served = client.get(f"/users/{user}/recommendations", params={"k": 5}).json()["items"]
                expected = rec.recommend(user, k=5)
                assert [i["item_id"] for i in served] == expected["item_id"].tolist()
                np.testing.assert_allclose([i["score"] for i in served], expected["score"], atol=1e-4)
            history = [{"item_id": "i003", "rating": 5.0}, {"item_id": "i007"}, {"item_id": "i011", "rating": 2.0}]
            served = client.post("/recommend", json={"history": history, "k": 4}).json()["items"]
            expected = rec.recommend_history(["i003", "i007", "i011"], [5.0, None, 2.0], k=4)
            assert [i["item_id"] for i in served] == expected["item_id"].tolist()
            new_item = client.post("/recommend", json={"history": [{"item_id": "brand-new", "text": "a lamp"}], "k": 2})
            assert new_item.status_code == 422 and "no text encoder" in new_item.json()["detail"]
            refused = client.post("/predict", json={"pairs": [{"user_id": "u001", "item_id": "i002"}]})
            assert refused.status_code == 501 and "predicts neither" in refused.json()["detail"]


def test_an_export_that_fails_its_check_is_an_error_and_does_not_load(runs, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(polyrec.export.writer, "TOLERANCE", -1.0)  # any difference, even 0, is too much
    with torch_threads(1):
        assert main(["export", "--run", str(runs["prior"]), "--out", str(tmp_path / "e"), "--check-users", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "away from the run (tolerance -1.0)" in err and len(err.splitlines()) == 1
    assert (tmp_path / "e" / GRAPH).is_file() and not (tmp_path / "e" / MANIFEST).exists()
    with pytest.raises(FileNotFoundError):  # no manifest: not an export, nor a run folder
        polyrec.load(tmp_path / "e")


def test_an_export_served_with_live_events_grows_histories_as_the_run_does(runs, exported, tmp_path) -> None:
    """An export gives back a known user's history from its tokens, so the service reads
    live events on it as on the run."""
    from polyrec.serve.app import ServeSettings

    export = polyrec.load(exported)
    assert export.reads_live_events and export.history_of("u004") == polyrec.load(runs["prior"]).history_of("u004")
    del export.model.manifest["reads_user_text"]  # from before the manifest said so: no user had text
    assert export.reads_live_events
    with torch_threads(1):
        rec = polyrec.load(runs["prior"])
        with TestClient(create_app(exported, tmp_path / "events.sqlite", ServeSettings(live_events=True))) as client:
            client.post("/events", json=[{"user_id": "u004", "item_id": i, "event_type": "click"} for i in ("i030", "i031")])
            served = client.get("/users/u004/recommendations", params={"k": 5}).json()
            history = client.get("/users/u004/history", params={"limit": 1000}).json()
    items, values = rec.history_of("u004")
    assert [(x["item_id"], x["value"], x["new"]) for x in history["items"]] == [
        *((i, v, False) for i, v in zip(items, values)), ("i030", None, True), ("i031", None, True)
    ]
    expected = rec.recommend_history(items + ["i030", "i031"], values + [None, None], k=5)
    assert served["new_events"] == 2 and [i["item_id"] for i in served["items"]] == expected["item_id"].tolist()
    np.testing.assert_allclose([i["score"] for i in served["items"]], expected["score"], atol=1e-4)
