"""A user the model was not trained with, given by a history: predictions and profiles, in
Python and through ``polyrec profile`` (which profiles known users too).

Two tiny runs: the default's shape (autoencoders, kNN and profile views, which are fitted per
trained user) and one without any part fitted per user, whose whole prediction reads the
history, so that a known user's history given ad hoc must give exactly that user's answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import polyrec
from polyrec.cli import main
from polyrec.eval.predict import predict_pairs, profile_probabilities
from polyrec.pipeline import run
from synthetic import interactions_frame, tiny_config, torch_threads, write_dataset
from test_cli import one_error_line

TARGETS = ["i001", "i005", "i012", "i030"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cold-users")
    data = write_dataset(root / "data")
    with torch_threads(1):
        cfg = tiny_config(data, epochs=3)
        cfg.model.user_engagement_autoencoder = 8  # a view with nothing to fold in
        run(cfg, root / "per-user", progress=False, log=lambda _: None)
        cfg = tiny_config(data, epochs=3)
        m = cfg.model
        m.item_autoencoder = m.user_autoencoder = m.engagement_autoencoder = 0
        m.item_neighbors = m.text_neighbors = 0
        m.history_profile = False
        run(cfg, root / "history-only", progress=False, log=lambda _: None)
    return {"per-user": root / "per-user", "history-only": root / "history-only"}


def history_of(user: str) -> tuple[list[str], list[float]]:
    mine = interactions_frame()  # chronological file order = the run's timestamp order
    mine = mine[mine["user_id"] == user]
    return mine["item_id"].tolist(), mine["rating"].tolist()


@pytest.mark.parametrize("user", ["u003", "u010"])
def test_without_parts_per_user_a_known_history_given_ad_hoc_answers_as_that_user(runs, user) -> None:
    rec = polyrec.load(runs["history-only"])
    items, ratings = history_of(user)
    with torch_threads(1):
        cold = rec.predict_history(items, TARGETS, ratings)
        known = rec.predict([user] * len(TARGETS), TARGETS)
        np.testing.assert_allclose(cold["rating"], known["rating"], atol=1e-5)
        np.testing.assert_allclose(cold["ctr"], known["ctr"], atol=1e-5)
        cold_profile, known_profile = rec.profile_history(items, ratings), rec.profile(user)
    assert list(cold["item_id"]) == TARGETS
    for name, probabilities in known_profile.items():
        np.testing.assert_allclose(list(cold_profile[name].values()), list(probabilities.values()), atol=1e-5)


def test_with_parts_per_user_a_history_is_read_as_a_new_users(runs) -> None:
    """The parts fitted per trained user give a history given ad hoc only what they give any
    new user: the batched path reading the same history as an unknown user, not the user's."""
    rec = polyrec.load(runs["per-user"])
    p, model = rec._model("rating", ("A", "B"))
    assert model.item_autoencoder is not None and float(model.item_autoencoder.rating_share) > 0
    user = "u003"
    items, ratings = history_of(user)
    users = np.full(len(TARGETS), rec.user_index(user))
    wanted = np.array([rec.item_index(t) for t in TARGETS])
    with torch_threads(1):
        cold = rec.predict_history(items, TARGETS, ratings)
        as_new = predict_pairs(model, rec._histories[p], users, wanted, as_unknown=True)
        known = rec.predict([user] * len(TARGETS), TARGETS)
    np.testing.assert_allclose(cold["rating"], np.clip(as_new["rating"], *rec.rating_range), atol=1e-5)
    np.testing.assert_allclose(cold["ctr"], as_new["ctr"], atol=1e-5)
    assert np.abs(cold["rating"].to_numpy() - known["rating"].to_numpy()).max() > 1e-3  # the user's rows were not read


def test_predictions_for_a_history_stay_on_the_data_s_rating_scale(runs) -> None:
    rec = polyrec.load(runs["history-only"])
    items, ratings = history_of("u003")
    free = rec.predict_history(items, TARGETS, ratings)["rating"]
    rec.rating_range = (float(free.min()) + 0.01, float(free.max()) - 0.01)  # a scale narrower than the predictions
    clipped = rec.predict_history(items, TARGETS, ratings)["rating"]
    assert clipped.min() == rec.rating_range[0] and clipped.max() == rec.rating_range[1]


