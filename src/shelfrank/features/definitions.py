"""The feature declarations: every feature shelfrank computes, declared once.

A feature names the *inputs* it reads and a *formula* over them. Inputs are of two kinds:

- counters over the event log, kept per key of a *stream* (user, item, user x category, ...):
  an exponentially decayed sum, a plain sum, or the time of the last matching event;
- attributes known at request time: the item's price and stock at t, the user's profile,
  the context (time, surface, location).

Offline (``offline.py``, DuckDB SQL with ASOF joins) and online (``online.py``, in-memory
state) only differ in how they *read the inputs at time t*; the formulas below turn inputs
into feature values for both, so the two cannot drift apart. ``FEATURES`` is the list a
reader scans: scope, source events, aggregation, half-life, default, description.

Decay: a decayed counter at time t is ``sum_i w_i * exp(-(t - t_i) / tau)`` over matching
events with ``t_i < t``, where ``tau = half_life / ln 2``. It is exact online with O(1)
state per key and a sum of exponentials in SQL (see docs/features.md).

A third kind of input is a *taste vector*: the decayed, funnel-weighted sum of the embedding
vectors (``ItemVectors``, fitted by models/embeddings.py on the training window) of the items a
user (or a session) engaged with before t. The embedding-similarity features are its cosine
with the item's vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np

Scope = Literal["user", "item", "cross", "context", "session", "collection"]
Aggregate = Literal["decayed_sum", "sum", "last_time"]
Weight = Literal["one", "examination", "log_price"]
Kind = Literal["numeric", "categorical", "flag"]

ENGAGEMENT = ("click", "add_to_cart", "purchase")
DAY_SECONDS = 86_400.0
HOUR_SECONDS = 3_600.0
HALF_LIVES_DAYS = (1.0, 7.0, 30.0)  # short, medium and long memory for counts
AFFINITY_HALF_LIFE_DAYS = 30.0  # shares and price level: slow-moving tastes
RATE_HALF_LIFE_DAYS = 30.0  # item rates need enough impressions to be stable
RECENCY_CAP_HOURS = 720.0  # 30 days: "long ago" and "never" look the same to the model

# Streams: the keys a counter is kept per. Offline they are the GROUP/PARTITION BY columns of
# the event log (joined with the item's attributes); online, where the state lives.
STREAM_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "item": ("item_id",),
    "user_vertical": ("user_id", "vertical"),
    "user_category": ("user_id", "category_id"),
    "user_brand": ("user_id", "brand"),
    "user_item": ("user_id", "item_id"),
    "session": ("user_id", "session_id"),
    "collection": ("collection_id",),
    "user_collection": ("user_id", "collection_id"),
}
# The item attribute each user x attribute stream is keyed by.
STREAM_ITEM_ATTRIBUTE: dict[str, str] = {
    "user_vertical": "vertical",
    "user_category": "category_id",
    "user_brand": "brand",
}

# Attribute inputs: what offline and online both provide besides counters.
ATTRIBUTE_INPUTS = (
    "context.t",  # the example's time, seconds since the epoch (UTC)
    "context.surface",  # raw string; encoded by the formula through the vocabulary
    "context.location",
    "user.location",
    "user.subscription",
    "item.price",  # the price at t: the latest inventory price before t, else the catalog price
    "item.category_median_price",  # median catalog price of the item's category
    "item.has_image",
    "item.created_t",  # seconds since the epoch
    "item.in_stock",  # at t: the latest inventory stock update before t, else the catalog's
    "collection.source",  # curated / rules / ml from the collections table ("" if not listed)
    "collection.size",  # number of explicit items (NaN for rule collections and unlisted ones)
)
COLLECTION_SOURCES = ("curated", "ml", "rules")  # fixed codes: 1, 2, 3
ITEM_VECTOR = "item.vector"  # the item's embedding, float [rows, dim]; zeros for items without one

# Taste vectors: how much one engagement says about taste (the embeddings' defaults), and memory.
TASTE_WEIGHTS: tuple[tuple[str, float], ...] = (("click", 1.0), ("add_to_cart", 3.0), ("purchase", 5.0))
TASTE_HALF_LIFE_DAYS = 7.0  # tastes for *what kind of item* move faster than category shares
TASTE_STREAMS = ("user", "session")


@dataclass(frozen=True)
class Counter:
    """An aggregate over the events of one stream, read at time t (events strictly before t)."""

    stream: str
    aggregate: Aggregate
    event_types: tuple[str, ...]
    weight: Weight = "one"
    half_life_days: float | None = None  # decayed_sum only

    @cached_property
    def name(self) -> str:
        """The input name, e.g. ``item.click@7d`` or ``user_category.last_engagement``."""
        events = "engagement" if self.event_types == ENGAGEMENT else "+".join(self.event_types)
        weight = "" if self.weight == "one" else f"*{self.weight}"
        if self.aggregate == "decayed_sum":
            return f"{self.stream}.{events}{weight}@{self.half_life_days:g}d"
        if self.aggregate == "sum":
            return f"{self.stream}.{events}{weight}@all"
        return f"{self.stream}.last_{events}"

    @property
    def decay_rate(self) -> float:
        """1 / tau in 1/seconds; 0 for counters that do not decay."""
        if self.aggregate != "decayed_sum":
            return 0.0
        assert self.half_life_days is not None
        return math.log(2.0) / (self.half_life_days * DAY_SECONDS)

    def __post_init__(self) -> None:
        if self.stream not in STREAM_KEYS:
            raise ValueError(f"unknown stream {self.stream!r}")
        if (self.aggregate == "decayed_sum") != (self.half_life_days is not None):
            raise ValueError(f"{self.stream}: half_life_days is for decayed_sum counters only")


@dataclass(frozen=True)
class TasteVector:
    """A running sum of item embedding vectors per stream key, read at t (events strictly before t).

    ``sum_i w(type_i) * exp(-(t - t_i) / tau) * vector(item_i)`` over the stream's engagement
    events; without a half-life, a plain sum (the session's). Only its direction matters to the
    features (they take a cosine), so offline and online may anchor the decay at any time.
    """

    stream: str  # "user" (all the user's history) or "session" (the current session)
    half_life_days: float | None = None
    weights: tuple[tuple[str, float], ...] = TASTE_WEIGHTS

    def __post_init__(self) -> None:
        if self.stream not in TASTE_STREAMS:
            raise ValueError(f"taste vectors are kept per {TASTE_STREAMS}, not {self.stream!r}")

    @property
    def name(self) -> str:
        memory = f"{self.half_life_days:g}d" if self.half_life_days else "all"
        return f"{self.stream}.taste@{memory}"

    @property
    def event_types(self) -> tuple[str, ...]:
        return tuple(e for e, w in self.weights if w > 0)

    @property
    def decay_rate(self) -> float:
        return 0.0 if not self.half_life_days else math.log(2.0) / (self.half_life_days * DAY_SECONDS)


@dataclass(frozen=True, eq=False)
class ItemVectors:
    """Item embedding vectors by item id: the input the embedding-similarity features read.

    ``item_ids`` sorted (the catalog's index order), ``vectors`` one row per id (L2-normalized,
    as ``ItemEmbeddings.vectors_``). Items not listed have no vector (their similarity is NaN).
    """

    item_ids: np.ndarray
    vectors: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.item_ids, dtype=str)
        vectors = np.asarray(self.vectors, dtype=np.float64)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"item vectors must be [n_items, dim] with one row per item id; got {vectors.shape} "
                             f"for {len(ids)} ids")
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            raise ValueError("item_ids must be unique and sorted (the catalog index order: items by item_id)")
        object.__setattr__(self, "item_ids", ids)
        object.__setattr__(self, "vectors", vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 for ids without a vector; a binary search, vectorized."""
        ids = np.asarray(item_ids, dtype=str)
        if len(self.item_ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.item_ids, ids), len(self.item_ids) - 1)
        return np.where(self.item_ids[pos] == ids, pos, -1).astype(np.int64)

    def at_rows(self, rows: np.ndarray) -> np.ndarray:
        """float64 [len(rows), dim]; rows < 0 give zero vectors."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.vectors) == 0:
            return np.zeros((len(rows), self.dim))
        out = self.vectors[np.maximum(rows, 0)]
        out[rows < 0] = 0.0
        return out


Inputs = Mapping[str, np.ndarray]
Formula = Callable[[Inputs, "Vocabularies"], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One feature: what it means, where it comes from, and how it is computed from inputs."""

    name: str
    scope: Scope
    aggregation: str  # a short human label: "decayed count", "share", "smoothed rate", ...
    description: str
    inputs: tuple[str, ...]  # input names (counter names or ATTRIBUTE_INPUTS)
    formula: Formula
    counters: tuple[Counter, ...] = ()
    events: tuple[str, ...] = ()
    half_life_days: float | None = None
    default: float = 0.0  # the value when the inputs say nothing (unknown user / item, no events)
    kind: Kind = "numeric"
    value_type: Literal["float"] = "float"
    tastes: tuple[TasteVector, ...] = ()  # taste vectors read (with ITEM_VECTOR)

    def compute(self, inputs: Inputs, vocabularies: Vocabularies) -> np.ndarray:
        values = np.asarray(self.formula(inputs, vocabularies), dtype=np.float64)
        if not math.isnan(self.default):
            values = np.where(np.isnan(values), self.default, values)
        return values


