"""How much a user's attributes show in the text of what they took: linear probes.

    python benchmarks/text_profile_probe.py [--dataset ml-100k] [--attribute gender] [--seeds 0,1,2]

Per seed, on protocol A's training interactions and user folds: logistic regression (C chosen
on the validation fold's AUC) on (1) the mean item text vector of each user's history,
standardised, (2) the user × item rating matrix (seen and rating-deviation columns,
each part's rows L2-normalised), (3) both. Prints validation and test
AUC, mean ± std over seeds. It motivates `model.profile_text_rank` (docs/model.md).
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler, normalize

from polyrec.config import RunConfig
from polyrec.data.loader import load_dataset
from polyrec.data.splits import profile_split, protocol_a
from polyrec.pipeline import item_text_vectors

CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def user_features(ds, seed: int, text: np.ndarray) -> dict[str, sp.csr_matrix | np.ndarray]:
    train = ds.interactions.iloc[protocol_a(ds, seed).train]
    u, i = train["user"].to_numpy(), train["item"].to_numpy()
    r = train["rating"].to_numpy(dtype=float)
    shape = (ds.n_users, ds.n_items)
    seen = sp.csr_matrix((np.ones_like(r), (u, i)), shape=shape)
    deviation = sp.csr_matrix((r - r.mean(), (u, i)), shape=shape)
    counts = np.asarray(seen.sum(1)).ravel().clip(min=1)
    return {"text": (seen @ text) / counts[:, None], "matrix": sp.hstack([normalize(seen), normalize(deviation)]).tocsr()}


def probe(X, y: np.ndarray, split) -> tuple[float, float]:
    best = None
    for c in CS:
        model = LogisticRegression(C=c, max_iter=3000).fit(X[split.train], y[split.train])
        valid = roc_auc_score(y[split.valid], model.decision_function(X[split.valid]))
        if best is None or valid > best[0]:
            best = (valid, model)
    return best[0], roc_auc_score(y[split.test], best[1].decision_function(X[split.test]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--attribute", default="gender")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    text = item_text_vectors(ds, RunConfig(), progress=False)
    y, _ = ds.attribute_codes(args.attribute)
    results: dict[str, list[tuple[float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        split = profile_split(ds, seed)
        known = lambda users: users[y[users] >= 0]  # noqa: E731
        split = type(split)(split.fold_test, split.fold_valid, known(split.train), known(split.valid), known(split.test))
        f = user_features(ds, seed, text)
        scaled = StandardScaler().fit(f["text"][split.train]).transform(f["text"])
        # The dense block is scaled down so that one C suits both blocks (the matrix rows have norm 1 per part).
        variants = {"text mean": scaled, "rating matrix": f["matrix"], "both": sp.hstack([f["matrix"], sp.csr_matrix(0.05 * scaled)]).tocsr()}
        for name, X in variants.items():
            results.setdefault(name, []).append(probe(X, y, split))
    for name, v in results.items():
        a = np.array(v)
        print(f"{name}: {args.attribute} AUC valid {a[:, 0].mean():.4f} ± {a[:, 0].std(ddof=1):.4f}, test {a[:, 1].mean():.4f} ± {a[:, 1].std(ddof=1):.4f}")


if __name__ == "__main__":
    main()