def test_a_new_user_never_reads_a_trained_users_profile_logits(runs) -> None:
    rec = polyrec.load(runs["per-user"])
    p, model = rec._model("profile", ("A", "B"))
    assert model.history_profile is not None
    user = "u007"
    u = rec.user_index(user)
    # A view's tabled logits of the user made large: they move the known user and not the
    # same history given ad hoc, which reads the view's regression (HistoryProfile.folded).
    for name in model.history_profile.names:
        table = model.history_profile.table(name)
        table[u] = torch.linspace(-5, 5, table.shape[1])
    items, ratings = history_of(user)
    with torch_threads(1):
        cold = rec.profile_history(items, ratings)
        known = profile_probabilities(model, rec._histories[p], np.array([u]))
        as_new = profile_probabilities(model, rec._histories[p], np.array([u]), as_unknown=True)
    for name, probabilities in cold.items():
        np.testing.assert_allclose(list(probabilities.values()), as_new[name][0], atol=1e-5)
        assert np.abs(as_new[name][0] - known[name][0]).max() > 1e-3


def test_interests_of_a_history_count_its_liked_items(runs) -> None:
    rec = polyrec.load(runs["history-only"])
    items, ratings = history_of("u003")
    assert rec.interests_history(items, ratings) == rec.interests("u003")
    # Liked: a rating at the data's threshold (4 on its 1–5 scale) and above.
    assert rec.interests_history(["i001", "i030"], [4.0, 3.5]) == [("action", 1.0), ("thriller", 1.0)]
    # Nothing liked: every item of the history counts, as for a known user.
    assert rec.interests_history(["i001", "i030"], [3.5, 1.0]) == rec.interests_history(["i001", "i030"])
    assert dict(rec.interests_history(["i001", "i030"])) == {"action": 0.5, "thriller": 0.5, "romance": 0.5, "drama": 0.5}


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda rec: rec.predict_history(["i001"], []), ValueError, "at least one target"),
        (lambda rec: rec.predict_history(["i001"], ["ghost"]), KeyError, "unknown item 'ghost'"),
        (lambda rec: rec.predict_history([], ["i001"]), ValueError, "at least one item"),
        (lambda rec: rec.predict_history(["i001", "i002"], ["i003"], [4.0]), ValueError, "2 items but 1 ratings"),
        (lambda rec: rec.predict_history(["new"], ["i003"]), KeyError, "no text was given"),
        (lambda rec: rec.profile_history(["i001", "new"]), KeyError, "unknown item 'new'"),
    ],
)
def test_bad_histories_get_one_line_errors(runs, call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call(polyrec.load(runs["history-only"]))


def test_a_new_user_reads_folded_rows_and_no_view_without_one(runs) -> None:
    """The user-side engagement autoencoder has no row for a new user and adds nothing; the
    item-side one, the kNN view and the item autoencoder read what is folded in from every
    rated item of the history, beyond the window the encoder reads."""
    rec = polyrec.load(runs["per-user"])
    _, model = rec._model("ctr", ("A", "B"))
    views = model.ctr_views()
    assert set(views) == {"engagement", "user_engagement", "item_neighbors"} and bool(model.engagement_autoencoder.offset_kept)
    items = [f"i{i:03d}" for i in range(30)]  # longer than the encoder's window of 20
    ratings = [float(1 + (i * 7) % 5) for i in range(30)]

    def both() -> tuple[np.ndarray, np.ndarray]:
        return rec.predict_history(items, TARGETS, ratings)["ctr"].to_numpy(), rec.predict(["u003"] * len(TARGETS), TARGETS)["ctr"].to_numpy()

    with torch_threads(1):
        cold, known = both()
        with torch.no_grad():
            views["user_engagement"].weight.add_(3.0)
        rowless_cold, rowless_known = both()
        moved = {}
        for name in ("engagement", "item_neighbors"):
            with torch.no_grad():
                views[name].weight.add_(3.0)
            moved[name], _ = both()
        window = rec.predict_history(items[-20:], TARGETS, ratings[-20:])
        np.testing.assert_allclose(rec.history_vector(items[-20:], ratings[-20:]), rec.history_vector(items, ratings), atol=1e-6)
        whole = rec.predict_history(items, TARGETS, ratings)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731 (the probabilities here sit near 0 and 1)
    np.testing.assert_allclose(rowless_cold, cold, atol=1e-6)
    assert np.abs(logit(rowless_known) - logit(known)).max() > 1e-2
    assert np.abs(logit(moved["engagement"]) - logit(rowless_cold)).max() > 1e-2
    assert np.abs(logit(moved["item_neighbors"]) - logit(moved["engagement"])).max() > 1e-2
    assert np.abs(window["rating"].to_numpy() - whole["rating"].to_numpy()).max() > 1e-4


def test_a_known_users_grown_history_reads_their_rows_where_no_history_gives_them_back(runs) -> None:
    """``as_user`` (a known user whose history grew by live events): the user-side engagement
    autoencoder and the autoencoder's user-row profile view read that user's own rows, where a
    history alone gets nothing from them; every folded part is the same either way."""
    rec = polyrec.load(runs["per-user"])
    _, model = rec._model("ctr", ("A", "B"))
    ue, rows = model.user_engagement_autoencoder, model.user_row_profile
    items, ratings = history_of("u003")
    items, ratings = items + ["i030"], ratings + [5.0]  # grown by one new rating
    classes = rec.attribute_classes["gender"]
    u = rec.user_index("u003")
    with torch_threads(1), torch.no_grad():
        ue.weight.fill_(1.5)  # joined at a weight of its own, whatever this tiny run's validation chose
        width = model.item_autoencoder.user_rows().shape[1]
        rows.set_attribute("gender", np.linspace(-1, 1, len(classes) * width).reshape(len(classes), width), np.zeros(len(classes)))
        plain = rec.predict_history(items, TARGETS, ratings)
        own = rec.predict_history(items, TARGETS, ratings, as_user="u003")
        value = ue(torch.full((1, len(TARGETS)), u), torch.tensor([[rec.item_index(t) for t in TARGETS]]))[0].numpy()
        extra = rows(torch.tensor([u]), model.item_autoencoder.user_rows())["gender"][0].numpy()
        profile_plain = rec.profile_history(items, ratings)["gender"]
        profile_own = rec.profile_history(items, ratings, as_user="u003")["gender"]
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(own["ctr"].to_numpy()) - logit(plain["ctr"].to_numpy()), 1.5 * value, atol=1e-4)
    np.testing.assert_allclose(own["rating"], plain["rating"], atol=1e-6)  # the folded parts: the same
    assert np.abs(extra).max() > 0.1
    expected = np.array([profile_plain[c] for c in classes]) * np.exp(extra)
    np.testing.assert_allclose([profile_own[c] for c in classes], expected / expected.sum(), atol=1e-5)


