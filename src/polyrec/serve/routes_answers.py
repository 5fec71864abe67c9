"""The routes of `polyrec serve` about one user: predictions, profiles and explanations, of a
known user (their history grown by live events where there are new ones) or of an ad-hoc
history, and the history itself. They run in the thread pool (plain ``def``), never on the
event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Query

from . import schemas as S
from .service import Service, UserId, able, answered, errors, history_parts, known_item, known_user
from .state import LoadedRun

if TYPE_CHECKING:
    from ..explain import Explanation


def routes(service: Service) -> APIRouter:
    """``/users/{id}/explain``, ``/explain``, ``/predict``, ``/predict/history``, ``/users/{id}/profile``,
    ``/profile``, ``/users/{id}/history``."""
    router = APIRouter()
    holder = service.holder

    @router.get(
        "/users/{user_id}/explain",
        response_model=S.Explanation,
        responses=errors(404, 422, 501),
        summary="Why an item scores as it does for a known user",
        description=(
            "The next-item score taken apart (its parts sum to it), and the history items behind the priors' parts. "
            "With `--live-events`, of the user's history grown by their events since the run's data."
        ),
    )
    def explain(
        user_id: UserId,
        item_id: Annotated[str, Query(min_length=1, max_length=128, description="the item to explain")],
        top: Annotated[int, Query(ge=0, le=S.MAX_K, description="history items to name")] = 5,
        occlusion: Annotated[bool, Query(description="also score the history with each item left out (one model pass per item)")] = False,
    ) -> S.Explanation:
        run = holder.current
        history = service.grown(run, user_id, "explain_history")
        if history is None:
            known_user(run, user_id)
        known_item(run, item_id)
        if history is not None:
            return explanation(answered(lambda: run.rec.explain_history(  # type: ignore[attr-defined]
                history.items, item_id, history.values, None, history.user_text, top, occlusion
            )), user_id, history.new_events)  # fmt: skip
        able(run, "explain", "does not explain its scores (polyrec's own runs do)")
        return explanation(answered(lambda: run.rec.explain(user_id, item_id, top, occlusion)))  # e.g. no next-item model: 422

    @router.post(
        "/explain",
        response_model=S.Explanation,
        responses=errors(404, 413, 422, 501),
        summary="Why an item scores as it does for an ad-hoc history (cold start)",
        description=(
            "As `GET /users/{user_id}/explain` for a user the model has never seen, given by their history (read as "
            "`POST /recommend` reads it: new items with their text, which no prior reads)."
        ),
    )
    def explain_history(body: S.ExplainHistoryRequest) -> S.Explanation:
        run = holder.current
        able(run, "explain_history", "does not explain its scores (polyrec's own runs do)")
        known_item(run, body.item_id)
        items, ratings, texts = history_parts(run, body)
        return explanation(answered(lambda: run.rec.explain_history(  # type: ignore[attr-defined]
            items, body.item_id, ratings, texts, body.user_text, body.top, body.occlusion
        )))  # fmt: skip

    def explanation(e: Explanation, user_id: str | None = None, new_events: int | None = None) -> S.Explanation:
        """The answer for ``e``; ``user_id`` names the user of a grown history (``e`` has none)."""
        because = [S.Because(**row) for row in e.because.to_dict(orient="records")]
        without = [S.Without(**row) for row in e.without.to_dict(orient="records")]
        return S.Explanation(
            user_id=user_id or e.user_id, item_id=e.item_id, score=e.score, parts=e.parts, because=because, without=without,
            new_events=new_events,
        )  # fmt: skip

    # ------------------------------------------------------------ predictions and profiles

    @router.post(
        "/predict",
        response_model=S.Predictions,
        responses=errors(404, 413, 422, 501),
        summary="Predicted rating and engagement probability for (user, item) pairs",
        description=(
            "With `--live-events`, a user with events since the run's data is predicted from their history grown by "
            "them, as `POST /predict/history` reads a history (`new_events` counts them)."
        ),
    )
    def predict(body: S.PredictRequest) -> S.Predictions:
        run, pairs = holder.current, body.pairs
        by_user: dict[str, list[int]] = {}  # each user's pairs, by position
        for k, pair in enumerate(pairs):
            by_user.setdefault(pair.user_id, []).append(k)
        histories = {user: service.grown(run, user, "predict_history") for user in by_user}
        for pair in pairs:
            if histories[pair.user_id] is None:
                known_user(run, pair.user_id)
            known_item(run, pair.item_id)
        if not {"rating", "ctr"} & set(getattr(run.rec, "tasks", {"rating", "ctr"})):
            raise HTTPException(501, f"the run {run.run} predicts neither ratings nor engagement (its tasks: {', '.join(sorted(run.rec.tasks))})")
        answers: list[S.Prediction] = [None] * len(pairs)  # type: ignore[list-item]  # each filled below
        plain = [k for k, p in enumerate(pairs) if histories[p.user_id] is None]
        if plain:
            pred = run.rec.predict([pairs[k].user_id for k in plain], [pairs[k].item_id for k in plain])
            for k, answer in zip(plain, predictions(pred, [(pairs[k].user_id, pairs[k].item_id) for k in plain]).predictions):
                answers[k] = answer
        for user, history in histories.items():
            if history is not None:
                items = [pairs[k].item_id for k in by_user[user]]
                pred = answered(lambda: run.rec.predict_history(  # type: ignore[attr-defined]
                    history.items, items, history.values, None, history.user_text, as_user=history.as_user  # noqa: B023
                ))  # fmt: skip
                for k, answer in zip(by_user[user], predictions(pred, [(user, item) for item in items], history.new_events).predictions):
                    answers[k] = answer
        return S.Predictions(predictions=answers)

    @router.post(
        "/predict/history",
        response_model=S.Predictions,
        responses=errors(404, 413, 422, 501),
        summary="Predicted rating and engagement probability of items for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen, given by their history as in `POST /recommend`. The model reads "
            "the history; the parts fitted per trained user are folded in from it where they can be, and the others "
            "add nothing (README, \"Users the model has never seen\")."
        ),
    )
    def predict_history(body: S.PredictHistoryRequest) -> S.Predictions:
        run = holder.current
        able(run, "predict_history", "cannot predict for an ad-hoc history")
        for item_id in body.items:
            known_item(run, item_id)
        items, ratings, texts = history_parts(run, body)
        pred = answered(lambda: run.rec.predict_history(items, body.items, ratings, texts, body.user_text))  # type: ignore[attr-defined]
        return predictions(pred, [(None, item_id) for item_id in body.items])

    def predictions(pred: pd.DataFrame, pairs: list[tuple[str | None, str]], new_events: int | None = None) -> S.Predictions:
        """The answer for ``pairs`` (user id or None, item id) from a frame of their predictions."""
        rating = pred["rating"].tolist() if "rating" in pred else [None] * len(pred)
        ctr = pred["ctr"].tolist() if "ctr" in pred else [None] * len(pred)
        return S.Predictions(predictions=[
            S.Prediction(user_id=u, item_id=i, rating=r, ctr=c, new_events=new_events) for (u, i), r, c in zip(pairs, rating, ctr)
        ])  # fmt: skip

    @router.get(
        "/users/{user_id}/profile",
        response_model=S.Profile,
        responses=errors(404, 422),
        summary="A known user's predicted attributes, top interests and a readable summary",
        description=(
            "With `--live-events`, of the user's history grown by their events since the run's data, as "
            "`POST /profile` reads a history (`new_events` counts them)."
        ),
    )
    def profile(user_id: UserId) -> S.Profile:
        run = holder.current
        history = service.grown(run, user_id, "profile_history")
        if history is not None:
            return history_profile(run, history.items, history.values, history.user_text, user_id, history.new_events, history.as_user)
        known_user(run, user_id)
        try:
            probabilities = run.rec.profile(user_id)
        except ValueError:  # the run learned no profile task: interests only
            probabilities = {}
        interests = run.rec.interests(user_id) if hasattr(run.rec, "interests") else []
        return profile_answer(user_id, probabilities, interests)

    @router.post(
        "/profile",
        response_model=S.Profile,
        responses=errors(404, 413, 422, 501),
        summary="Predicted attributes, top interests and a readable summary for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen, given by their history of catalogue items (with ratings where "
            "known). The tf-idf profile view reads the history through its regression; the autoencoder's user-row "
            "view has no row for a new user and adds nothing."
        ),
    )
    def profile_history(body: S.HistoryRequest) -> S.Profile:
        run = holder.current
        able(run, "profile_history", "cannot profile an ad-hoc history")
        items, ratings, _ = history_parts(run, body)
        for item_id in items:
            known_item(run, item_id)
        return history_profile(run, items, ratings, body.user_text)

    def history_profile(
        run: LoadedRun, items: list[str], ratings: list[float | None], user_text: str | None,
        user_id: str | None = None, new_events: int | None = None, as_user: str | None = None,
    ) -> S.Profile:  # fmt: skip
        """The profile of a history of catalogue items (``POST /profile``'s, or a user's grown by
        live events: ``as_user`` where the run knows them)."""
        probabilities = {}  # a run without the profile task: interests only, as for a known user
        if "profile" in getattr(run.rec, "tasks", {"profile"}):
            probabilities = answered(lambda: run.rec.profile_history(items, ratings, user_text, as_user=as_user))  # type: ignore[attr-defined]
        interests = answered(lambda: run.rec.interests_history(items, ratings))  # type: ignore[attr-defined]
        return profile_answer(user_id, probabilities, interests, new_events)

    @router.get(
        "/users/{user_id}/history",
        response_model=S.UserHistory,
        responses=errors(404, 422, 501),
        summary="A known user's history as the service reads it",
        description=(
            "The items the model reads for the user, oldest first, with their ratings or labels. With "
            "`--live-events`, grown by the user's events since the run's data, which are marked `new`."
        ),
    )
    def user_history(
        user_id: UserId,
        limit: Annotated[int, Query(ge=1, le=S.MAX_HISTORY, description="the latest items to give")] = 50,
    ) -> S.UserHistory:
        run = holder.current
        able(run, "history_of", "keeps no histories (polyrec's own runs and exports do)")
        history = service.grown(run, user_id, "history_of")
        if history is None:
            known_user(run, user_id)
            items, values = run.rec.history_of(user_id)
        else:
            items, values = history.items, history.values
        first_new = len(items) - (0 if history is None else history.new_events)
        entries = [
            S.HistoryEntry(item_id=i, text=run.item_texts[run.item_index[i]], value=v, new=k >= first_new)
            for k, (i, v) in enumerate(zip(items, values)) if k >= len(items) - limit
        ]  # fmt: skip
        return S.UserHistory(
            user_id=user_id, items=entries, total=len(items), new_events=None if history is None else history.new_events
        )

    def profile_answer(
        user_id: str | None, probabilities: dict[str, dict[str, float]], interests: list[tuple[str, float]],
        new_events: int | None = None,
    ) -> S.Profile:
        attributes = {
            name: S.Attribute(prediction=max(p, key=p.get), probabilities=p) for name, p in probabilities.items() if p
        }
        return S.Profile(
            user_id=user_id,
            attributes=attributes,
            interests=[S.Interest(name=n, share=s) for n, s in interests],
            summary=summary(attributes, interests),
            new_events=new_events,
        )

    return router


def summary(attributes: dict[str, S.Attribute], interests: list[tuple[str, float]]) -> str:
    """One or two readable sentences, e.g. "Likely gender M (69%), age 25-34 (41%). Mostly Drama (45%)."."""
    parts = [f"{name} {a.prediction} ({a.probabilities[a.prediction]:.0%})" for name, a in attributes.items()]
    text = f"Likely {', '.join(parts)}." if parts else "No attributes predicted."
    if interests:
        text += " Mostly " + ", ".join(f"{name} ({share:.0%})" for name, share in interests[:3]) + "."
    return text