@dataclass(frozen=True)
class Vocabularies:
    """Categorical codes: 1..n for the known values in sorted order, 0 for unknown or missing.

    Fitted on the training data (``Vocabularies.fit``) and saved with a model, so that offline
    and online encode the same string to the same code.
    """

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        """value -> code per vocabulary, for the short inputs of a request (one user, one context)."""
        return {name: {v: i + 1 for i, v in enumerate(vs) if v != ""} for name, vs in self.values.items()
                if all(a < b for a, b in zip(vs, vs[1:], strict=False))}  # sorted, no repeats: as the search

    def encode(self, name: str, raw: np.ndarray) -> np.ndarray:
        """Codes for an array of strings ("" = missing): a dict lookup for a few values (a request's),
        a binary search for many (training examples)."""
        if len(raw) <= 4 and name in self._codes:
            codes = self._codes[name]
            return np.array([codes.get(str(v), 0) for v in raw], dtype=np.float64)
        known = np.asarray(self.values.get(name, ()), dtype=str)
        strings = np.asarray(raw, dtype=str)
        codes = np.zeros(len(strings), dtype=np.float64)
        if len(known) == 0 or len(strings) == 0:
            return codes
        pos = np.minimum(np.searchsorted(known, strings), len(known) - 1)
        hit = (known[pos] == strings) & (strings != "")
        codes[hit] = pos[hit] + 1
        return codes

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.values.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, list[str]]) -> Vocabularies:
        return cls({k: tuple(sorted(v)) for k, v in data.items()})


