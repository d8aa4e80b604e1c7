"""The ground truth of the synthetic store: what any user would do with any page.

The truth model (all parameters in `TRUTH_PARAMS`, saved with the truth):

* **Utility** of item i for user u at time t, region g, with session intent s is a sum of
  - item quality, 2.5 x (Beta(2, 5) - 2/7): right-skewed and bounded (-0.7 .. 1.8);
  - category taste: 2.2 x the weight of the user's favourite leaf that is the item's leaf
    + 1.0 x the weight of favourites sharing the item's parent (partial credit)
    + 0.7 x the user's affinity for the item's vertical; 5 favourite leaves per user, and for
    40% of users 40-70% of the weight moves to a new leaf at a time inside the period (drift);
  - brand loyalty: 0 .. 1.2 (per user) if the brand is one of the user's two favourites;
  - price fit: -0.4 d^2, d = log price - (category's typical log price + user's price level);
  - context: hour x vertical and weekday x vertical effects (groceries mornings and weekends,
    electronics evenings, garden weekends, ...; hours in UTC) + region x leaf boosts (+1.0 on
    ~5% of leaves per region: "trending near you") + small region x vertical leanings;
  - session intent: +1.5 if the item's leaf is the session's intent, +0.5 if its parent is;
  - staples: +1.3 for the (up to 3) consumable items the user rebuys;
  - a small user x item latent factor, 0.35 x dot(u, i) / sqrt(8), and +0.3 novelty in an
    item's first 7 days.
* **P(click | examined)** = sigmoid(-3.2 + utility + 1.4 if clickbait - 0.7 if no image),
  multiplied by **satiation**: 0.75 per examined item of the same leaf category and 0.9 per
  examined item of the same brand in a row above; 0.97 per examined item of the same leaf or
  brand to the left in the same row (a category carousel is browsed as one; meeting the same
  category again in another row is what bores).
* **P(add to cart | click)** = sigmoid(-1.5 + 0.4 quality + 0.5 taste + 0.5 brand
  - sensitivity x max(d, 0) - 0.2 d^2 + 1.5 staple - 2.5 clickbait + 0.3 member + 0.3 intent),
  sensitivity ~ Gamma(2, 0.5) per user: price-sensitive users convert less on expensive items.
* **P(purchase | cart)** = sigmoid(0.0 + 0.3 quality - 0.5 sensitivity x max(d, 0)
  - 1.0 clickbait + 0.4 member + 0.8 staple). Units bought are geometric, mean 1.67 in
  consumable verticals and 1.09 elsewhere.
* **Ownership**: once a user bought an item outside the consumable verticals (groceries,
  beauty, pets), P(click | examined) of that item for them is x 0.3 and P(cart | click) is 0
  from then on; the truth remembers these first purchases (`owned_key`, `owned_t`).
* All three are 0 for an item out of stock at that time or not yet created.
* **Examination** P(examined | row, position) = row curve x column curve, with row curve
  1 / (1 + a row) and column curve exp(-b position); web a=0.25, b=0.22; ios/android
  (mobile: fewer items visible) a=0.35, b=0.40. The logs realize it as a scroll depth
  (P(row rendered) = sqrt(row curve)) times attention inside a rendered row
  (sqrt(row curve) x column curve).

`page_value` computes a page's expectations deterministically: examination from the 2-D
curve, satiation from *expected* counts (the sum of the examination probabilities of the
earlier same-category / same-brand items), an item repeated on the page counted once, at
its most examined place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.simulate.catalog import DAY, MAX_STOCKOUTS, N_LATENT, Catalog, in_stock_at, price_at
from shelfrank.simulate.scales import CONSUMABLE_VERTICALS, SURFACES, ScaleSpec
from shelfrank.simulate.users import N_FAVOURITES, Users, current_weights, region_names

TRUTH_PARAMS: dict[str, float] = {
    "click_base": -3.2,
    "taste_leaf": 2.2,
    "taste_mid": 1.0,
    "taste_vertical": 0.7,
    "price_fit_click": -0.4,
    "intent_leaf": 1.5,
    "intent_mid": 0.5,
    "staple_click": 1.3,
    "latent": 0.35,
    "clickbait_click": 1.4,
    "no_image_click": -0.7,
    "novelty": 0.3,
    "novelty_days": 7.0,
    "cart_base": -1.5,
    "cart_quality": 0.4,
    "cart_taste": 0.5,
    "cart_brand": 0.5,
    "cart_price_sq": -0.2,
    "cart_staple": 1.5,
    "cart_clickbait": -2.5,
    "cart_member": 0.3,
    "cart_intent": 0.3,
    "purchase_base": 0.0,
    "purchase_quality": 0.3,
    "purchase_sensitivity": 0.5,
    "purchase_clickbait": -1.0,
    "purchase_member": 0.4,
    "purchase_staple": 0.8,
    "owned_click": 0.3,
    "satiation_category": 0.75,
    "satiation_brand": 0.9,
    "satiation_same_row": 0.97,
    "row_decay_web": 0.25,
    "column_decay_web": 0.22,
    "row_decay_mobile": 0.35,
    "column_decay_mobile": 0.40,
    "quantity_p_consumable": 0.6,
    "quantity_p_other": 0.92,
}
DEFAULT_WEIGHTS = (1.0, 3.0, 10.0)  # utility of a click, an add to cart, a purchase
_ID = re.compile(r"^[a-z](\d+)$")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class PageValue:
    """Expected engagement with one page."""

    clicks: float
    add_to_carts: float
    purchases: float
    revenue: float

    def utility(self, weights: Sequence[float] = DEFAULT_WEIGHTS) -> float:
        """Weighted sum of clicks, add-to-carts and purchases; by default (1, 3, 10), so a
        purchase is worth ten clicks. A fourth weight, if given, multiplies revenue."""
        values = (self.clicks, self.add_to_carts, self.purchases, self.revenue)
        return float(sum(w * v for w, v in zip(weights, values, strict=False)))


@dataclass
class Context:
    """Effects of the moment and the place on each vertical / category."""

    hour_vertical: np.ndarray  # float32 [24, n_verticals]
    weekday_vertical: np.ndarray  # float32 [7, n_verticals], Monday = 0
    region_category: np.ndarray  # float32 [n_regions, n_categories]


# Hour-of-day and weekend effects of the named verticals (hours in UTC, the store's clock).
_HOUR_PEAKS = {"groceries": (7, 11, 0.5), "electronics": (18, 23, 0.5), "fashion": (12, 15, 0.3),
               "home": (19, 22, 0.2), "beauty": (19, 23, 0.3), "sports": (6, 9, 0.4), "toys": (15, 19, 0.3),
               "books": (21, 24, 0.4), "pets": (7, 10, 0.2), "garden": (9, 13, 0.3)}
_WEEKEND = {"groceries": 0.3, "electronics": -0.1, "fashion": 0.3, "home": 0.4, "beauty": 0.0, "sports": 0.2,
            "toys": 0.4, "books": 0.1, "pets": 0.0, "garden": 0.5}


def build_context(spec: ScaleSpec, cat: Catalog, rng: np.random.Generator) -> Context:
    n_vert = spec.n_verticals
    hour = np.zeros((24, n_vert), dtype=np.float32)
    weekday = np.zeros((7, n_vert), dtype=np.float32)
    for v, name in enumerate(spec.verticals):
        lo, hi, boost = _HOUR_PEAKS[name]
        hour[lo:hi, v] = boost
        weekday[5:, v] = _WEEKEND[name]
    hour -= hour.mean(axis=0)
    weekday -= weekday.mean(axis=0)
    # Each region loves a few leaf categories ("trending near you") and leans on some verticals.
    region = np.zeros((spec.n_regions, cat.n_categories), dtype=np.float32)
    boosted = rng.random((spec.n_regions, len(cat.leaf_ids))) < 0.05
    region[:, cat.leaf_ids] = np.where(boosted, 1.0, 0.0)
    region += rng.normal(0.0, 0.15, (spec.n_regions, n_vert)).astype(np.float32)[:, cat.category_vertical]
    return Context(hour_vertical=hour, weekday_vertical=weekday, region_category=region)


class GroundTruth:
    """The latent world behind a simulated store; scores any page for any user and moment."""

    def __init__(self, spec: ScaleSpec, catalog: Catalog, users: Users, context: Context,
                 params: dict[str, float] | None = None) -> None:
        self.spec = spec
        self.catalog = catalog
        self.users = users
        self.context = context
        self.params = dict(TRUTH_PARAMS if params is None else params)
        self._start_epoch = spec.start.timestamp()
        self._regions = {name: k for k, name in enumerate(region_names(spec.n_regions))}
        consumable = [spec.verticals.index(v) for v in CONSUMABLE_VERTICALS if v in spec.verticals]
        p = self.params
        self._mean_quantity = np.full(spec.n_verticals, 1 / p["quantity_p_other"])
        self._mean_quantity[consumable] = 1 / p["quantity_p_consumable"]
        self._consumable = np.isin(np.arange(spec.n_verticals), consumable)
        # First purchase of each (user, item) outside the consumable verticals, sorted by key
        # user * n_items + item: owners do not buy the same durable item again.
        self.owned_key = np.empty(0, dtype=np.int64)
        self.owned_t = np.empty(0, dtype=np.float64)

    # ---------- vectorized core (used by the event generator too) ----------

    def seconds(self, at: datetime | np.datetime64) -> float:
        """Seconds since the period start. A datetime without a timezone, and a numpy
        datetime64, are read as UTC (the store's clock)."""
        if isinstance(at, np.datetime64):
            return float((at - np.datetime64(0, "us")) / np.timedelta64(1, "us")) / 1e6 - self._start_epoch
        if not isinstance(at, datetime):
            raise TypeError(f"expected a datetime, got {type(at).__name__}: {at!r}")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at.timestamp() - self._start_epoch

    def stage_probabilities(self, u: np.ndarray, i: np.ndarray, t: np.ndarray, region: np.ndarray,
                            intent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(click | examined) without satiation, P(cart | click), P(purchase | cart) for
        aligned arrays of user numbers, item numbers, times (seconds since start), region
        numbers (-1: none) and intent category numbers (-1: none). With a scalar user, the
        time, region and intent must be scalars too (one user at one moment, many items)."""
        p, cat, us, ctx = self.params, self.catalog, self.users, self.context
        t = np.asarray(t, dtype=np.float64)
        leaf, mid, vert = cat.item_leaf[i], cat.item_mid[i], cat.item_vertical[i]
        if np.ndim(u) == 0:  # one user at one moment: user-side terms are computed once, broadcast
            w = current_weights(us, np.array([u]), np.array([float(t)]))
            fav_leaf, fav_mid = us.fav_leaf[[u]], us.fav_mid[[u]]
        else:
            w = current_weights(us, u, t)
            fav_leaf, fav_mid = us.fav_leaf[u], us.fav_mid[u]
        leaf_hit = fav_leaf == leaf[:, None]
        mid_hit = (fav_mid == mid[:, None]) & ~leaf_hit
        taste = (p["taste_leaf"] * (w * leaf_hit).sum(axis=1) + p["taste_mid"] * (w * mid_hit).sum(axis=1)
                 + p["taste_vertical"] * us.vertical_affinity[u, vert])
        brand = us.loyalty[u] * (us.fav_brand[u] == cat.item_brand[i][:, None]).any(axis=1)
        price = price_at(cat, i, t)
        d = np.log(price) - (cat.leaf_log_price[leaf] + us.price_pref[u])
        abs_s = self._start_epoch + t
        hour = (abs_s // 3600 % 24).astype(np.int64)
        weekday = ((abs_s // DAY + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
        context = ctx.hour_vertical[hour, vert] + ctx.weekday_vertical[weekday, vert]
        has_region = region >= 0
        context = context + np.where(has_region, ctx.region_category[np.maximum(region, 0), leaf], 0.0)
        has_intent = intent >= 0
        safe_intent = np.maximum(intent, 0)
        intent_leaf = has_intent & (leaf == safe_intent)
        intent_mid = has_intent & ~intent_leaf & ((mid == cat.category_parent[safe_intent]) | (mid == safe_intent))
        intent_boost = p["intent_leaf"] * intent_leaf + p["intent_mid"] * intent_mid
        staple = (us.staples[u] == i[:, None]).any(axis=1)
        latent = p["latent"] * (cat.item_latent[i] * us.latent[u]).sum(axis=-1) / np.sqrt(N_LATENT)
        age_days = (t - cat.item_created_t[i]) / DAY
        novelty = p["novelty"] * ((age_days >= 0) & (age_days < p["novelty_days"]))
        quality = cat.item_quality[i]
        clickbait = cat.item_clickbait[i]
        member = us.member[u]

        utility = (quality + taste + brand + p["price_fit_click"] * d * d + context + intent_boost
                   + p["staple_click"] * staple + latent + novelty)
        click = _sigmoid(p["click_base"] + utility + p["clickbait_click"] * clickbait
                         + p["no_image_click"] * ~cat.item_has_image[i])
        over = np.maximum(d, 0.0)
        sens = us.price_sensitivity[u]
        cart = _sigmoid(p["cart_base"] + p["cart_quality"] * quality + p["cart_taste"] * taste
                        + p["cart_brand"] * brand - sens * over + p["cart_price_sq"] * d * d
                        + p["cart_staple"] * staple + p["cart_clickbait"] * clickbait
                        + p["cart_member"] * member + p["cart_intent"] * (intent_leaf | intent_mid))
        purchase = _sigmoid(p["purchase_base"] + p["purchase_quality"] * quality
                            - p["purchase_sensitivity"] * sens * over + p["purchase_clickbait"] * clickbait
                            + p["purchase_member"] * member + p["purchase_staple"] * staple)
        owned = self._owned(u, i, t)
        click = click * np.where(owned, p["owned_click"], 1.0)
        cart = cart * ~owned
        available = in_stock_at(cat, i, t)
        return ((click * available).astype(np.float64), (cart * available).astype(np.float64),
                (purchase * available).astype(np.float64))

    def _owned(self, u: np.ndarray, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        if len(self.owned_key) == 0:
            return np.zeros(len(i), dtype=bool)
        key = np.asarray(u, dtype=np.int64) * self.catalog.n_items + i
        at = np.minimum(np.searchsorted(self.owned_key, key), len(self.owned_key) - 1)
        return (self.owned_key[at] == key) & (self.owned_t[at] <= t)

    def record_purchases(self, u: np.ndarray, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Remember durable purchases (the simulator calls this as it goes). Returns which of
        the given purchases are repeats of a durable item already bought (earlier or in this
        batch): those do not happen."""
        key = np.asarray(u, dtype=np.int64) * self.catalog.n_items + i
        durable = ~self._consumable[self.catalog.item_vertical[i]]
        repeat = self._owned(u, i, np.asarray(t, dtype=np.float64)) & durable
        order = np.lexsort((t, key))
        first_in_batch = np.ones(len(key), dtype=bool)
        first_in_batch[order[1:]] = key[order[1:]] != key[order[:-1]]
        repeat |= durable & ~first_in_batch
        new = durable & ~repeat
        keys = np.concatenate([self.owned_key, key[new]])
        times = np.concatenate([self.owned_t, np.asarray(t, dtype=np.float64)[new]])
        order = np.argsort(keys, kind="stable")
        self.owned_key, self.owned_t = keys[order], times[order]
        return repeat

    def row_curve(self, rows: np.ndarray, mobile: np.ndarray | bool) -> np.ndarray:
        a = np.where(mobile, self.params["row_decay_mobile"], self.params["row_decay_web"])
        return 1.0 / (1.0 + a * np.asarray(rows, dtype=np.float64))

    def column_curve(self, positions: np.ndarray, mobile: np.ndarray | bool) -> np.ndarray:
        b = np.where(mobile, self.params["column_decay_mobile"], self.params["column_decay_web"])
        return np.exp(-b * np.asarray(positions, dtype=np.float64))

    def satiation(self, leaf_above: np.ndarray, brand_above: np.ndarray, left: np.ndarray) -> np.ndarray:
        """Attraction multiplier from (expected or realized) counts of examined items read
        before: same leaf / same brand in rows above, same leaf or brand to the left."""
        p = self.params
        return (p["satiation_category"] ** leaf_above * p["satiation_brand"] ** brand_above
                * p["satiation_same_row"] ** left)

    def mean_quantity(self, items: np.ndarray) -> np.ndarray:
        return self._mean_quantity[self.catalog.item_vertical[items]]

    # ---------- public API ----------

    def examination(self, rows: np.ndarray, positions: np.ndarray, surface: str = "web") -> np.ndarray:
        """True P(examined | row, position) on a surface (ios / android are mobile)."""
        mobile = _is_mobile(surface)
        return self.row_curve(np.asarray(rows), mobile) * self.column_curve(np.asarray(positions), mobile)

    def item_probabilities(self, user_id: str, item_ids: Sequence[str], at: datetime,
                           location: str | None = None, surface: str = "web",
                           session_intent: str | None = None) -> dict[str, np.ndarray]:
        """The three funnel probabilities of each item for this user at `at` (no satiation).
        `location` defaults to the user's home region (an unknown region gets no regional
        boost); `session_intent` is a category id; `surface` changes examination only, not
        these probabilities (it is accepted so callers can pass a request's context as is)."""
        u = self._user_index(user_id)
        items = self._item_indices(item_ids)
        click, cart, purchase = self._probabilities(u, items, at, location, session_intent)
        return {"p_click_if_examined": click, "p_cart_given_click": cart, "p_purchase_given_cart": purchase}

    def page_value(self, user_id: str, rows: Sequence[Sequence[str]], at: datetime, location: str | None = None,
                   surface: str = "web") -> PageValue:
        u = self._user_index(user_id)
        row_of = np.array([r for r, row in enumerate(rows) for _ in row], dtype=np.int64)
        pos_of = np.array([p for row in rows for p in range(len(row))], dtype=np.int64)
        items = self._item_indices([item for row in rows for item in row])
        return self._page_value(u, items, row_of, pos_of, self.seconds(at), location, surface)

    def oracle_page(self, user_id: str, at: datetime, location: str | None = None, surface: str = "web",
                    n_rows: int = 8, n_items: int = 10,
                    weights: Sequence[float] = DEFAULT_WEIGHTS) -> list[list[str]]:
        """The truth's own greedy best page (no collection constraints): an upper bound in
        practice for any policy. Slots are filled from the most examined down, each with the
        item of highest examination x value x satiation given the items already placed."""
        u = self._user_index(user_id)
        cat = self.catalog
        all_items = np.arange(cat.n_items)
        click, cart, purchase = self._probabilities(u, all_items, at, location, None)
        t = self.seconds(at)
        revenue = price_at(cat, all_items, t) * self.mean_quantity(all_items)
        w = tuple(weights) + (0.0,) * (4 - len(weights))
        value = click * (w[0] + cart * (w[1] + purchase * (w[2] + w[3] * revenue)))
        n_slots = n_rows * n_items
        n_cand = min(cat.n_items, 25 * n_slots)
        cand = np.argpartition(-value, n_cand - 1)[:n_cand]
        cand_value = value[cand]
        cand_leaf, cand_brand = cat.item_leaf[cand], cat.item_brand[cand]
        leaf_seen = np.zeros(n_cand)
        brand_seen = np.zeros(n_cand)
        rows_grid, pos_grid = np.divmod(np.arange(n_slots), n_items)
        exam = self.examination(rows_grid, pos_grid, surface)
        page = np.full(n_slots, -1, dtype=np.int64)
        used = np.zeros(n_cand, dtype=bool)
        sat_c, sat_b = self.params["satiation_category"], self.params["satiation_brand"]
        for slot in np.argsort(-exam, kind="stable"):
            gain = cand_value * sat_c**leaf_seen * sat_b**brand_seen
            gain[used] = -np.inf
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            used[best] = True
            page[slot] = cand[best]
            leaf_seen[cand_leaf == cand_leaf[best]] += exam[slot]
            brand_seen[cand_brand == cand_brand[best]] += exam[slot]
        grid = page.reshape(n_rows, n_items)
        return [[f"i{k}" for k in row if k >= 0] for row in grid]

    # ---------- helpers ----------

    def _probabilities(self, u: int, items: np.ndarray, at: datetime | float, location: str | None,
                       session_intent: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = float(at) if isinstance(at, float | int) else self.seconds(at)
        region = self.users.home_region[u] if location is None else self._regions.get(location, -1)
        intent = -1 if session_intent is None else self._category_index(session_intent)
        return self.stage_probabilities(u, items, t, region, intent)

    def _page_value(self, u: int, items: np.ndarray, row_of: np.ndarray, pos_of: np.ndarray, t: float,
                    location: str | None, surface: str) -> PageValue:
        if len(items) == 0:
            return PageValue(0.0, 0.0, 0.0, 0.0)
        exam = self.examination(row_of, pos_of, surface)
        # A repeated item counts once, at its most examined place (first one on ties).
        reading = np.lexsort((pos_of, row_of))
        by_value = reading[np.argsort(-exam[reading], kind="stable")]
        _, first = np.unique(items[by_value], return_index=True)
        keep = np.sort(by_value[first])
        keep = keep[np.lexsort((pos_of[keep], row_of[keep]))]  # reading order
        items, exam = items[keep], exam[keep]
        cat = self.catalog
        rows_kept = row_of[keep]
        earlier = np.tri(len(items), k=-1, dtype=bool)  # earlier[s, j]: j is read before s
        same_row = rows_kept[:, None] == rows_kept[None, :]
        same_leaf = cat.item_leaf[items][:, None] == cat.item_leaf[items][None, :]
        same_brand = cat.item_brand[items][:, None] == cat.item_brand[items][None, :]
        satiation = self.satiation(
            leaf_above=((earlier & ~same_row & same_leaf) * exam[None, :]).sum(axis=1),
            brand_above=((earlier & ~same_row & same_brand) * exam[None, :]).sum(axis=1),
            left=((earlier & same_row & (same_leaf | same_brand)) * exam[None, :]).sum(axis=1),
        )
        click, cart, purchase = self._probabilities(u, items, t, location, None)
        clicks = exam * click * satiation
        carts = clicks * cart
        purchases = carts * purchase
        revenue = purchases * price_at(cat, items, t) * self.mean_quantity(items)
        return PageValue(float(clicks.sum()), float(carts.sum()), float(purchases.sum()), float(revenue.sum()))

    def _user_index(self, user_id: str) -> int:
        k = _parse(user_id, "u")
        if k is None or k >= self.users.n_users:
            raise ValueError(f"unknown user id {user_id!r}: the simulated users are u0 .. u{self.users.n_users - 1}")
        return k

    def _item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item numbers of ids "i<n>", parsed in Arrow (no Python loop over 500,000 ids)."""
        ids = pa.array(list(item_ids), type=pa.string())
        well_formed = pc.match_substring_regex(ids, r"^i[0-9]{1,12}$").fill_null(False)
        numbers = np.zeros(len(ids), dtype=np.int64)
        if len(ids):
            digits = pc.utf8_slice_codeunits(pc.if_else(well_formed, ids, "i0"), 1)
            numbers = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~well_formed.to_numpy(zero_copy_only=False) | (numbers >= self.catalog.n_items))
        if len(bad):
            raise ValueError(f"unknown item id {item_ids[int(bad[0])]!r}: the simulated items are "
                             f"i0 .. i{self.catalog.n_items - 1}")
        return numbers

    def _category_index(self, category_id: str) -> int:
        k = _parse(category_id, "c")
        if k is None or k >= self.catalog.n_categories:
            raise ValueError(f"unknown category id {category_id!r}")
        return k

    # ---------- persistence ----------

    def save(self, path: Path) -> None:
        """One .npy file per array plus meta.json: byte-identical for the same world."""
        path = Path(path)
        for part, obj in (("catalog", self.catalog), ("users", self.users), ("context", self.context)):
            (path / part).mkdir(parents=True, exist_ok=True)
            for f in fields(obj):
                value = getattr(obj, f.name)
                if isinstance(value, np.ndarray):
                    np.save(path / part / f"{f.name}.npy", value, allow_pickle=False)
        spec = asdict(self.spec)
        spec["start"] = self.spec.start.isoformat()
        meta = {"spec": spec, "params": self.params, "category_name": self.catalog.category_name,
                "brand_name": self.catalog.brand_name, "max_stockouts": MAX_STOCKOUTS,
                "n_favourites": N_FAVOURITES}
        (path / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        np.save(path / "owned_key.npy", self.owned_key, allow_pickle=False)
        np.save(path / "owned_t.npy", self.owned_t, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        path = Path(path)
        if not (path / "meta.json").exists():
            raise FileNotFoundError(f"{path} holds no ground truth (no meta.json); run the simulator first")
        meta = json.loads((path / "meta.json").read_text())
        spec_fields = dict(meta["spec"])
        spec_fields["start"] = datetime.fromisoformat(spec_fields["start"])
        spec = ScaleSpec(**spec_fields)

        def arrays(part: str, kind: type) -> dict[str, object]:
            return {f.name: np.load(path / part / f"{f.name}.npy") for f in fields(kind)
                    if (path / part / f"{f.name}.npy").exists()}

        catalog = Catalog(category_name=meta["category_name"], brand_name=meta["brand_name"],
                          **arrays("catalog", Catalog))
        truth = cls(spec, catalog, Users(**arrays("users", Users)), Context(**arrays("context", Context)),
                    meta["params"])
        truth.owned_key = np.load(path / "owned_key.npy")
        truth.owned_t = np.load(path / "owned_t.npy")
        return truth


def _parse(value: str, prefix: str) -> int | None:
    m = _ID.match(value) if isinstance(value, str) and value.startswith(prefix) else None
    return int(m.group(1)) if m else None


def _is_mobile(surface: str) -> bool:
    return surface in SURFACES[1:]