def test_a_new_users_profile_reads_the_tf_idf_views_regression(runs) -> None:
    rec = polyrec.load(runs["per-user"])
    _, model = rec._model("profile", ("A", "B"))
    view = model.history_profile
    assert view is not None and view.n_items
    items, ratings = history_of("u005")
    k = view.names.index("gender")
    with torch_threads(1):
        before = rec.profile_history(items, ratings)["gender"]
        with torch.no_grad():
            getattr(view, f"weight_{k}")[1, [rec.item_index(i) for i in items]] += 20.0  # the second class, for these items
        after = rec.profile_history(items, ratings)["gender"]
    second = rec.attribute_classes["gender"][1]
    assert after[second] > 0.99 > before[second]


def test_the_batched_path_reads_a_long_history_as_the_library_does(runs) -> None:
    """``predict_pairs(..., as_unknown=True)`` (what benchmarks/cold_users.py scores) folds the
    parts in from the whole history, as ``predict_history`` does, beyond the encoder's window."""
    from polyrec.train.rating_tokens import RatingTokens
    from polyrec.train.sequences import Histories

    rec = polyrec.load(runs["per-user"])
    p, model = rec._model("rating", ("A", "B"))
    assert model.spec.config.max_history < 30
    ids = [f"i{i:03d}" for i in range(30)]
    ratings = np.array([float(1 + (i * 3) % 5) for i in range(30)])
    labels = (ratings >= 4).astype(np.float64)
    tokens = RatingTokens(tuple(model.spec.rating_levels), model.spec.labels_only).encode(ratings, labels)
    history = Histories([np.array([rec.item_index(i) for i in ids])], [ratings], [labels], [tokens])
    wanted = np.array([rec.item_index(t) for t in TARGETS])
    with torch_threads(1):
        batched = predict_pairs(model, history, np.zeros(len(TARGETS), dtype=np.int64), wanted, as_unknown=True)
        library = rec.predict_history(ids, TARGETS, ratings.tolist())
    np.testing.assert_allclose(np.clip(batched["rating"], *rec.rating_range), library["rating"], atol=1e-5)
    np.testing.assert_allclose(batched["ctr"], library["ctr"], atol=1e-5)