# --- building blocks: each returns (counters, formula) for one family ---------------------

def _counter(stream: str, aggregate: Aggregate, events: tuple[str, ...], weight: Weight = "one",
             half_life_days: float | None = None) -> Counter:
    return Counter(stream, aggregate, events, weight, half_life_days)


def decayed_count(name: str, scope: Scope, stream: str, event: str, half_life_days: float,
                  description: str) -> Feature:
    c = _counter(stream, "decayed_sum", (event,), half_life_days=half_life_days)
    return Feature(name, scope, "decayed count", description, (c.name,), lambda x, v: x[c.name],
                   counters=(c,), events=(event,), half_life_days=half_life_days)


def hours_since(name: str, scope: Scope, stream: str, events: tuple[str, ...], description: str) -> Feature:
    c = _counter(stream, "last_time", events)

    def formula(x: Inputs, v: Vocabularies) -> np.ndarray:
        hours = (x["context.t"] - x[c.name]) / HOUR_SECONDS  # NaN when never: becomes the cap
        return np.minimum(hours, RECENCY_CAP_HOURS)

    return Feature(name, scope, "hours since last (capped)", description, (c.name, "context.t"), formula,
                   counters=(c,), events=events, default=RECENCY_CAP_HOURS)


def engagement_share(name: str, stream: str, description: str) -> Feature:
    hl = AFFINITY_HALF_LIFE_DAYS
    part = _counter(stream, "decayed_sum", ENGAGEMENT, half_life_days=hl)
    whole = _counter("user", "decayed_sum", ENGAGEMENT, half_life_days=hl)

    def formula(x: Inputs, v: Vocabularies) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x[whole.name] > 0, x[part.name] / x[whole.name], 0.0)

    return Feature(name, "cross", "decayed share", description, (part.name, whole.name), formula,
                   counters=(part, whole), events=ENGAGEMENT, half_life_days=hl)


