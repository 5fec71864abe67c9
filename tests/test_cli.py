"""`polyrec` on the command line: describe, run, recommend, one-line errors, shipped presets."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import polyrec

from polyrec.cli import main
from polyrec.config import RunConfig
from synthetic import TINY_YAML, write_dataset, write_thin_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"



@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("cli") / "shop")


def one_error_line(err: str) -> str:
    """stderr of a failed command: exactly one line, no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("polyrec: error: ")
    return lines[0]


# ---------------------------------------------------------------- happy paths


def test_a_reader_that_goes_away_stops_the_command_quietly(folder) -> None:
    """`polyrec … | head`: the pipe's reader is gone before the command prints; it stops with
    SIGPIPE's status and no traceback."""
    child = subprocess.Popen(
        [sys.executable, "-m", "polyrec", "data", "describe", "--data", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    child.stdout.close()  # long before the child has imported polyrec and read the data
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 128 + signal.SIGPIPE
    assert "Traceback" not in err and "Broken pipe" not in err, err


def test_data_describe_sets_the_ctr_label_on_the_data_s_own_scale(tmp_path, capsys) -> None:
    folder = write_dataset(tmp_path / "ten")
    inter = pd.read_csv(folder / "interactions.csv")
    inter.assign(rating=inter["rating"] * 2).to_csv(folder / "interactions.csv", index=False)
    assert main(["data", "describe", "--data", str(folder)]) == 0
    assert "ctr label: rating >= 8 (data.ctr_threshold; ratings 2 to 10), 75% of" in capsys.readouterr().out


def test_data_describe_prints_counts(folder, capsys) -> None:
    assert main(["data", "describe", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Dataset synthetic" in out
    for label, count in (("users", 60), ("items", 40), ("interactions", 960)):
        assert any(line.split() == [label, str(count)] for line in out.splitlines()), label
    assert "Attribute 'gender' (2 classes)" in out


def test_run_then_recommend(folder, tmp_path, capsys) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = tmp_path / "run"
    argv = ["run", "--data", str(folder), "--config", str(config), "--seeds", "0", "--epochs", "2",
            "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| metric | polyrec |" in printed and "A.rating.rmse" in printed
    assert f"wrote {out / 'report.md'}" in printed
    # No label column: the note says what makes a ctr positive, on the data's own scale.
    assert "note: ctr label: rating >= 4 (data.ctr_threshold; ratings 1 to 5), " in printed
    # The YAML and the flags both reach the run, and the run records what it used.
    used = RunConfig.load(out / "config.yaml")
    assert (used.model.dim, used.train.epochs, used.seeds, used.text.enabled) == (16, 2, [0], False)
    assert used.data.path == str(folder) and used.data.dataset is None
    assert used.data.ctr_threshold is None  # left to the data: 4 on its 1–5 scale, as the note says

    assert main(["recommend", "--run", str(out), "--user", "u001", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert [line.split(".")[0].strip() for line in lines] == ["1", "2", "3"]
    assert all("(item i" in line and "score" in line for line in lines)
    assert main(["recommend", "--run", str(out), "--user", "u001", "--k", "2"]) == 0  # the long spelling too
    assert len(capsys.readouterr().out.strip().splitlines()) == 2

    assert main(["recommend", "--run", str(out), "--user", "nobody"]) == 2
    assert "unknown user 'nobody'" in one_error_line(capsys.readouterr().err)

    # Many users into a file: each user's rows are what `recommend` gives that user.
    ids = tmp_path / "ids.txt"
    ids.write_text("u003\n\nu001\n")  # a blank line is skipped
    assert main(["recommend", "--run", str(out), "--users", str(ids), "-k", "4", "--quiet", "--out", str(tmp_path / "r.csv")]) == 0
    assert "wrote 8 recommendations for 2 users" in capsys.readouterr().out
    written = pd.read_csv(tmp_path / "r.csv", dtype={"user_id": str, "item_id": str})
    assert written["user_id"].tolist() == ["u003"] * 4 + ["u001"] * 4 and written["rank"].tolist() == [1, 2, 3, 4] * 2
    rec = polyrec.load(out)
    for user, rows in written.groupby("user_id"):
        alone = rec.recommend(user, k=4)
        assert rows["item_id"].tolist() == alone["item_id"].tolist()
        np.testing.assert_allclose(rows["score"], alone["score"], atol=1e-5)
    assert main(["recommend", "--run", str(out), "--all-users", "--quiet", "--out", str(tmp_path / "all.parquet")]) == 0
    assert pd.read_parquet(tmp_path / "all.parquet")["user_id"].nunique() == 60
    ids.write_text("u001\nnobody\n")
    assert main(["recommend", "--run", str(out), "--users", str(ids), "--out", str(tmp_path / "r.csv")]) == 2
    assert f"{ids}, line 2: unknown user 'nobody'" in one_error_line(capsys.readouterr().err)
    assert main(["recommend", "--run", str(out), "--all-users", "--out", str(tmp_path / "r.json")]) == 2
    assert "--out must name a .csv or .parquet file" in one_error_line(capsys.readouterr().err)

    # Pairs from a file: the run's predictions, row by row; an unknown id names its row.
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("who,what\nu002,i005\nu001,i007\n")
    argv = ["predict", "--run", str(out), "--pairs", str(pairs), "--user-column", "who", "--item-column", "what"]
    assert main([*argv, "--out", str(tmp_path / "p.parquet")]) == 0
    assert "wrote 2 predictions (rating, ctr)" in capsys.readouterr().out
    written = pd.read_parquet(tmp_path / "p.parquet")
    expected = rec.predict(["u002", "u001"], ["i005", "i007"])
    assert written["item_id"].tolist() == ["i005", "i007"]
    np.testing.assert_allclose(written[["rating", "ctr"]].to_numpy(), expected[["rating", "ctr"]].to_numpy())
    pairs.write_text("who,what\nu002,i005\nu001,nope\n")
    assert main([*argv, "--out", str(tmp_path / "p.csv")]) == 2
    assert one_error_line(capsys.readouterr().err) == f"polyrec: error: {pairs}, row 3, column 'what': unknown item 'nope' (not in the run's data)"
    # Users the run has not seen, with their histories from a file: predicted from those,
    # the known users as before, the rows in the pairs file's order.
    pairs.write_text("who,what\nnew1,i005\nu002,i005\nnew1,i009\nnew2,i001\n")
    histories = tmp_path / "histories.csv"
    histories.write_text("who,what,rating\nnew1,i001,5\nnew2,i002,\nnew1,i003,2\n")
    assert main([*argv, "--histories", str(histories), "--out", str(tmp_path / "p.csv")]) == 0
    written = pd.read_csv(tmp_path / "p.csv", dtype={"user_id": str, "item_id": str})
    assert written[["user_id", "item_id"]].values.tolist() == [["new1", "i005"], ["u002", "i005"], ["new1", "i009"], ["new2", "i001"]]
    np.testing.assert_allclose(written.loc[[0, 2], "rating"], rec.predict_history(["i001", "i003"], ["i005", "i009"], [5.0, 2.0])["rating"])
    np.testing.assert_allclose(written.loc[3, "ctr"], rec.predict_history(["i002"], ["i001"])["ctr"][0])
    np.testing.assert_allclose(written.loc[1, "rating"], expected["rating"][0])
    assert main([*argv, "--out", str(tmp_path / "p.csv")]) == 2  # without the histories: one line naming the row
    assert "row 2, column 'who': unknown user 'new1' (not in the run's data; give their history with --histories, or their events with --events)" in one_error_line(
        capsys.readouterr().err
    )
    histories.write_text("who,what,rating\nnew1,i001,five\n")
    assert main([*argv, "--histories", str(histories), "--out", str(tmp_path / "p.csv")]) == 2
    assert f"{histories}, row 2, column 'rating': cannot read rating 'five': expected a number" in one_error_line(capsys.readouterr().err)
    histories.write_text("who,what\nnew1,ghost\n")
    assert main([*argv, "--histories", str(histories), "--out", str(tmp_path / "p.csv")]) == 2
    assert f"{histories}, row 2, column 'what': unknown item 'ghost' (not in the run's catalogue)" in one_error_line(capsys.readouterr().err)


def test_recommend_prints_a_long_item_text_on_one_shortened_line() -> None:
    from polyrec.cli_answers import shortened

    assert shortened("Toy Story (1995)") == "Toy Story (1995)"
    long = "title: " + " ".join(["word"] * 60) + "\ndescription: more"
    line = shortened(long)
    assert len(line) == 100 and line.endswith("…") and "\n" not in line and line.startswith("title: word word")


def test_data_too_thin_for_a_protocol_or_task_turns_it_off_and_says_so(tmp_path, capsys) -> None:
    """Two interactions a user leave nothing to hold out for protocol B; five users with
    attributes cannot fill ten user folds. Both are switched off with a note, and a run left
    with nothing to train is one line."""
    data = write_thin_dataset(tmp_path / "thin")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    base = ["run", "--data", str(data), "--config", str(config), "--epochs", "1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "note: protocol B skipped: no user has the 3 interactions it needs (training, validation, test)" in printed
    assert "note: task 'profile' is off: 5 users with attributes, fewer than the 10 user folds it is tested on" in printed
    assert "A.rating.rmse" in printed and "B.next_item" not in printed
    assert main(["data", "describe", "--data", str(data)]) == 0  # says the same before any training
    described = capsys.readouterr().out
    assert "  - protocol B skipped: no user has the 3 interactions it needs" in described
    assert "  - task 'profile' is off: 5 users with attributes" in described
    assert main([*base, "--protocols", "B", "--out", str(tmp_path / "b")]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        "polyrec: error: thin: nothing to train: protocol B skipped: no user has the 3 interactions it needs "
        "(training, validation, test)"
    )


# ---------------------------------------------------------------- bad input: exit 2, one line


@pytest.mark.parametrize("command", ["describe", "run"])
def test_unparsable_rating_is_one_line_naming_file_row_and_column(tmp_path, capsys, command) -> None:
    bad = write_dataset(tmp_path / "bad", bad_rating_row=10)
    argv = ["data", "describe", "--data", str(bad)] if command == "describe" else \
        ["run", "--data", str(bad), "--no-text", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "interactions.csv" in line
    assert "row 12" in line  # record 10 after the header on row 1
    assert "column 'rating'" in line and "five stars" in line
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unknown_config_key_is_a_clear_error(folder, tmp_path, capsys) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("model: {dim: 16, dimm: 8}\n")
    assert main(["run", "--data", str(folder), "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "typo.yaml" in line and "dimm" in line and "config.model" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("seeds: 0\n", "'config.seeds' expects list[int], got 0"),
        ("model: 16\n", "'config.model' must be a mapping"),
        ("train: {lr: 1e-3}\n", "'config.train.lr' expects float, got '1e-3'"),  # YAML 1.1: a str
    ],
)
def test_wrongly_typed_config_value_is_a_clear_error(folder, tmp_path, capsys, text, expected) -> None:
    config = tmp_path / "typed.yaml"
    config.write_text(text)
    assert main(["run", "--data", str(folder), "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "typed.yaml" in line and expected in line


def test_missing_run_folder_is_one_line(tmp_path, capsys) -> None:
    assert main(["recommend", "--run", str(tmp_path / "nope"), "--user", "u001"]) == 2
    assert "nope: no such run folder" in one_error_line(capsys.readouterr().err)


def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "polyrec"  # installed by `pip install -e .`
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: polyrec")
    for command in ("run", "data", "recommend"):
        assert command in done.stdout


# ---------------------------------------------------------------- shipped presets


def test_quickstart_preset_is_shipped() -> None:
    assert (CONFIGS / "quickstart.yaml").is_file()


def _assert_applied(raw: dict, loaded: dict, where: str) -> None:
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(loaded[key], dict):
            _assert_applied(value, loaded[key], f"{where}.{key}")
        else:
            assert loaded[key] == value, f"{where}.{key}"


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads_and_round_trips(preset: Path, tmp_path) -> None:
    cfg = RunConfig.load(preset)
    raw = yaml.safe_load(preset.read_text()) or {}
    base = raw.pop("extends", None)
    if base is not None:  # the preset it extends applies beneath it, key by key
        _assert_applied({k: v for k, v in RunConfig.load(CONFIGS / base).to_dict().items() if k not in raw},
                        cfg.to_dict(), f"{preset.stem} from {base}")  # fmt: skip
    _assert_applied(raw, cfg.to_dict(), preset.stem)
    assert cfg.model.dim % cfg.model.heads == 0
    cfg.save(tmp_path / "again.yaml")
    assert RunConfig.load(tmp_path / "again.yaml") == cfg


def test_a_config_extends_another_merging_mappings_key_by_key(tmp_path) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "base.yaml").write_text(
        "model: {dim: 24, layers: 1, dropout: 0.2}\ntrain: {epochs: 30, patience: 4}\nseeds: [0, 1]\n"
    )
    (tmp_path / "child.yaml").write_text("extends: presets/base.yaml\nmodel: {dropout: 0.3}\nseeds: [5]\n")
    cfg = RunConfig.load(tmp_path / "child.yaml")
    assert (cfg.model.dim, cfg.model.layers, cfg.model.dropout) == (24, 1, 0.3)
    assert (cfg.train.epochs, cfg.train.patience) == (30, 4)
    assert cfg.seeds == [5]  # a list replaces, it does not merge
    (tmp_path / "presets" / "base.yaml").write_text("extends: ../child.yaml\n")
    with pytest.raises(ValueError, match="comes back to this file"):
        RunConfig.load(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ValueError, match="no config file .*missing.yaml"):
        RunConfig.load(tmp_path / "child.yaml")


def test_run_on_movielens_dat_folder(tmp_path, capsys) -> None:
    """The ML-1M `.dat` format is recognised from its files and trains every task."""
    from synthetic import interactions_frame

    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    inter = interactions_frame()
    users = sorted(inter["user_id"].unique())
    items = sorted(inter["item_id"].unique())
    uid = {u: k + 1 for k, u in enumerate(users)}
    iid = {i: k + 1 for k, i in enumerate(items)}
    (folder / "users.dat").write_text(
        "".join(f"{uid[u]}::{'F' if k % 2 == 0 else 'M'}::{[18, 25, 35][k % 3]}::{k % 5}::00000\n" for k, u in enumerate(users)),
        encoding="latin-1",
    )
    (folder / "movies.dat").write_text(
        "".join(f"{iid[i]}::Film {k} é ({1990 + k % 10})::{'Drama|Romance' if k % 2 else 'Action'}\n" for k, i in enumerate(items)),
        encoding="latin-1",
    )
    (folder / "ratings.dat").write_text(
        "".join(f"{uid[r.user_id]}::{iid[r.item_id]}::{int(r.rating)}::{int(r.ts)}\n" for r in inter.itertuples()),
        encoding="latin-1",
    )
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = tmp_path / "run"
    argv = ["run", "--data", str(folder), "--config", str(config), "--seeds", "0", "--epochs", "2", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    metrics = yaml.safe_load((out / "metrics.json").read_text())
    for key in ("A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "B.next_item.ndcg@10"):
        assert key in metrics, key


@pytest.mark.parametrize("bench", [["mtl"], ["pretrain"]])
def test_a_study_refuses_a_config_for_deployment(tmp_path, capsys, bench) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text("data: {deploy: true}\n")
    assert main(["bench", *bench, "--config", str(config), "--out", str(tmp_path / "b"), "--doc", str(tmp_path / "d.md")]) == 2
    assert f"polyrec bench {bench[0]} measures on the test side: its config must not set data.deploy" in one_error_line(
        capsys.readouterr().err
    )


def test_version_names_the_package_s_own(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"polyrec {polyrec.__version__}"
