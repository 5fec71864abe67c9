"""Write polyrec's own splits as files that the peer systems read (run in the MAIN venv).

    python benchmarks/peers/export_splits.py [--dataset ml-100k | --data PATH] [--seeds 0,1,2]
                                             [--out runs/peers/splits] [--max-seq-len 50]

Every split comes from ``polyrec.train.protocol_data.prepare``, the function ``polyrec run``
uses, so a peer trains, validates and is tested on exactly polyrec's interactions. Users and
items are written as polyrec's integer indices (RecBole reads them as tokens). Layout::

    meta.json                       sizes, seeds, feature vocabularies, max_seq_len
    users.csv                       user, one column per attribute (class code + 1; 0 = missing)
    items.csv                       item, genres (space-separated genre codes >= 1; may be empty)
    A/seed<k>/{train,valid,test}.csv        user, item, rating, label; valid/test rows in the
                                            order of ``side.pairs`` (a prediction's order)
    B/seed<k>/targets.npz                   {valid,test}_{users,items}: ``side.next_users``/``next_items``
    B/seed<k>/recbole/pr/pr.<side>.inter    user_id, item_id; train in chronological order per user,
                                            valid/test one row per next-item user (RecBole
                                            ``benchmark_filename`` files for general models)
    B/seed<k>/recbole/pr-seq/pr-seq.<side>.inter   user_id, item_id_list, item_id: every train
                                            position after the first with its preceding items,
                                            valid = the train history → the valid item, test =
                                            train + valid history → the test item (sequential
                                            models); lists keep the last ``max_seq_len`` items

Protocol B does not depend on the seed (PROTOCOLS.md); it is written per seed anyway so that
every peer's run reads ``<protocol>/seed<k>/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from polyrec.config import RunConfig
from polyrec.data.loader import load_dataset
from polyrec.data.tables import Dataset
from polyrec.train.protocol_data import ProtocolData, prepare

SIDES = ("train", "valid", "test")
GENERAL, SEQUENTIAL = "pr", "pr-seq"
GENRES = "genres"  # the multi-valued item column DeepFM reads, where the data has one


def user_features(ds: Dataset) -> tuple[pd.DataFrame, dict[str, int]]:
    """One column per attribute: class code + 1 (0 = missing), and each column's vocabulary size."""
    frame, vocab = pd.DataFrame({"user": np.arange(ds.n_users)}), {}
    for attr in ds.attributes:
        codes, classes = ds.attribute_codes(attr)
        frame[attr] = codes + 1
        vocab[attr] = len(classes) + 1
    return frame, vocab


def item_genres(ds: Dataset) -> tuple[pd.DataFrame, int]:
    """Space-separated genre codes (from 1) per item, and the vocabulary size (0: no genres)."""
    if GENRES not in ds.items.columns:
        return pd.DataFrame({"item": np.arange(ds.n_items), GENRES: ""}), 0
    lists = [[] if pd.isna(g) else [x.strip() for x in str(g).split(",") if x.strip()] for g in ds.items[GENRES]]
    names = sorted({g for gs in lists for g in gs})
    code = {g: k + 1 for k, g in enumerate(names)}
    genres = [" ".join(str(code[g]) for g in gs) for gs in lists]
    return pd.DataFrame({"item": np.arange(ds.n_items), GENRES: genres}), len(names) + 1


def pair_frame(users, items, ratings, labels) -> pd.DataFrame:
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "label": labels})


def train_pairs(data: ProtocolData) -> pd.DataFrame:
    """The training interactions, user by user in chronological order."""
    t = data.train
    users = np.repeat(np.arange(t.n_users), t.lengths())
    return pair_frame(users, *(np.concatenate(x) for x in (t.items, t.ratings, t.labels)))


def write_inter(path: Path, header: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)]
    for row in rows:
        lines.append("\t".join(" ".join(map(str, c)) if isinstance(c, (list, np.ndarray)) else str(c) for c in row))
    path.write_text("\n".join(lines) + "\n")


def next_item_inputs(data: ProtocolData) -> dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """Per evaluation side: users, target items, and each user's input history (chronological)."""
    return {
        name: (side.next_users, side.next_items, [side.history.items[u] for u in side.next_users])
        for name, side in (("valid", data.valid), ("test", data.test))
    }


def export_protocol_b(data: ProtocolData, folder: Path, max_seq_len: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sides = next_item_inputs(data)
    np.savez(folder / "targets.npz", **{f"{s}_{k}": v for s, (u, i, _) in sides.items() for k, v in (("users", u), ("items", i))})
    general = {"train": [(u, i) for u, seq in enumerate(data.train.items) for i in seq]}
    sequential = {
        "train": [(u, seq[max(0, t - max_seq_len) : t], seq[t]) for u, seq in enumerate(data.train.items) for t in range(1, len(seq))]
    }
    for side, (users, items, history) in sides.items():
        general[side] = list(zip(users, items))
        sequential[side] = [(u, h[-max_seq_len:], i) for u, i, h in zip(users, items, history)]
    for side in SIDES:
        write_inter(folder / "recbole" / GENERAL / f"{GENERAL}.{side}.inter", ["user_id:token", "item_id:token"], general[side])
        header = ["user_id:token", "item_id_list:token_seq", "item_id:token"]
        write_inter(folder / "recbole" / SEQUENTIAL / f"{SEQUENTIAL}.{side}.inter", header, sequential[side])


def export_protocol_a(data: ProtocolData, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train_pairs(data).to_csv(folder / "train.csv", index=False)
    for side in ("valid", "test"):
        p = getattr(data, side).pairs
        pair_frame(p.users, p.items, p.ratings, p.labels).to_csv(folder / f"{side}.csv", index=False)


def export(ds: Dataset, out: str | Path, seeds: list[int], max_seq_len: int = 50, ctr_threshold: float | None = None) -> Path:
    """Write every protocol's and seed's split of ``ds`` under ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    defaults = RunConfig()
    threshold = defaults.data.ctr_threshold if ctr_threshold is None else ctr_threshold
    users, user_vocab = user_features(ds)
    items, genre_vocab = item_genres(ds)
    users.to_csv(out / "users.csv", index=False)
    items.to_csv(out / "items.csv", index=False)
    for seed in seeds:
        for protocol in ("A", "B"):
            data = prepare(ds, protocol, seed, threshold, defaults.model.rating_levels, profile=False)
            folder = out / protocol / f"seed{seed}"
            export_protocol_a(data, folder) if protocol == "A" else export_protocol_b(data, folder, max_seq_len)
    # Seeds exported by earlier calls stay (the bench exports the seeds it trains, one call at a time).
    exported = sorted({int(f.name[len("seed") :]) for f in out.glob("B/seed*")} | set(seeds))
    meta = {
        "dataset": ds.name, "n_users": ds.n_users, "n_items": ds.n_items, "seeds": exported,
        "ctr_threshold": threshold, "rating_range": ds.rating_range, "max_seq_len": max_seq_len,
        "user_features": user_vocab, "genres": genre_vocab,
    }  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=None, help="built-in dataset (default ml-100k)")
    ap.add_argument("--data", default=None, help="a data folder instead of a built-in dataset")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/peers/splits")
    ap.add_argument("--max-seq-len", type=int, default=50, help="RecBole's MAX_ITEM_LIST_LENGTH (its default: 50)")
    args = ap.parse_args()
    ds = load_dataset(args.dataset, args.data)
    out = export(ds, args.out, [int(s) for s in args.seeds.split(",")], args.max_seq_len)
    print(f"splits of {ds.name} written to {out}")


if __name__ == "__main__":
    main()