_PRICE_EVENTS = ("add_to_cart", "purchase")
_PRICE_SUM = _counter("user", "decayed_sum", _PRICE_EVENTS, "log_price", AFFINITY_HALF_LIFE_DAYS)
_PRICE_WEIGHT = _counter("user", "decayed_sum", _PRICE_EVENTS, "one", AFFINITY_HALF_LIFE_DAYS)


def _user_log_price_level(x: Inputs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x[_PRICE_WEIGHT.name] > 0, x[_PRICE_SUM.name] / x[_PRICE_WEIGHT.name], np.nan)


def _log_price(price: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(price > 0, np.log(price), np.nan)


def smoothed_rate(name: str, numerator: str, denominator: str, alpha: float, beta: float,
                  description: str, weight: Weight = "one", stream: str = "item") -> Feature:
    """(numerator + alpha) / (denominator + alpha + beta): a Beta(alpha, beta) prior on the rate."""
    hl = RATE_HALF_LIFE_DAYS
    num = _counter(stream, "decayed_sum", (numerator,), half_life_days=hl)
    den = _counter(stream, "decayed_sum", (denominator,), weight, hl)

    def formula(x: Inputs, v: Vocabularies) -> np.ndarray:
        return (x[num.name] + alpha) / (x[den.name] + alpha + beta)

    label = "position-debiased rate" if weight == "examination" else "smoothed rate"
    scope: Scope = "item" if stream == "item" else "collection"
    return Feature(name, scope, label, description, (num.name, den.name), formula, counters=(num, den),
                   events=(numerator, denominator), half_life_days=hl, default=alpha / (alpha + beta))


def attribute(name: str, scope: Scope, inputs: tuple[str, ...], formula: Formula, description: str,
              default: float = 0.0, kind: Kind = "numeric") -> Feature:
    return Feature(name, scope, "attribute", description, inputs, formula, default=default, kind=kind)


def _hour_of_day(x: Inputs, v: Vocabularies) -> np.ndarray:
    return np.floor(np.mod(x["context.t"], DAY_SECONDS) / HOUR_SECONDS)


def _day_of_week(x: Inputs, v: Vocabularies) -> np.ndarray:
    return np.mod(np.floor(x["context.t"] / DAY_SECONDS) + 3, 7)  # 1970-01-01 was a Thursday; Monday = 0


def _price_vs_category(x: Inputs, v: Vocabularies) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return x["item.price"] / x["item.category_median_price"]


def _age_days(x: Inputs, v: Vocabularies) -> np.ndarray:
    return np.maximum((x["context.t"] - x["item.created_t"]) / DAY_SECONDS, 0.0)


def _encode(input_name: str, vocabulary: str) -> Formula:
    return lambda x, v: v.encode(vocabulary, x[input_name])


def _price_vs_user_level(x: Inputs, v: Vocabularies) -> np.ndarray:
    return _log_price(x["item.price"]) - _user_log_price_level(x)


def embedding_similarity(name: str, scope: Scope, taste: TasteVector, description: str) -> Feature:
    """Cosine between the taste vector at t and the item's embedding; NaN without either."""

    def formula(x: Inputs, v: Vocabularies) -> np.ndarray:
        return cosine_rows(x[taste.name], x[ITEM_VECTOR])

    return Feature(name, scope, "embedding cosine", description, (taste.name, ITEM_VECTOR), formula,
                   events=taste.event_types, half_life_days=taste.half_life_days, default=math.nan,
                   tastes=(taste,))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [rows, dim] arrays (either may have 1 row: broadcast); NaN for a zero row."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 1 or len(b) == 1:  # online: one taste vector against many items, a matrix-vector product
        one, many = (a, b) if len(a) == 1 else (b, a)
        one_norm = np.sqrt(one[0] @ one[0])
        if one_norm == 0:  # no taste yet (a new user, no session): NaN whatever the items
            return np.full(len(many), np.nan)
        dot = many @ one[0]
        norms = np.sqrt(np.einsum("ij,ij->i", many, many)) * one_norm
    else:
        dot = np.einsum("ij,ij->i", a, b)
        norms = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms > 0, dot / norms, np.nan)


