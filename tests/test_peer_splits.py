"""The peer benchmark's split files are polyrec's splits, and its scoring is polyrec's metric code.

Runs in the main environment only: the peers' own libraries are not needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import write_dataset

from polyrec.data.generic import load_generic
from polyrec.eval.evaluate import side_metrics
from polyrec.eval.prediction_store import save_predictions
from polyrec.train.protocol_data import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "peers"))
import common
import export_splits
import score

SEEDS = [0, 1]
MAX_LEN = 5


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    ds = load_generic(write_dataset(root / "data"))
    return ds, export_splits.export(ds, root / "splits", SEEDS, max_seq_len=MAX_LEN)


def split(ds, protocol, seed):
    return prepare(ds, protocol, seed, 4.0, 10, profile=protocol == "A")


def read_inter(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_protocol_a_files_are_polyrecs_split(exported, seed):
    ds, out = exported
    data = split(ds, "A", seed)
    folder = out / "A" / f"seed{seed}"
    for side in ("valid", "test"):  # the pairs, in the order a prediction follows
        f, p = pd.read_csv(folder / f"{side}.csv"), getattr(data, side).pairs
        for col, want in (("user", p.users), ("item", p.items), ("rating", p.ratings), ("label", p.labels)):
            np.testing.assert_array_equal(f[col].to_numpy(), want)
    train = pd.read_csv(folder / "train.csv")
    inter = ds.interactions.iloc[data.split.train]
    key = lambda u, i, r: sorted(zip(u, i, r))
    assert key(train.user, train.item, train.rating) == key(inter.user, inter.item, inter.rating)
    assert set(train.label) <= {0.0, 1.0} and (train.label == (train.rating >= 4)).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_protocol_b_files_are_polyrecs_split(exported, seed):
    ds, out = exported
    data = split(ds, "B", seed)
    folder = out / "B" / f"seed{seed}"
    rb = folder / "recbole"
    general = read_inter(rb / "pr" / "pr.train.inter").astype(int)
    for u in range(ds.n_users):  # chronological train sequences
        got = general.loc[general["user_id:token"] == u, "item_id:token"].to_numpy()
        np.testing.assert_array_equal(got, data.train.items[u])
    sides = common.protocol_b_sides(folder)
    for name in ("valid", "test"):
        side = getattr(data, name)
        users, items, history = sides[name]
        np.testing.assert_array_equal(users, side.next_users)
        np.testing.assert_array_equal(items, side.next_items)
        for u, h in zip(users, history):
            np.testing.assert_array_equal(h, side.history.items[u])
        seq = read_inter(rb / "pr-seq" / f"pr-seq.{name}.inter")
        np.testing.assert_array_equal(seq["item_id:token"].astype(int), side.next_items)
        lists = [[int(x) for x in s.split()] for s in seq["item_id_list:token_seq"]]
        assert lists == [list(side.history.items[u][-MAX_LEN:]) for u in side.next_users]
    seq = read_inter(rb / "pr-seq" / "pr-seq.train.inter")
    expected = [(u, list(s[max(0, t - MAX_LEN) : t]), s[t]) for u, s in enumerate(data.train.items) for t in range(1, len(s))]
    got = [(int(u), [int(x) for x in lst.split()], int(i)) for u, lst, i in seq.itertuples(index=False)]
    assert got == expected


def test_features_and_meta(exported):
    ds, out = exported
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["n_users"], meta["n_items"], meta["seeds"]) == (ds.n_users, ds.n_items, SEEDS)
    users = pd.read_csv(out / "users.csv")
    for attr in ds.attributes:
        codes, classes = ds.attribute_codes(attr)
        np.testing.assert_array_equal(users[attr], codes + 1)
        assert meta["user_features"][attr] == len(classes) + 1
    assert meta["genres"] == 0  # the synthetic items have categories, not genres


def test_a_later_export_of_one_seed_keeps_the_others_in_meta(exported, tmp_path):
    ds, _ = exported
    export_splits.export(ds, tmp_path, [1], max_seq_len=MAX_LEN)
    export_splits.export(ds, tmp_path, [0], max_seq_len=MAX_LEN)
    assert json.loads((tmp_path / "meta.json").read_text())["seeds"] == [0, 1]


def test_scoring_is_side_metrics_and_peers_select_on_the_protocol_metric(exported, tmp_path):
    ds, out = exported
    rng = np.random.default_rng(0)
    system = score.System("recbole-sasrec", "peer", "peer", tmp_path / "peer")
    data, want = {}, {}
    for protocol in ("A", "B"):
        data[(protocol, 0)] = d = split(ds, protocol, 0)
        if protocol == "A":
            n = len(d.test.pairs)
            pred = {"rating": rng.uniform(1, 5, n), "ctr": rng.uniform(0, 1, n)}
        else:
            pred = {"next_item": rng.normal(size=(len(d.test.next_users), ds.n_items)).astype(np.float32)}
            _, items, history = common.protocol_b_sides(out / "B" / "seed0")["test"]
            assert common.ndcg_at_10(pred["next_item"], items, history) == pytest.approx(
                side_metrics(d, d.test, pred, ds.rating_range)["B.next_item.ndcg@10"]
            )
        save_predictions(system.folder, protocol, 0, "test", pred)
        want[protocol] = side_metrics(d, d.test, pred, ds.rating_range)
        assert score.score_system(system, protocol, [0], data, ds.rating_range) == want[protocol]
    assert system.seeds("B", [0, 1]) == [0]


def test_the_page_says_which_peer_runs_shared_the_machine(tmp_path):
    def result(seed: int, end: str, seconds: float, load: float | None) -> dict:
        date = f"2026-11-29 {end} UTC"
        return {"seed": seed, "date": date, "total_seconds": seconds, "threads": 1, "load_avg": load, "cores": 2}

    overlapping = [result(0, "18:00", 3600, 2.0), result(1, "18:10", 3600, None)]
    sasrec = score.System("recbole-sasrec", "SASRec", "peer", tmp_path, overlapping)
    bpr = score.System("recbole-bpr", "BPR", "peer", tmp_path, [result(0, "19:00", 60, 0.9)])
    lines = score.conditions_section([sasrec, bpr], ["Nothing else ran."])
    table = [line for line in lines if line.startswith("| ") and "seed |" not in line]
    rows = {line.split(" | ")[0] + line.split(" | ")[1]: line for line in table}
    assert rows["| SASRec0"].endswith("| 2.0 / 2 | SASRec seed 1 |")
    assert rows["| SASRec1"].endswith("| — / 2 | SASRec seed 0 |")
    assert rows["| BPR0"].endswith("| 2026-11-29 18:59–19:00 | 1 | 0.9 / 2 | — |")
    assert lines[-2] == "Nothing else ran."
    assert score.conditions_section([score.System("x", "x", "baseline", tmp_path)], []) == []


def test_the_epoch_clock_records_the_machine_load():
    clock = common.EpochClock()
    clock.record(0, 0.1)
    clock.record(1, 0.3)
    assert len(clock.loads) == 2 and all(load >= 0 for load in clock.loads)
    assert clock.best == 1


def test_a_distilled_students_time_says_its_teacher_is_not_counted(tmp_path):
    student, plain = tmp_path / "student", tmp_path / "polyrec"
    for folder, teacher in ((student, "runs/T"), (plain, None)):
        folder.mkdir()
        (folder / "config.yaml").write_text(f"distill: {{teacher: {teacher or 'null'}}}\n")
        (folder / "metrics.json").write_text(json.dumps({"model.B.seconds_to_best": 10.0, "model.B.train_seconds": 12.0}))
    notes = score.run_cost(student, "B").notes
    assert len(notes) == 1 and "`runs/T`" in notes[0] and "not counted" in notes[0]
    assert score.run_cost(plain, "B").notes == []


def test_the_bench_distils_the_default_into_the_student_preset(tmp_path, monkeypatch):
    import bench

    calls = []

    def measured(cmd: list[str], log: Path) -> dict:
        log.parent.mkdir(parents=True, exist_ok=True)
        calls.append(cmd)
        return {"peak_rss_mb": 1.0}

    monkeypatch.setattr(bench, "measured", measured)
    with pytest.raises(SystemExit, match="teacher .*polyrec is not trained"):
        bench.polyrec_runs(["student"], "0", tmp_path, force=False)
    (tmp_path / "polyrec").mkdir()
    (tmp_path / "polyrec" / "metrics.json").write_text("{}")
    bench.polyrec_runs(["student"], "0,1", tmp_path, force=False)
    cmd = calls[0]
    assert cmd[cmd.index("--teacher") + 1] == str(tmp_path / "polyrec") and "distill" in cmd
    assert cmd[cmd.index("--config") + 1].endswith("configs/student.yaml") and cmd[cmd.index("--seeds") + 1] == "0,1"
