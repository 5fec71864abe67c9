"""A trained run as one object: recommend, predict and profile by original ids.

``polyrec.load("runs/NAME")`` returns a :class:`Recommender`. It reads the models that
``polyrec run`` saved (protocol B's for next-item retrieval, protocol A's for ratings,
engagement and profiles, each falling back to the other) and uses every known interaction
of a user as that user's history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from .data.tables import Dataset, scale_ctr_threshold
from .eval.predict import predict_pairs, profile_probabilities, score_users
from .explain import Explanation, explain_history_score, explain_score
from .interests import category_shares
from .models.io import load_model
from .models.item_prior import ItemPrior
from .models.polyrec import UNKNOWN_USER, ModelSpec, PolyRecModel, UserEncoding
from .recommender_base import RecommenderBase
from .run_loader import INTERACTIONS, ITEMS, TEXT_FIELDS, USERS, load_tables
from .text.new_items import NewItemEncoder, NewItemText
from .train.rating_tokens import RatingTokens
from .train.sequences import HistoryBatch, Histories, build_histories, collate


def save_tables(ds: Dataset, out: Path) -> None:
    """The id maps, item texts and interactions a saved run needs to answer by id."""
    items = ds.items.astype({"item_id": str})
    # Kept in the file so serving can take a new item's text as the same fields (parquet keeps attrs).
    items.attrs = {**items.attrs, TEXT_FIELDS: list(ds.text_fields)}
    items.to_parquet(out / ITEMS, index=False)
    ds.users.astype("string").to_parquet(out / USERS, index=False)  # missing stays missing
    ds.interactions.to_parquet(out / INTERACTIONS, index=False)


class Recommender(RecommenderBase):
    """A run of polyrec's own model (see :class:`RecommenderBase` for the public answers)."""

    def __init__(self, models: dict[str, PolyRecModel], items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame):
        if not models:
            raise ValueError("a Recommender needs at least one model")
        super().__init__(items, users, interactions)
        self.models_ = models
        self.tasks = {t for m in models.values() for t in m.heads}
        self.rating_range = next((m.spec.rating_range for m in models.values() if m.spec.rating_range is not None), None)
        self.attribute_classes = {k: v for m in models.values() for k, v in m.spec.attribute_classes.items()}
        ds = Dataset("saved", users, items, interactions)
        # How the run's item texts were encoded (set by load from config.yaml): new items' texts
        # must go the same way. None: unknown, or the run used no text.
        self.new_item_encoder_: NewItemEncoder | None = None
        self._histories: dict[str, Histories] = {}
        for p, m in models.items():
            tokens = RatingTokens(tuple(m.spec.rating_levels), m.spec.labels_only)
            self._histories[p] = build_histories(ds, np.arange(len(interactions)), tokens, m.spec.ctr_threshold)

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        path = Path(path)
        folders = {p.name: p for p in sorted((path / "model").glob("*")) if p.is_dir()}
        if not folders:
            raise FileNotFoundError(f"{path}: no saved model (expected {path}/model/<protocol>/)")
        models = {name: load_model(folder) for name, folder in folders.items()}
        items, users, interactions = load_tables(path)
        rec = cls(models, items, users, interactions)
        if (path / "config.yaml").is_file():  # read leniently: only the text section matters here
            text = (yaml.safe_load((path / "config.yaml").read_text()) or {}).get("text") or {}
            rec.new_item_encoder_ = NewItemEncoder.from_run(text, items.attrs.get(TEXT_FIELDS, []))
        return rec

    def _model(self, task: str, prefer: tuple[str, ...]) -> tuple[str, PolyRecModel]:
        for p in prefer + tuple(self.models_):
            if p in self.models_ and task in self.models_[p].heads:
                return p, self.models_[p]
        raise ValueError(f"no saved model of this run learned the task '{task}'")

    # -- by index (RecommenderBase turns these into the answers by id) --------------------
    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        p, model = self._model("next_item", ("B", "A"))
        return score_users(model, self._histories[p], users)

    def pair_predictions(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        if not {"rating", "ctr"} & self.tasks:
            return super().pair_predictions(users, items)  # says the run predicts neither
        task = "rating" if "rating" in self.tasks else "ctr"
        p, model = self._model(task, ("A", "B"))
        return predict_pairs(model, self._histories[p], users, items)

    def profile_probabilities(self, users: np.ndarray) -> dict[str, np.ndarray]:
        p, model = self._model("profile", ("A", "B"))
        return profile_probabilities(model, self._histories[p], users)

    # ------------------------------------------------------------ retrieval by vectors (serving)
    #
    # The next-item score is ``query(h_u) · e_i + b_i`` (NextItemHead). Written as one inner
    # product of ``[query(h_u), 1]`` and ``[e_i, b_i]``, an inner-product index (FAISS) ranks
    # exactly as ``recommend`` does, and a known user's vector can be computed once.

    @property
    def vectors_rank_as_recommend(self) -> bool:
        """Whether ``user_vectors() @ item_vectors().T`` ranks as ``recommend`` does: not where
        the model joins an item prior to its scores (models/item_prior.py), which is no inner
        product of two vectors; the vectors then give the model's own part of the score."""
        _, model = self._model("next_item", ("B", "A"))
        return not model.priors()

    def next_item_reading(self) -> tuple[list[ItemPrior], list[np.ndarray], int]:
        """What the next-item scores read besides the vectors: the model's priors (none where
        :attr:`vectors_rank_as_recommend`), each known user's history as item indices, oldest
        first, and how many of its latest items the model reads."""
        p, model = self._model("next_item", ("B", "A"))
        return model.priors(), list(self._histories[p].items), model.spec.config.max_history

    def history_of(self, user_id: str) -> tuple[list[str], list[float | None]]:
        """A known user's history as the next-item model reads it, oldest first, in the form
        :meth:`recommend_history` takes: item ids and their values (None where none). Given
        back with more items after it, it is that user's history grown by them."""
        p, model = self._model("next_item", ("B", "A"))
        u, history = self.user_index(user_id), self._histories[p]
        values = history.labels[u] if self.values_are_labels else history.ratings[u]
        ids = self.items_["item_id"].to_numpy()
        return [str(ids[i]) for i in history.items[u]], [None if np.isnan(v) else float(v) for v in values]

    @property
    def values_are_labels(self) -> bool:
        """Whether a history's values are 0/1 labels (a run on labels without ratings) rather
        than ratings."""
        return any(m.spec.labels_only for m in self.models_.values())

    def next_item_model(self) -> tuple[PolyRecModel, Histories]:
        """The model that ranks the catalogue (protocol B's where saved) and each known user's
        history as it reads them (what ``polyrec export`` writes out)."""
        p, model = self._model("next_item", ("B", "A"))
        return model, self._histories[p]

    def explain(self, user_id: str, item_id: str, top: int = 5, occlusion: bool = False) -> Explanation:
        """Why ``item_id`` scores as it does for ``user_id`` (explain.py): the score's parts,
        the history items behind the priors' parts, and with ``occlusion`` the history items
        whose absence would move the whole score most."""
        return explain_score(self, user_id, item_id, top, occlusion)

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        """(I, d + 1) float32 ``[e_i, b_i]``: item vector and next-item bias, rows by item index."""
        _, model = self._model("next_item", ("B", "A"))
        model.eval()
        bias = model.heads["next_item"].item_bias.unsqueeze(1)
        return torch.cat([model.item_tower.all_items(), bias], dim=1).numpy().astype(np.float32)

    @torch.no_grad()
    def user_vectors(self, batch_users: int = 256, users: np.ndarray | None = None) -> np.ndarray:
        """(U, d + 1) float32 ``[query(h_u), 1]`` after each known user's whole history (of
        ``users``, user indices, where given; else of every known user, in index order).

        ``user_vectors()[u] @ item_vectors().T`` equals ``recommend``'s scores for user ``u``
        (without an item prior: :attr:`vectors_rank_as_recommend`).
        """
        p, model = self._model("next_item", ("B", "A"))
        model.eval()
        hist, query = self._histories[p], model.heads["next_item"].query
        chosen = np.arange(hist.n_users) if users is None else np.asarray(users, dtype=np.int64)
        q, catalogue = torch.zeros(len(chosen), model.spec.config.dim), model.item_tower.all_items()
        # Users of similar history lengths batched together: each batch padded to its own
        # longest history only (1.7 x the users per second on MovieLens-100K).
        by_length = np.argsort([len(hist.items[u]) for u in chosen], kind="stable")
        for s in range(0, len(chosen), batch_users):
            rows = by_length[s : s + batch_users]
            q[rows] = query(model.last_state(collate(hist, chosen[rows], model.spec.config.max_history), catalogue))
        return torch.cat([q, torch.ones(len(q), 1)], dim=1).numpy().astype(np.float32)

    def embed_texts(self, texts: Sequence[NewItemText]) -> np.ndarray:
        """(N, D) vectors of new items' texts, made as this run's catalogue's were.

        An item is one whole text, or a mapping of the catalogue's text fields (``text_fields``)
        to its values, some of which may be left out. Given as fields, it gets exactly the
        vector a catalogue item with those values got: each field encoded apart and averaged
        where the run did so (``text.per_field``), else the fields joined as the loader joins
        them. A whole text is encoded whole, which in a per-field run lands near, not exactly
        where, its fields would."""
        if self.new_item_encoder_ is None:
            raise ValueError("this run reads no item text (trained without text, or its config.yaml is missing)")
        return self.new_item_encoder_.embed(texts)

    @property
    def text_fields(self) -> tuple[str, ...]:
        """The catalogue's text fields a new item may be given by (empty: one whole text only)."""
        return () if self.new_item_encoder_ is None else self.new_item_encoder_.fields

    @torch.no_grad()
    def history_vector(
        self,
        items: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, NewItemText] | None = None,
        user_text: str | None = None,
    ) -> np.ndarray:
        """(d + 1,) user vector (as in ``user_vectors``) for an ad-hoc history, oldest item first.

        ``items`` may name items the model has never seen if ``texts`` gives their text (one
        string, or their text fields: :meth:`embed_texts`): such an item is represented by its
        text alone, as ID dropout trained the model to do.
        ``ratings[k]`` is None where the k-th interaction has no rating; in a run on 0/1
        labels without ratings, the ratings are those labels.
        ``user_text`` describes the user as the run's ``users.text`` columns did (joined as the
        loader joins them); only a model trained on users described by text reads it. Given
        a known user's history and text, the vector is that user's in ``user_vectors``.
        """
        _, model = self._model("next_item", ("B", "A"))
        enc = self._adhoc_encoding(model, items, ratings, texts, user_text, fold=False)
        q = model.heads["next_item"].query(enc.state("next_item")[0, -1])
        return np.append(q.numpy(), 1.0).astype(np.float32)

    @torch.no_grad()
    def predict_history(
        self,
        items: Sequence[str],
        targets: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, NewItemText] | None = None,
        user_text: str | None = None,
        as_user: str | None = None,
    ) -> pd.DataFrame:
        """Predicted rating and/or engagement of catalogue items ``targets`` for a user given
        by an ad-hoc history (cold start): columns item_id, rating, ctr, as :meth:`predict`.

        The history is read as in :meth:`history_vector`, as a user the model was not trained
        with: the item autoencoder and its engagement twin read rows folded in from the
        history's ratings and labels, and the kNN views its residuals (every rated catalogue
        item given, ``PolyRecModel.fold_in``); the user-side engagement autoencoder, which
        has no row for a new user, adds nothing. ``as_user``: a known user whose history this
        is (grown by live events): that part reads their own row.
        docs/results/cold-users.md measures what that costs against a known user.
        """
        if not {"rating", "ctr"} & self.tasks:
            raise ValueError("this run predicts neither ratings nor engagement")
        _, model = self._model("rating" if "rating" in self.tasks else "ctr", ("A", "B"))
        if len(targets) == 0:
            raise ValueError("no items to predict: give at least one target")
        wanted = torch.tensor([[self.item_index(t) for t in targets]], dtype=torch.long)
        enc = self._adhoc_encoding(model, items, ratings, texts, user_text, as_user=as_user)
        pred = {name: value[0].numpy().astype(np.float64) for name, value in model.predict_pairs(enc, wanted).items()}
        return pd.DataFrame({"item_id": list(map(str, targets)), **self.clipped(pred)})

    @torch.no_grad()
    def profile_history(
        self,
        items: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        user_text: str | None = None,
        as_user: str | None = None,
    ) -> dict[str, dict[str, float]]:
        """Each attribute's class probabilities for a user given by an ad-hoc history of
        catalogue items (cold start), as :meth:`profile` gives a known user's. The tf-idf
        view reads the history's ratings through its regression; the item autoencoder's
        user-row view has no row for a new user and adds nothing, unless ``as_user`` names
        the known user whose history this is (grown by live events): then it reads theirs."""
        _, model = self._model("profile", ("A", "B"))
        for item in items:
            self.item_index(item)  # the profile head has weights per catalogue item: no new items here
        logits = model.profile_logits(self._adhoc_encoding(model, items, ratings, None, user_text, as_user=as_user))
        return {name: dict(zip(self.attribute_classes[name], map(float, torch.softmax(lg[0], -1)))) for name, lg in logits.items()}

    def _adhoc_encoding(
        self,
        model: PolyRecModel,
        items: Sequence[str],
        ratings: Sequence[float | None] | None,
        texts: Mapping[str, NewItemText] | None,
        user_text: str | None,
        fold: bool = True,
        as_user: str | None = None,
    ) -> UserEncoding:
        """``model``'s encoding of one ad-hoc history (see :meth:`history_vector`) as a user it
        was not trained with (``UNKNOWN_USER``), with what the parts fitted per trained user
        give it (``PolyRecModel.fold_in``) unless ``fold`` is False (the next-item query
        reads none of them). Its ``items`` are catalogue indices, a new item's beyond them.
        ``as_user``: the known user whose history it is, whose own rows the parts that no
        history gives back read (``FoldedUsers.trained_as``)."""
        if len(items) == 0:
            raise ValueError("a history needs at least one item")
        model.eval()
        if ratings is not None and len(ratings) != len(items):
            raise ValueError(f"{len(items)} items but {len(ratings)} ratings")
        if user_text is not None and model.user_text_projection is None:
            raise ValueError("this model reads no user text (its data described no users by text, or text.users was off)")
        spec, texts, keep = model.spec, texts or {}, model.spec.config.max_history
        given = np.array([np.nan if r is None else float(r) for r in (ratings or [None] * len(items))])
        whole = [str(i) for i in items]
        values, items = given[-keep:], whole[-keep:]  # the encoder reads the most recent items
        new = sorted({i for i in items if i not in self._item_index})
        missing = [i for i in new if i not in texts]
        if missing:
            raise KeyError(f"unknown item '{missing[0]}': not in the catalogue, and no text was given to embed it")
        tower = model.item_tower
        # The vectors the history is looked up in: its catalogue items' (not the whole
        # catalogue's, which a large one makes costly), then its new items' from their text.
        taken = sorted({self._item_index[i] for i in items if i in self._item_index})
        vectors = tower(torch.tensor(taken, dtype=torch.long))
        if new:
            if tower.text_proj is None:
                raise ValueError("this model reads no item text (trained with --no-text): new items cannot be embedded")
            embedded = torch.from_numpy(self.embed_texts([texts[i] for i in new]))
            vectors = torch.cat([vectors, tower.norm(tower.text_proj(embedded))])  # text only: no ID vector
        beyond = len(self._item_index)  # the index of every new item: no part reads one by index
        index = [self._item_index.get(i, beyond) for i in items]
        row = {k: r for r, k in enumerate(taken)}
        looked_up = [row[k] if k < beyond else len(taken) + new.index(i) for i, k in zip(items, index)]
        tokens = RatingTokens(tuple(spec.rating_levels), spec.labels_only).encode_values(values)
        labels_only = spec.labels_only  # a run on labels reads no ratings: its values are labels
        batch = _one_history(looked_up, tokens, np.full(len(values), np.nan) if labels_only else values)
        user_vectors = None
        if model.user_text_projection is not None:  # no text reads as a zero vector, as in training
            user_vectors = self._user_text_vector(user_text, model.user_text.shape[1])
        # The item autoencoder's rows read every rated catalogue item given, not only the
        # window (an item beyond the catalogue has no column: ItemAutoencoder.fold_in skips it).
        whole_batch = _one_history([self._item_index.get(i, beyond) for i in whole], np.zeros(len(whole), dtype=np.int64),
                                   np.full(len(whole), np.nan) if labels_only else given, engaged(given, spec))  # fmt: skip
        folded = model.fold_in(whole_batch) if fold else None
        if folded is not None and as_user is not None:
            folded.trained_as = torch.tensor([self.user_index(as_user)])
        enc = model.encode(batch, vectors, user_vectors, folded)
        enc.items = torch.tensor([index])  # what the parts reading items by index see (the profile head's)
        return enc

    def _user_text_vector(self, user_text: str | None, width: int) -> torch.Tensor:
        """(1, D) the text vector of an ad-hoc user, as the run encoded its users' texts:
        zeros where there is none (empty, or only spaces)."""
        if user_text is None or not user_text.strip():
            return torch.zeros(1, width)
        return torch.from_numpy(self.embed_texts([user_text])).float()

    def recommend_history(
        self,
        items: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, NewItemText] | None = None,
        k: int = 10,
        exclude_seen: bool | None = None,
        user_text: str | None = None,
        popularity_penalty: float = 0.0,
    ) -> pd.DataFrame:
        """Top ``k`` items for an ad-hoc history (cold start): columns item_id, text, score.
        ``user_text``: as in :meth:`history_vector`. With an item prior, its part reads the
        history's catalogue items (new ones have none). ``popularity_penalty``: as in
        :meth:`recommend`."""
        scores = self.reranked(self.history_scores(items, ratings, texts, user_text)[None], popularity_penalty)[0]
        if self.excludes_seen(exclude_seen):
            scores[[self._item_index[str(i)] for i in items if str(i) in self._item_index]] = -np.inf
        return self.top_items(scores, k)

    def history_scores(
        self,
        items: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, NewItemText] | None = None,
        user_text: str | None = None,
        item_vectors: np.ndarray | None = None,
    ) -> np.ndarray:
        """(I,) the catalogue's next-item scores for an ad-hoc history, as
        :meth:`recommend_history` ranks them (its own items included). With an item prior,
        its part reads the history's catalogue items (new ones have none). ``item_vectors``:
        :meth:`item_vectors`, where a caller scoring many histories has them already."""
        vectors = self.item_vectors() if item_vectors is None else item_vectors
        scores = vectors @ self.history_vector(items, ratings, texts, user_text)
        _, model = self._model("next_item", ("B", "A"))
        if model.priors():
            keep = list(items)[-model.spec.config.max_history :]  # what the model reads
            index = torch.tensor([[self._item_index.get(str(i), 0) for i in keep]])
            known = torch.tensor([[str(i) in self._item_index for i in keep]])  # new items have no prior part
            with torch.no_grad():
                blended = model.blend_priors(torch.from_numpy(scores)[None], index, known, torch.tensor([len(keep) - 1]))
            scores = blended[0].numpy()
        return scores

    def explain_history(
        self,
        items: Sequence[str],
        item_id: str,
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, NewItemText] | None = None,
        user_text: str | None = None,
        top: int = 5,
        occlusion: bool = False,
    ) -> Explanation:
        """:meth:`explain` for a user given by an ad-hoc history, read as in
        :meth:`recommend_history`; its ``user_id`` is None."""
        return explain_history_score(self, items, item_id, ratings, texts, user_text, top, occlusion)

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose vectors are closest (cosine) to ``item_id``'s, itself excluded."""
        e = self.item_vectors()[:, :-1]
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        i = self.item_index(item_id)
        scores = e @ e[i]
        scores[i] = -np.inf
        return self.top_items(scores, k)

    def interests_history(self, items: Sequence[str], ratings: Sequence[float | None] | None = None, top: int = 5) -> list[tuple[str, float]]:
        """:meth:`interests` of an ad-hoc history of catalogue items: an item is liked where its
        rating clears the run's engagement threshold (its 0/1 label in a run on labels)."""
        spec = next(iter(self.models_.values())).spec  # every model of a run reads its data alike
        index = np.array([self.item_index(i) for i in items], dtype=np.int64)
        values = np.array([np.nan if r is None else float(r) for r in (ratings or [None] * len(items))])
        return category_shares(self.items_, index, engaged(values, spec), top)

    def interests(self, user_id: str, top: int = 5) -> list[tuple[str, float]]:
        """The categories a user engages with most (``interests.category_shares``)."""
        p, _ = self._model("next_item", ("B", "A"))
        u = self.user_index(user_id)
        hist = self._histories[p]
        return category_shares(self.items_, hist.items[u], hist.labels[u], top)