_USER_TASTE = TasteVector("user", TASTE_HALF_LIFE_DAYS)
_SESSION_TASTE = TasteVector("session")
_TASTE_TEXT = "funnel-weighted (click 1, cart 3, purchase 5) sum of the embeddings of the items"


_SOURCE_CODES = Vocabularies({"source": COLLECTION_SOURCES})


def _bought_before(c: Counter) -> Formula:
    return lambda x, v: (x[c.name] > 0).astype(np.float64)


_BOUGHT = _counter("user_item", "sum", ("purchase",))
_SESSION_CLICKS = _counter("session", "sum", ("click",))
_SESSION_CARTS = _counter("session", "sum", ("add_to_cart",))


def _user_counts() -> list[Feature]:
    names = {"click": "clicks", "add_to_cart": "carts", "purchase": "purchases"}
    return [
        decayed_count(f"user_{label}_{hl:g}d", "user", "user", event, hl,
                      f"The user's {event} events, decayed with a {hl:g}-day half-life.")
        for event, label in names.items() for hl in HALF_LIVES_DAYS
    ]


def _item_counts() -> list[Feature]:
    names = {"impression": "impressions", "click": "clicks", "add_to_cart": "carts", "purchase": "purchases"}
    return [
        decayed_count(f"item_{label}_{hl:g}d", "item", "item", event, hl,
                      f"The item's {event} events over all users, decayed with a {hl:g}-day half-life.")
        for event, label in names.items() for hl in HALF_LIVES_DAYS
    ]