def test_profile_command_writes_every_class_of_every_attribute_as_the_library_gives_it(runs, tmp_path, capsys) -> None:
    rec = polyrec.load(runs["history-only"])
    run = str(runs["history-only"])
    ids = tmp_path / "ids.txt"
    ids.write_text("u010\n\nu003 \n")  # a blank line is skipped, spaces around an id too
    assert main(["profile", "--run", run, "--users", str(ids), "--quiet", "--out", str(tmp_path / "known.csv")]) == 0
    known = pd.read_csv(tmp_path / "known.csv", dtype={"user_id": str, "value": str})
    widths = {name: len(classes) for name, classes in rec.attribute_classes.items()}
    assert f"wrote {2 * sum(widths.values())} probabilities for 2 users" in capsys.readouterr().out
    assert list(known.columns) == ["user_id", "attribute", "rank", "value", "probability"]
    assert known["user_id"].tolist() == ["u010"] * sum(widths.values()) + ["u003"] * sum(widths.values())
    for (user, name), rows in known.groupby(["user_id", "attribute"], sort=False):
        assert rows["rank"].tolist() == list(range(1, widths[name] + 1))
        assert rows["probability"].is_monotonic_decreasing
        expected = rec.profile(user)[name]
        np.testing.assert_allclose(rows["probability"], [expected[v] for v in rows["value"]], atol=1e-6)
        assert sorted(rows["value"]) == sorted(expected)

    # Histories from a file: in the run whose answers all read the history, each known
    # user's history under a new name gives that user's rows.
    histories = tmp_path / "histories.csv"
    frame = pd.concat([interactions_frame().query("user_id == @u").assign(user_id=f"new-{u}") for u in ("u010", "u003")])
    frame[["user_id", "item_id", "rating"]].to_csv(histories, index=False)
    assert main(["profile", "--run", run, "--histories", str(histories), "--quiet", "--out", str(tmp_path / "new.parquet")]) == 0
    new = pd.read_parquet(tmp_path / "new.parquet")
    assert new["user_id"].drop_duplicates().tolist() == ["new-u010", "new-u003"]
    assert new[["attribute", "rank", "value"]].values.tolist() == known[["attribute", "rank", "value"]].values.tolist()
    np.testing.assert_allclose(new["probability"], known["probability"], atol=1e-5)

    assert main(["profile", "--run", run, "--all-users", "--quiet", "--out", str(tmp_path / "all.csv")]) == 0
    assert pd.read_csv(tmp_path / "all.csv")["user_id"].nunique() == 60


