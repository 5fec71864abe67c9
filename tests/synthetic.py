"""A tiny generic dataset folder with planted structure, for training and end-to-end tests.

The world: ``n_items`` items in two equal groups ("action" items first, then "romance"),
``n_users`` users, even-numbered users "F" and odd ones "M". A user's gender decides the
group they prefer:

- F users prefer romance, M users action (``preferred_group``);
- each user takes ``per_user - n_other`` *consecutive* items of the preferred group
  (starting at a random place, wrapping around) — so the next item is predictable — and
  ``n_other`` random items of the other group, inserted at random places;
- ratings: preferred group 4 or 5, other group 1 or 2 — so rating, ctr (rating >= 4) and
  gender (from the rated items) are all learnable;
- timestamps increase along each user's sequence; with timestamps the file rows are
  shuffled, so only the timestamps give the order (without them, file order is the order).

Everything is seeded: the same arguments write the same bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polyrec.config import RunConfig
from polyrec.data.generic import load_generic
from polyrec.data.tables import Dataset

GROUPS = ("action", "romance")
CATEGORIES = {"action": "action|thriller", "romance": "romance|drama"}


def user_id(u: int) -> str:
    return f"u{u:03d}"


def item_id(i: int) -> str:
    return f"i{i:03d}"


def gender(u: int) -> str:
    return "F" if u % 2 == 0 else "M"


def preferred_group(u: int) -> int:
    """0 (action) for M users, 1 (romance) for F users."""
    return 1 if gender(u) == "F" else 0


def item_group(i: int, n_items: int = 40) -> int:
    return int(i >= n_items // 2)


def interactions_frame(
    n_users: int = 60, n_items: int = 40, per_user: int = 16, n_other: int = 4, seed: int = 0
) -> pd.DataFrame:
    """Columns user_id, item_id, rating (int), ts (int seconds), in chronological file order."""
    assert n_items % 2 == 0 and per_user - n_other <= n_items // 2 and n_other <= n_items // 2
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        g = preferred_group(u)
        start = int(rng.integers(half))
        liked = [g * half + (start + j) % half for j in range(per_user - n_other)]
        other = [(1 - g) * half + int(j) for j in rng.choice(half, n_other, replace=False)]
        sequence = list(liked)
        for item in other:  # keep the liked walk in order, the others at random places
            sequence.insert(int(rng.integers(len(sequence) + 1)), item)
        t0 = 1_600_000_000 + 86_400 * u
        for j, i in enumerate(sequence):
            rating = int(rng.choice([4, 5])) if item_group(i, n_items) == g else int(rng.choice([1, 2]))
            rows.append((user_id(u), item_id(i), rating, t0 + 600 * j))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "ts"])


def write_dataset(
    folder: str | Path,
    *,
    users: bool = True,
    items: bool = True,
    ratings: bool = True,
    timestamps: bool = True,
    n_users: int = 60,
    n_items: int = 40,
    per_user: int = 16,
    seed: int = 0,
    bad_rating_row: int | None = None,
    unrated: float = 0.0,
) -> Path:
    """Write ``dataset.yaml`` + ``interactions.csv`` (+ ``items.csv``, ``users.csv``) to ``folder``.

    ``bad_rating_row``: the 0-based data record whose rating becomes the text "five stars"
    (it lands on file row ``bad_rating_row + 2``: the header is row 1). ``unrated``: the share
    of interactions, drawn at random, whose rating is left empty (a log of views beside ratings).
    Returns ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    inter = interactions_frame(n_users, n_items, per_user, seed=seed)
    if timestamps:
        inter = inter.iloc[rng.permutation(len(inter))].reset_index(drop=True)
    else:
        inter = inter.drop(columns="ts")
    if not ratings:
        inter = inter.drop(columns="rating")
    elif unrated:
        inter["rating"] = inter["rating"].astype("Int64").mask(rng.random(len(inter)) < unrated)
    if bad_rating_row is not None:
        inter = inter.astype({"rating": object})
        inter.loc[bad_rating_row, "rating"] = "five stars"
    inter.to_csv(folder / "interactions.csv", index=False)

    spec = ["name: synthetic"]
    columns = "path: interactions.csv, user: user_id, item: item_id"
    if ratings:
        columns += ", rating: rating"
    if timestamps:
        columns += ", timestamp: ts"
    spec.append(f"interactions: {{{columns}}}")
    if items:
        half = n_items // 2
        pd.DataFrame(
            {
                "item_id": [item_id(i) for i in range(n_items)],
                "title": [f"{GROUPS[i // half].title()} story number {i}" for i in range(n_items)],
                "categories": [CATEGORIES[GROUPS[i // half]] for i in range(n_items)],
            }
        ).to_csv(folder / "items.csv", index=False)
        spec.append("items: {path: items.csv, id: item_id, text: [title, categories]}")
    if users:
        pd.DataFrame(
            {
                "user_id": [user_id(u) for u in range(n_users)],
                "gender": [gender(u) for u in range(n_users)],
                "age": rng.integers(16, 70, n_users),
            }
        ).to_csv(folder / "users.csv", index=False)
        spec.append("users: {path: users.csv, id: user_id, attributes: [gender, age]}")
    (folder / "dataset.yaml").write_text("\n".join(spec) + "\n")
    return folder


def write_thin_dataset(folder: str | Path, n_users: int = 30, with_gender: int = 5) -> Path:
    """Two rated interactions a user (nothing for protocol B to hold out) and a users file in
    which only the first ``with_gender`` users gave their gender."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"u{u},i{(u + k) % 7},{1 + (u + k) % 5},{100 * u + k}" for u in range(n_users) for k in range(2)]
    (folder / "inter.csv").write_text("user,item,rating,ts\n" + "\n".join(rows) + "\n")
    genders = ["FM"[u % 2] if u < with_gender else "" for u in range(n_users)]
    (folder / "users.csv").write_text("user,gender\n" + "".join(f"u{u},{g}\n" for u, g in enumerate(genders)))
    (folder / "dataset.yaml").write_text(
        "interactions: {path: inter.csv, user: user, item: item, rating: rating, timestamp: ts}\n"
        "users: {path: users.csv, id: user, attributes: [gender]}\n"
    )
    return folder


def synthetic_dataset(**options) -> Dataset:
    """The same data as ``write_dataset(folder, **options)``, loaded, without keeping files."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_generic(write_dataset(Path(tmp) / "synthetic", **options))


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore. On two shared cores that other processes
    also use, two intra-op threads make these tiny models 10-30x slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def text_projections_shared_and_per_item(tower, step: Callable[[], tuple[dict, tuple]]) -> tuple[list[int], list[int]]:
    """Run ``step`` (→ its losses and gradients) from the same seed twice: as the code runs
    it, and with every text part projected item by item, the reference that
    ``ItemTower.catalogue_text_once`` must match. Asserts the same losses and gradients to
    float rounding; returns the rows of each text projection, shared way then per item."""
    calls: list[int] = []
    hook = tower.text_proj.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[:-1].numel()))

    def run(per_item: bool):
        torch.manual_seed(1)  # the same dropout and ID-dropout draws both ways
        calls.clear()
        if per_item:
            tower.text_part = lambda items: tower.text_proj(tower.text[items])
        try:
            losses, grads = step()
        finally:
            tower.__dict__.pop("text_part", None)
        return losses, grads, list(calls)

    try:
        (shared, shared_grads, shared_calls), (own, own_grads, own_calls) = run(False), run(True)
    finally:
        hook.remove()
    assert shared.keys() == own.keys()
    for name in shared:
        torch.testing.assert_close(shared[name], own[name], rtol=1e-5, atol=1e-6, msg=name)
    for a, b in zip(shared_grads, own_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    return shared_calls, own_calls


AUTOENCODER_EPOCHS = 10  # tiny_config's and TINY_YAML's cap on each autoencoder fit


def tiny_config(data_path: str | Path | None = None, **train) -> RunConfig:
    """A seconds-long run: dim 16, one layer and head, no language model, seed 0."""
    cfg = RunConfig.from_dict(
        {
            "data": {"path": None if data_path is None else str(data_path), "dataset": None},
            "text": {"enabled": False},
            "model": {
                "dim": 16, "layers": 1, "heads": 1, "max_history": 20, "dropout": 0.0,
                "item_autoencoder": 8, "user_autoencoder": 8, "engagement_autoencoder": 8,
                # Off here (its fit adds about 1.5 s to each tiny training); the tests of it turn it on.
                "user_engagement_autoencoder": 0,
                # Uncapped, a tiny fit runs about 47 epochs before it stops; the fits were half
                # of the suite's time. The tests of the fits themselves call them uncapped.
                "autoencoder_epochs": AUTOENCODER_EPOCHS,
            },  # fmt: skip
            "train": {"epochs": 6, "batch_size": 16, "lr": 1e-2, "patience": 100, "threads": 1, **train},
            "seeds": [0],
        }
    )
    return cfg


TINY_YAML = f"""\
text: {{enabled: false}}
model: {{dim: 16, layers: 1, heads: 1, max_history: 20, dropout: 0.0, item_autoencoder: 8, user_autoencoder: 8, engagement_autoencoder: 8, user_engagement_autoencoder: 0, autoencoder_epochs: {AUTOENCODER_EPOCHS}}}
train: {{epochs: 4, batch_size: 16, lr: 0.01, threads: 1}}
seeds: [0]
"""


def random_ratings(n_users: int = 12, n_items: int = 9, n: int = 60, seed: int = 0):
    """``n`` distinct (user, item) pairs with ratings 1..5: the autoencoders' unit-test data."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    return pairs // n_items, pairs % n_items, rng.integers(1, 6, size=n).astype(np.float64)


def perturbed_autoencoder(cls: type, users, items, ratings, n_users: int = 12, n_items: int = 9, seed: int = 0):
    """An ``ItemAutoencoder`` (or subclass) of width 5 on these ratings, its parameters moved
    away from the all-zero start so that every term of its output matters."""
    torch.manual_seed(seed)
    ae = cls(n_users, n_items, hidden=5, n_ratings=len(users))
    ae.set_ratings(users, items, ratings)
    with torch.no_grad():
        for p in ae.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return ae


def strip_saved_field(folder: Path, spec_key: str, *weight_prefixes: str) -> None:
    """Make the model saved in ``folder`` look saved before ``spec_key`` existed: the key out
    of its spec, the weights under ``weight_prefixes`` out of its weights file."""
    import yaml
    from safetensors.torch import load_file, save_file

    from polyrec.models.io import SPEC, WEIGHTS

    spec = yaml.safe_load((folder / SPEC).read_text())
    spec.pop(spec_key, None)
    (folder / SPEC).write_text(yaml.safe_dump(spec, sort_keys=False))
    state = load_file(str(folder / WEIGHTS))
    save_file({k: v for k, v in state.items() if not k.startswith(weight_prefixes)}, str(folder / WEIGHTS))


def is_a_cached_fit(module: torch.nn.Module, cache: Path) -> bool:
    """Whether ``module``'s parameters are exactly those of one of the fits stored in the
    fit cache ``cache`` (train/fit_cache.py): fitted, and not moved since."""
    fits = [torch.load(path, weights_only=True)["state"] for path in Path(cache).glob("*.pt")]
    weights = dict(module.named_parameters())
    return any(all(torch.equal(w, fit[name]) for name, w in weights.items()) for fit in fits)


def assert_joined_at_its_weight(model, view, users: torch.Tensor, items: torch.Tensor, heads: dict) -> torch.Tensor:
    """The model's ctr logit with ``view`` joined is the one without it plus the view's weight
    times its value; returns the joined logit."""
    weight = float(view.weight)
    with torch.no_grad():
        joined = model.join_autoencoder(users, items, heads)["ctr"]
        view.weight.zero_()
        unjoined = model.join_autoencoder(users, items, heads)["ctr"]
        view.weight.fill_(weight)
        assert torch.allclose(joined - unjoined, weight * view(users, items), atol=1e-6)
    return joined