def _feature_list() -> tuple[Feature, ...]:
    price_inputs = (_PRICE_SUM.name, _PRICE_WEIGHT.name)
    features = [
        # --- user ------------------------------------------------------------------------
        *_user_counts(),
        hours_since("user_hours_since_engagement", "user", "user", ENGAGEMENT,
                    "Hours since the user's last click, cart or purchase; capped at 720 (30 days)."),
        Feature("user_log_price_level", "user", "decayed mean",
                "Decayed mean log price of the items the user carted or bought (30-day half-life); "
                "catalog price. Unknown: NaN.", price_inputs, lambda x, v: _user_log_price_level(x),
                counters=(_PRICE_SUM, _PRICE_WEIGHT), events=_PRICE_EVENTS,
                half_life_days=AFFINITY_HALF_LIFE_DAYS, default=math.nan),
        attribute("user_location", "user", ("user.location",), _encode("user.location", "location"),
                  "The user's home location (profile), as a code.", kind="categorical"),
        attribute("user_subscription", "user", ("user.subscription",),
                  _encode("user.subscription", "subscription"),
                  "The user's subscription status (profile), as a code.", kind="categorical"),
        # --- user x item -----------------------------------------------------------------
        engagement_share("user_vertical_share", "user_vertical",
                         "Share of the user's decayed engagement (30-day) that went to the item's vertical."),
        engagement_share("user_category_share", "user_category",
                         "Share of the user's decayed engagement (30-day) that went to the item's category."),
        engagement_share("user_brand_share", "user_brand",
                         "Share of the user's decayed engagement (30-day) that went to the item's brand."),
        Feature("item_price_vs_user_level", "cross", "log ratio",
                "log(item price at t) - the user's log price level: > 0 is pricier than usual. Unknown: NaN.",
                ("item.price", *price_inputs), _price_vs_user_level, counters=(_PRICE_SUM, _PRICE_WEIGHT),
                events=_PRICE_EVENTS, half_life_days=AFFINITY_HALF_LIFE_DAYS, default=math.nan),
        Feature("user_bought_item", "cross", "ever", "1 if the user bought this item before t.",
                (_BOUGHT.name,), _bought_before(_BOUGHT), counters=(_BOUGHT,), events=("purchase",),
                kind="flag"),
        hours_since("user_hours_since_category", "cross", "user_category", ENGAGEMENT,
                    "Hours since the user last engaged with the item's category; capped at 720."),
        embedding_similarity("user_item_embedding_similarity", "cross", _USER_TASTE,
                             f"Cosine of the item's embedding with the user's taste: the decayed (7-day), "
                             f"{_TASTE_TEXT} the user engaged with before t. NaN without history or embedding."),
        # --- item ------------------------------------------------------------------------
        *_item_counts(),
        smoothed_rate("item_ctr", "click", "impression", 1.0, 19.0,
                      "Clicks / impressions (30-day decay), Beta(1, 19) prior: 5% with no data."),
        smoothed_rate("item_conversion", "purchase", "click", 1.0, 9.0,
                      "Purchases / clicks (30-day decay), Beta(1, 9) prior: 10% with no data."),
        smoothed_rate("item_debiased_ctr", "click", "impression", 1.0, 4.0,
                      "Clicks / expected clicks, where each impression counts examination(row, position) "
                      "(30-day decay), Beta(1, 4) prior: a click rate once examined.", weight="examination"),
        attribute("item_price", "item", ("item.price",), lambda x, v: x["item.price"],
                  "Price at t (latest inventory update before t, else catalog). Unknown item: NaN.",
                  default=math.nan),
        attribute("item_price_vs_category", "item", ("item.price", "item.category_median_price"),
                  _price_vs_category, "Price at t / median catalog price of its category. Unknown: NaN.",
                  default=math.nan),
        attribute("item_has_image", "item", ("item.has_image",), lambda x, v: x["item.has_image"],
                  "1 if the item has an image.", kind="flag"),
        attribute("item_age_days", "item", ("item.created_t", "context.t"), _age_days,
                  "Days since the item entered the catalog (>= 0). Unknown: NaN.", default=math.nan),
        attribute("item_in_stock", "item", ("item.in_stock",), lambda x, v: x["item.in_stock"],
                  "1 if in stock at t (latest inventory update before t, else catalog).", kind="flag"),
        # --- context ---------------------------------------------------------------------
        attribute("context_hour", "context", ("context.t",), _hour_of_day, "Hour of day, UTC (0-23)."),
        attribute("context_day_of_week", "context", ("context.t",), _day_of_week,
                  "Day of week, UTC, Monday = 0."),
        attribute("context_surface", "context", ("context.surface",), _encode("context.surface", "surface"),
                  "Surface (web, ios, ...) as a code.", kind="categorical"),
        attribute("context_location", "context", ("context.location",),
                  _encode("context.location", "location"), "Request location as a code.", kind="categorical"),
        # --- collection (examples and requests name the collection the item is shown in) -----
        decayed_count("collection_impressions_7d", "collection", "collection", "impression", 7.0,
                      "Item impressions shown in this collection (all users), 7-day half-life."),
        decayed_count("collection_clicks_7d", "collection", "collection", "click", 7.0,
                      "Clicks on items in this collection (all users), 7-day half-life."),
        smoothed_rate("collection_ctr", "click", "impression", 1.0, 19.0,
                      "Clicks / item impressions in this collection (30-day decay), Beta(1, 19) prior.",
                      stream="collection"),
        smoothed_rate("collection_debiased_ctr", "click", "impression", 1.0, 4.0,
                      "Clicks / expected clicks (examination-weighted impressions) in this collection "
                      "(30-day decay), Beta(1, 4) prior.", weight="examination", stream="collection"),
        smoothed_rate("collection_conversion", "purchase", "click", 1.0, 9.0,
                      "Purchases / clicks attributed to this collection (30-day decay), Beta(1, 9) prior.",
                      stream="collection"),
        attribute("collection_source", "collection", ("collection.source",),
                  lambda x, v: _SOURCE_CODES.encode("source", x["collection.source"]),
                  "curated = 1, ml = 2, rules = 3; 0 when the collection is not in the collections table.",
                  kind="categorical"),
        attribute("collection_size", "collection", ("collection.size",), lambda x, v: x["collection.size"],
                  "Number of explicit items of the collection; NaN for rule collections and unknown ones.",
                  default=math.nan),
        engagement_share("user_collection_share", "user_collection",
                         "Share of the user's decayed engagement (30-day) that happened in this collection."),
        hours_since("user_hours_since_collection", "cross", "user_collection", ENGAGEMENT,
                    "Hours since the user last engaged with an item in this collection; capped at 720."),
        # --- session ---------------------------------------------------------------------
        *[
            Feature(name, "session", "count", desc, (c.name,), (lambda cn: lambda x, v: x[cn])(c.name),
                    counters=(c,), events=c.event_types)
            for name, c, desc in (
                ("session_clicks", _SESSION_CLICKS, "Clicks earlier in this session."),
                ("session_carts", _SESSION_CARTS, "Add-to-carts earlier in this session."),
            )
        ],
        embedding_similarity("session_item_embedding_similarity", "session", _SESSION_TASTE,
                             f"Cosine of the item's embedding with the session's taste: the {_TASTE_TEXT} "
                             "engaged with earlier in this session. NaN without any or without an embedding."),
    ]
    names = [f.name for f in features]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"feature names declared twice: {sorted(duplicates)}")
    return tuple(features)


