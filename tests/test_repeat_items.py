"""`data.repeat_items`: where users take items again, the history stays a next-item candidate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from synthetic import TINY_YAML, write_dataset

import polyrec
from polyrec.cli import main
from polyrec.data.generic import load_generic
from polyrec.eval.ranking import NOT_A_CANDIDATE
from polyrec.tasks import next_item
from polyrec.train.finetune import build_model
from polyrec.train.losses import task_losses
from polyrec.train.protocol_data import prepare
from polyrec.train.sequences import collate


def repeat_buyers(folder):
    """The synthetic shop, each user then buying their first two items again, last."""
    write_dataset(folder)
    inter = pd.read_csv(folder / "interactions.csv").sort_values(["user_id", "ts"], kind="stable")
    again = inter.groupby("user_id").head(2).assign(ts=lambda d: d.ts + 10_000)
    pd.concat([inter, again]).to_csv(folder / "interactions.csv", index=False)
    return folder


def test_the_ranking_excludes_the_history_unless_users_take_items_again(tmp_path) -> None:
    ds = load_generic(repeat_buyers(tmp_path / "shop"))
    plain, again = (prepare(ds, "B", 0, None, 10, False, repeat_items=r).test for r in (False, True))
    users = plain.next_users
    assert [list(e) for e in plain.excluded(users)] == [list(plain.history.items[u]) for u in users]
    assert again.excluded(users) is None
    # Every test item is a repeat: a miss under PROTOCOLS.md's ranking, ranked where it may be taken again.
    from polyrec.eval.ranking import target_ranks

    scores = np.random.default_rng(0).random((len(users), ds.n_items))
    assert (target_ranks(scores, plain.next_items, plain.excluded(users)) == NOT_A_CANDIDATE).all()
    assert (target_ranks(scores, again.next_items, again.excluded(users)) <= ds.n_items).all()


def test_next_item_trains_over_the_history_where_users_take_items_again(tmp_path, monkeypatch) -> None:
    ds = load_generic(repeat_buyers(tmp_path / "shop"))
    data = prepare(ds, "B", 0, None, 10, False, repeat_items=True)
    batch = collate(data.train, np.arange(8), 20)
    read: list[object] = []
    original = next_item.logits
    monkeypatch.setattr(next_item, "logits", lambda *a, **k: read.append(k["history"]) or original(*a, **k))
    from synthetic import tiny_config

    for repeat_items in (False, True):
        model = build_model(data, ["next_item"], ds.n_items, None, tiny_config().model, repeat_items=repeat_items)
        task_losses(model, batch, {})
    assert read[0] is batch.items and read[1] is None  # masked as the ranking is, then not at all


def test_a_run_where_users_take_items_again_ranks_their_repeats(tmp_path, capsys) -> None:
    data = repeat_buyers(tmp_path / "shop")
    config = tmp_path / "again.yaml"
    config.write_text(TINY_YAML + "data: {repeat_items: true}\nprotocols: [B]\n")
    assert main(["run", "--data", str(data), "--config", str(config), "--epochs", "2", "--quiet", "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "protocol B ranks the whole catalogue, the user's history included (data.repeat_items)" in printed
    assert "60 of 60 test items and 60 of 60 validation items repeat" in printed
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Under PROTOCOLS.md's ranking every one of these targets is a miss (exactly 0): on test,
    # in the priors' choice on validation, and in the validation that stops training.
    assert metrics["B.next_item.hr@20"] > 0 and metrics["item_prior.B.valid_ndcg_alone"] > 0
    assert metrics["baseline.popularity.B.next_item.hr@20"] > 0  # the baseline ranks them alike
    # Beside it, the user's own latest items again: each user's test item is one of their history's.
    assert metrics["baseline.recent.B.next_item.hr@20"] == 1.0
    assert "| metric | polyrec | popularity | recent |" in printed
    curves = json.loads((tmp_path / "run" / "curves.json").read_text())
    assert max(curves["B"]["next_item"]["valid_ndcg@10"]) > 0

    # Recommendations too leave the user's own items in by default, out where asked.
    rec = polyrec.load(tmp_path / "run")
    seen = set(rec.items_["item_id"].to_numpy()[rec.seen_items("u001")])
    assert rec.repeat_items and seen <= set(rec.recommend("u001", k=rec.n_items)["item_id"])
    assert not seen & set(rec.recommend("u001", k=rec.n_items, exclude_seen=True)["item_id"])
    assert main(["recommend", "--run", str(tmp_path / "run"), "--user", "u001", "-k", "40", "--exclude-seen"]) == 0
    shown = {line.split("(item ")[1].split(",")[0] for line in capsys.readouterr().out.strip().splitlines()}
    assert shown and not shown & seen
    # An export keeps the run's setting.
    from polyrec.export.writer import export_run

    export_run(tmp_path / "run", tmp_path / "export", check_users=16)
    exported = polyrec.load(tmp_path / "export")
    assert exported.repeat_items and seen <= set(exported.recommend("u001", k=rec.n_items)["item_id"])
    # And so does the service, for a known user and for an ad-hoc history.
    from fastapi.testclient import TestClient

    from polyrec.serve.app import create_app

    with TestClient(create_app(tmp_path / "run", tmp_path / "events.sqlite")) as client:
        def served(url: str, body: dict | None = None) -> set[str]:
            answer = client.get(url) if body is None else client.post(url, json=body)
            return {item["item_id"] for item in answer.json()["items"]}

        assert seen <= served("/users/u001/recommendations?k=40")
        assert not seen & served("/users/u001/recommendations?k=40&exclude_seen=true")
        history = [{"item_id": i} for i in sorted(seen)[:3]]
        assert set(sorted(seen)[:3]) <= served("/recommend", {"history": history, "k": 40})
        assert not set(sorted(seen)[:3]) & served("/recommend", {"history": history, "k": 40, "exclude_seen": True})


def test_recent_then_popular_ranks_the_history_by_recency_and_count_then_the_rest_by_popularity() -> None:
    from polyrec.baselines.recent import recent_then_popular

    counts = np.array([5, 9, 1, 7, 0])
    scores = recent_then_popular([np.array([2, 0, 2]), np.array([], dtype=np.int64)], counts, decay=0.5)
    # Row 0: item 2 taken twice (0.25 + 1 steps back weights), item 0 once in between (0.5).
    assert np.argsort(-scores[0]).tolist() == [2, 0, 1, 3, 4]
    assert np.argsort(-scores[1]).tolist() == [1, 3, 0, 2, 4]  # no history: popularity
