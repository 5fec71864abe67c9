"""Request and response bodies of the service; their limits are part of the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from .events import EVENT_TYPES

MAX_K = 100  # items per answer
MAX_HISTORY = 1000  # items in an ad-hoc history (the model reads its most recent max_history)
MAX_PAIRS = 1000  # (user, item) pairs per /predict
MAX_EVENTS = 1000  # events per POST /events
MAX_TEXT = 2000  # characters of a new item's text, or of each of its text fields
MAX_FIELDS = 32  # text fields of a new item
MAX_BODY = 1 << 20  # bytes per request body (413 above)

Id = Annotated[str, Field(min_length=1, max_length=128, description="an id as in the training data")]
FieldName = Annotated[str, Field(min_length=1, max_length=128)]
FieldText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"number of items, 1 to {MAX_K}")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class Error(BaseModel):
    detail: str = Field(description="what was wrong with the request, in one sentence")
    errors: list[dict] | None = Field(None, description="every field error (validation failures only)")


class ScoredItem(BaseModel):
    item_id: str
    text: str
    score: float = Field(description="next-item score (recommendations) or cosine similarity (similar items)")
    item_type: str | None = None


# Part of a known user's answer under `polyrec serve --live-events` (live.py); null where none were read.
NewEvents = Field(None, description="with live events: how many of the user's events since the run's data were read (null: none)")


class Recommendations(BaseModel):
    user_id: str | None = None
    items: list[ScoredItem]
    new_events: int | None = NewEvents


class HistoryItem(Strict):
    item_id: Id
    rating: float | None = Field(None, allow_inf_nan=False, description="the user's rating, if any (its 0/1 label in a run on labels without ratings)")
    text: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT, description="the item's text; needed only for items the model has never seen"
    )
    fields: dict[FieldName, FieldText] | None = Field(
        None,
        min_length=1,
        max_length=MAX_FIELDS,
        description=(
            "instead of `text`: the item's text fields by name, as the catalogue's items file has them "
            "(e.g. title, category); the item is then embedded exactly as a catalogue item with these values was"
        ),
    )

    @model_validator(mode="after")
    def _one_text(self) -> "HistoryItem":
        if self.text is not None and self.fields is not None:
            raise ValueError("give a new item's `text` or its `fields`, not both")
        return self

    @property
    def new_item_text(self) -> str | dict[str, str] | None:
        return self.text if self.fields is None else self.fields


class HistoryRequest(Strict):
    """A user the model has never seen, given by their history."""

    history: list[HistoryItem] = Field(
        min_length=1, max_length=MAX_HISTORY, description=f"the user's items, oldest first (1 to {MAX_HISTORY})"
    )
    user_text: str | None = Field(
        None,
        max_length=MAX_TEXT,
        description="the user's own description, as the run's users.text columns read; only for runs trained on it",
    )


class RecommendRequest(HistoryRequest):
    k: K = 10
    exclude_seen: bool | None = Field(
        None, description="leave out the history's own items (default: yes, unless the run's users take items again)"
    )
    item_type: str | None = Field(None, max_length=128, description="only items of this type")
    popularity_penalty: float = Field(
        0.0, ge=0, le=10, description="re-rank towards less-taken items (0: the model's ranking; README, fairness)"
    )


class PredictHistoryRequest(HistoryRequest):
    items: list[Id] = Field(min_length=1, max_length=MAX_PAIRS, description=f"1 to {MAX_PAIRS} catalogue items to predict")


class ExplainHistoryRequest(HistoryRequest):
    item_id: Id = Field(description="the catalogue item to explain")
    top: int = Field(5, ge=0, le=MAX_K, description="history items to name")
    occlusion: bool = Field(False, description="also score the history with each item left out (one model pass per item)")


class Pair(Strict):
    user_id: Id
    item_id: Id


class PredictRequest(Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS, description=f"1 to {MAX_PAIRS} (user, item) pairs")


class Prediction(BaseModel):
    user_id: str | None = Field(None, description="None for a user given by their history")
    item_id: str
    rating: float | None = Field(None, description="predicted rating (None where the run learned no ratings)")
    ctr: float | None = Field(None, description="probability that the user engages with the item")
    new_events: int | None = NewEvents


class Predictions(BaseModel):
    predictions: list[Prediction]


class HistoryEntry(BaseModel):
    item_id: str
    text: str
    value: float | None = Field(None, description="its rating, or its 0/1 label in a run on labels (null: none)")
    new: bool = Field(description="true: a live event since the run's data")


class UserHistory(BaseModel):
    user_id: str
    items: list[HistoryEntry] = Field(description="the latest `limit` items the model reads for the user, oldest first")
    total: int = Field(description="the whole history's length")
    new_events: int | None = NewEvents


class Attribute(BaseModel):
    prediction: str = Field(description="the most probable class")
    probabilities: dict[str, float]


class Interest(BaseModel):
    name: str
    share: float = Field(description="share of the user's liked items in this category")


class Profile(BaseModel):
    user_id: str | None = Field(None, description="None for a user given by their history")
    attributes: dict[str, Attribute]
    interests: list[Interest]
    summary: str
    new_events: int | None = NewEvents


class Because(BaseModel):
    item_id: str
    text: str
    prior: str = Field(description="the prior part it adds to: item_prior (EASE) or transition_prior")
    steps_back: int = Field(description="how many items before the end of the history it was taken (0: the latest)")
    pull: float = Field(description="what it adds to its prior's term before that term is centred on the user's average item")


class Without(BaseModel):
    item_id: str
    text: str
    steps_back: int
    change: float = Field(description="the score less the score with this item left out of the history")


class Explanation(BaseModel):
    user_id: str | None = Field(description="the user; null for an ad-hoc history")
    item_id: str
    score: float = Field(description="the item's next-item score for the user, as recommendations give it")
    parts: dict[str, float] = Field(
        description="the score's parts, which sum to it: model (the user vector's match) and each prior's, each "
        "how far above the user's average item the item stands by that view"
    )
    because: list[Because] = Field(description="the history items that add most to the priors' parts, largest first")
    without: list[Without] = Field(description="with occlusion=true: the history items whose absence moves the score most")
    new_events: int | None = NewEvents


class EventIn(Strict):
    user_id: Id
    item_id: Id
    event_type: Literal[EVENT_TYPES] = Field(description="what the user did; 'rating' needs a rating")  # type: ignore[valid-type]
    rating: float | None = Field(None, allow_inf_nan=False)
    time: datetime | None = Field(None, description="when it happened (ISO 8601 or seconds since 1970); default: now")
    event_id: str | None = Field(
        None, min_length=1, max_length=128, description="unique id; re-posting an id stores nothing new (safe retries)"
    )

    @model_validator(mode="after")
    def _rating_events_carry_a_rating(self) -> "EventIn":
        if self.event_type == "rating" and self.rating is None:
            raise ValueError("an event of type 'rating' needs a rating")
        return self


# POST /events takes one event (a JSON object) or several (a JSON array). The discriminator
# picks the branch by shape, so a bad body gets the errors of that branch only.
EventsIn = Annotated[
    Annotated[EventIn, Tag("event")]
    | Annotated[list[EventIn], Tag("events"), Field(min_length=1, max_length=MAX_EVENTS)],
    Discriminator(lambda body: "events" if isinstance(body, list) else "event"),
]


class Stored(BaseModel):
    event_ids: list[str] = Field(description="the id of each posted event, in order")
    stored: int = Field(description="events newly stored (re-posted ids are not stored twice)")


class Count(BaseModel):
    count: int


class ReloadRequest(Strict):
    run: str = Field(min_length=1, max_length=1024, description="a run folder written by `polyrec run`")


class IndexInfo(BaseModel):
    kind: str = Field(description="'exact' (IndexFlatIP) or 'ivf' (IndexIVFFlat); 'blend' (the whole catalogue scored exactly: a run whose scores blend in item-to-item priors); or 'none' (run type without vectors)")
    items: int
    nlist: int | None = None
    nprobe: int | None = None
    recall_at_10: float = Field(description="against exact search, on the known users' vectors")


class Health(BaseModel):
    status: Literal["ok"]
    run: str
    users: int
    items: int
    item_types: list[str]
    index: IndexInfo
    loaded_at: datetime
    load_seconds: float
    events_db: str
    live_events: bool = False