def test_profile_command_prints_a_users_likeliest_classes_and_interests(runs, capsys) -> None:
    rec = polyrec.load(runs["per-user"])
    assert main(["profile", "--run", str(runs["per-user"]), "--user", "u003", "--top", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    profile = rec.profile("u003")
    assert lines[: len(profile)] == [
        f"{name}: {max(p, key=p.get)} {max(p.values()):.2f}" + (", …" if len(p) > 1 else "") for name, p in profile.items()
    ]
    assert lines[len(profile)] == "interests: " + ", ".join(f"{n} {s:.2f}" for n, s in rec.interests("u003"))


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--user", "nobody"], "unknown user 'nobody'"),
        (["--user", "u001", "--out", "p.csv"], "--out writes the profiles of --users, --all-users or --histories; --user prints them"),
        (["--all-users", "--out", "p.json"], "--out must name a .csv or .parquet file for the profiles"),
        (["--users", "{ids}", "--out", "p.csv"], "{ids}, line 2: unknown user 'nobody' (not in the run's data)"),
        (["--histories", "{histories}", "--out", "p.csv"], "{histories}, row 3, column 'item_id': unknown item 'ghost' (not in the run's catalogue)"),
    ],
)
def test_profile_command_errors_are_one_line(runs, tmp_path, capsys, arguments: list[str], message: str) -> None:
    files = {"ids": tmp_path / "ids.txt", "histories": tmp_path / "h.csv"}
    files["ids"].write_text("u001\nnobody\n")
    files["histories"].write_text("user_id,item_id\nnew,i001\nnew,ghost\n")
    argv = [a.format(**files) if a.startswith("{") else str(tmp_path / a) if a.startswith("p.") else a for a in arguments]
    assert main(["profile", "--run", str(runs["history-only"]), *argv]) == 2
    assert message.format(**files) in one_error_line(capsys.readouterr().err)


def test_explain_command_reads_a_new_users_history_from_a_file(runs, tmp_path, capsys) -> None:
    from polyrec.cli_answers import shortened

    rec, run = polyrec.load(runs["per-user"]), str(runs["per-user"])
    histories = tmp_path / "h.csv"
    histories.write_text("user_id,item_id,rating\nnew,i001,5\nother,i002,4\nnew,i003,2\n")
    argv = ["explain", "--run", run, "--histories", str(histories), "--item", "i005", "--occlusion"]
    assert main([*argv, "--user", "new"]) == 0
    with torch_threads(1):
        expected = rec.explain_history(["i001", "i003"], "i005", [5.0, 2.0], occlusion=True).summary(shortened)
    assert capsys.readouterr().out.strip() == expected
    assert main([*argv, "--user", "nobody"]) == 2
    assert f"{histories}: no history of user 'nobody'" in one_error_line(capsys.readouterr().err)


def test_recommend_command_ranks_new_users_from_their_histories(runs, tmp_path, capsys) -> None:
    """In the run whose answers all read the history, a known user's history under a new name
    gets that user's top k, re-ranked by the popularity penalty as theirs is."""
    rec, run = polyrec.load(runs["history-only"]), str(runs["history-only"])
    histories = tmp_path / "histories.csv"
    frame = pd.concat([interactions_frame().query("user_id == @u").assign(user_id=f"new-{u}") for u in ("u010", "u003")])
    frame[["user_id", "item_id", "rating"]].to_csv(histories, index=False)
    argv = ["recommend", "--run", run, "--histories", str(histories), "-k", "4", "--popularity-penalty", "0.5", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "r.csv")]) == 0
    assert "wrote 8 recommendations for 2 users" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "r.csv", dtype={"user_id": str, "item_id": str})
    assert written["user_id"].tolist() == ["new-u010"] * 4 + ["new-u003"] * 4 and written["rank"].tolist() == [1, 2, 3, 4] * 2
    with torch_threads(1):
        for user in ("u010", "u003"):
            rows, alone = written[written["user_id"] == f"new-{user}"], rec.recommend(user, k=4, popularity_penalty=0.5)
            assert rows["item_id"].tolist() == alone["item_id"].tolist()
            np.testing.assert_allclose(rows["score"], alone["score"], atol=1e-4)