def engaged(values: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The ctr labels of an ad-hoc history's values (NaN: none), as the run's data gave its
    own: the values themselves in a run on 0/1 labels, else rating ≥ the run's threshold
    (``data.ctr_threshold``, or the data's own, ``Dataset.ctr_threshold``)."""
    threshold = spec.ctr_threshold
    if spec.labels_only:
        return values.astype(np.float64)
    if threshold is None and spec.rating_range is not None:
        threshold = scale_ctr_threshold(*spec.rating_range)
    if threshold is None:
        return np.full(len(values), np.nan)
    return np.where(np.isnan(values), np.nan, (values >= threshold).astype(np.float64))


def _one_history(items: Sequence[int], tokens: np.ndarray, ratings: np.ndarray, labels: np.ndarray | None = None) -> HistoryBatch:
    """One ad-hoc history as a batch of one, its user one the model was not trained with."""
    values = torch.from_numpy(np.asarray(ratings, dtype=np.float32))[None]
    return HistoryBatch(
        users=torch.tensor([UNKNOWN_USER]),
        items=torch.tensor([list(items)], dtype=torch.long),
        tokens=torch.from_numpy(tokens)[None],
        ratings=values,
        labels=torch.full_like(values, float("nan")) if labels is None else torch.from_numpy(labels).float()[None],
        mask=torch.ones(1, len(items), dtype=torch.bool),
        lengths=torch.tensor([len(items)]),
    )


def load(path: str | Path) -> RecommenderBase:
    """Load a run folder: polyrec's model, a baseline's (``--model``) or an ensemble."""
    from .run_loader import load_run

    return load_run(path)