FEATURES: tuple[Feature, ...] = _feature_list()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def counters_of(features: tuple[Feature, ...] = FEATURES) -> dict[str, tuple[Counter, ...]]:
    """The counters each stream must keep for these features, deduplicated, in a stable order."""
    by_stream: dict[str, dict[str, Counter]] = {}
    for feature in features:
        for c in feature.counters:
            by_stream.setdefault(c.stream, {})[c.name] = c
    return {stream: tuple(cs.values()) for stream, cs in by_stream.items()}


_DEFAULTS: dict[int, tuple[tuple[Feature, ...], np.ndarray]] = {}


def _defaults(features: tuple[Feature, ...]) -> np.ndarray:
    """The features' defaults as an array, kept per feature tuple (looked up by identity: hashing the
    frozen Features would cost more than building the array)."""
    hit = _DEFAULTS.get(id(features))
    if hit is not None and hit[0] is features:
        return hit[1]
    out = np.array([f.default for f in features], dtype=np.float64)
    if len(_DEFAULTS) > 256:
        _DEFAULTS.clear()
    _DEFAULTS[id(features)] = (features, out)
    return out


def feature_matrix(features: tuple[Feature, ...], inputs: Inputs, vocabularies: Vocabularies,
                   rows: int | None = None) -> np.ndarray:
    """Apply every feature's formula: one row per example, columns in declaration order.

    Inputs that are the same for every row (the user's, the context's) may be length-1 arrays:
    formulas broadcast them, so online they are computed once per request, not once per item.
    """
    n = max(len(v) for v in inputs.values()) if rows is None else rows
    # Built feature by feature as rows of a (features, n) array, each write contiguous, and returned
    # as its (n, features) transpose (column-major: a feature's column is contiguous).
    out = np.empty((len(features), n), dtype=np.float64)
    for j, feature in enumerate(features):
        out[j] = feature.formula(inputs, vocabularies)
    # Defaults: NaN means "the inputs say nothing"; filled only in the features that have NaNs.
    nan = np.isnan(out)
    if nan.any():
        defaults = _defaults(features)
        for j in np.flatnonzero(nan.any(axis=1) & ~np.isnan(defaults)).tolist():
            out[j][nan[j]] = defaults[j]
    return out.T


@dataclass(frozen=True)
class FeatureSpace:
    """The features plus what they need besides events: vocabularies and the examination curve.

    One object drives both the offline builder and the online state; save it with a model.
    """

    features: tuple[Feature, ...] = FEATURES
    vocabularies: Vocabularies = field(default_factory=Vocabularies)
    examination_curve: np.ndarray = field(default_factory=lambda: _default_curve())
    # The item embeddings the similarity features read (None: those features are NaN). Not in
    # to_dict(): they are their own artefact (item_embeddings), attached by load_trained.
    item_vectors: ItemVectors | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def counters(self) -> dict[str, tuple[Counter, ...]]:
        return counters_of(self.features)

    @property
    def tastes(self) -> tuple[TasteVector, ...]:
        """The taste vectors the features read, deduplicated, in declaration order."""
        return tuple({t.name: t for f in self.features for t in f.tastes}.values())

    def with_item_vectors(self, item_vectors: ItemVectors | None) -> FeatureSpace:
        return replace(self, item_vectors=item_vectors)

    def without_embedding_features(self) -> FeatureSpace:
        """The same space minus the features that read item embeddings (for a space with none)."""
        return replace(self, features=tuple(f for f in self.features if not f.tastes), item_vectors=None)

    def matrix(self, inputs: Inputs, rows: int | None = None) -> np.ndarray:
        return feature_matrix(self.features, inputs, self.vocabularies, rows)

    def to_dict(self) -> dict:
        """What a model artefact stores to compute its features again: names, codes, curve."""
        return {"features": list(self.names), "vocabularies": self.vocabularies.to_dict(),
                "examination_curve": np.asarray(self.examination_curve).tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSpace:
        """Rebuild a saved space; fails with the difference when the code declares other features."""
        by_name = {f.name: f for f in FEATURES}
        unknown = [n for n in data["features"] if n not in by_name]
        if unknown:
            raise ValueError(f"the saved feature space names features this version does not declare: {unknown}; "
                             "retrain the model or install the shelfrank version that trained it")
        return cls(features=tuple(by_name[n] for n in data["features"]),
                   vocabularies=Vocabularies.from_dict(data["vocabularies"]),
                   examination_curve=np.asarray(data["examination_curve"], dtype=np.float64))


def _default_curve() -> np.ndarray:
    from shelfrank.features.examination import default_examination_curve

    return default_examination_curve()


def features_markdown(features: tuple[Feature, ...] = FEATURES) -> str:
    """The feature list as a Markdown table (docs/features.md embeds it; a test keeps them equal)."""
    lines = ["| # | feature | scope | aggregation | events | half-life | default | kind | meaning |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, f in enumerate(features):
        events = ", ".join(f.events) if f.events else "-"
        half_life = f"{f.half_life_days:g} d" if f.half_life_days else "-"
        lines.append(f"| {i} | `{f.name}` | {f.scope} | {f.aggregation} | {events} | {half_life} | {f.default:g} "
                     f"| {f.kind} | {f.description} |")
    return "\n".join(lines) + "\n"
