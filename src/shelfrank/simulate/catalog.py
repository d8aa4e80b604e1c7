"""The synthetic catalog: category tree, brands, items, and their stock and price over time.

Everything is drawn with numpy in batch; the only Python loops run over verticals,
categories or brands (thousands at most), never over items.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.simulate.scales import CONSUMABLE_VERTICALS, ScaleSpec

DAY = 86_400.0

# Words that make category names and titles read like a real store.
_MID_NOUNS: dict[str, tuple[str, ...]] = {
    "groceries": ("Dairy", "Bakery", "Produce", "Snacks", "Beverages", "Pantry", "Frozen", "Meat", "Breakfast",
                  "Candy", "Coffee", "Pasta"),
    "electronics": ("Phones", "Laptops", "Headphones", "Cameras", "Monitors", "Speakers", "Tablets", "Gaming",
                    "Wearables", "Chargers", "Storage", "TVs"),
    "fashion": ("Dresses", "Jeans", "Shirts", "Sneakers", "Boots", "Jackets", "Bags", "Watches", "Sweaters",
                "Skirts", "Hats", "Socks"),
    "home": ("Cookware", "Bedding", "Lighting", "Storage Boxes", "Rugs", "Furniture", "Tableware", "Cleaning",
             "Curtains", "Towels", "Decor", "Candles"),
    "beauty": ("Skincare", "Makeup", "Fragrance", "Haircare", "Nail Care", "Shaving", "Sun Care", "Bath",
               "Body Care", "Lip Care", "Masks", "Brushes"),
    "sports": ("Running", "Cycling", "Yoga", "Fitness", "Swimming", "Camping", "Tennis", "Football", "Hiking",
               "Climbing", "Ski", "Golf"),
    "toys": ("Puzzles", "Building Sets", "Dolls", "Board Games", "Plush", "Action Figures", "Vehicles",
             "Outdoor Toys", "Baby Toys", "Crafts", "Science Kits", "Ride-ons"),
    "books": ("Fiction", "Thrillers", "Cookbooks", "Biographies", "Children's Books", "Comics", "History",
              "Science", "Travel", "Self-Help", "Poetry", "Fantasy"),
    "pets": ("Dog Food", "Cat Food", "Pet Toys", "Litter", "Aquarium", "Bird Care", "Pet Beds", "Leashes",
             "Treats", "Grooming", "Small Pets", "Pet Health"),
    "garden": ("Seeds", "Plants", "Tools", "Planters", "Hoses", "Lawn Care", "Outdoor Lighting", "BBQ",
               "Garden Furniture", "Fertilizer", "Pest Control", "Greenhouse"),
}
_LEAF_ADJECTIVES = (
    "Organic", "Classic", "Premium", "Everyday", "Mini", "Family", "Deluxe", "Eco", "Smart", "Vintage", "Sport",
    "Kids'", "Travel", "Compact", "Pro", "Natural", "Light", "Essential", "Artisan", "Urban", "Nordic", "Soft",
    "Wild", "Pure", "Gourmet", "Budget", "Limited", "Fresh", "Heavy-Duty", "Studio", "Retro", "Outdoor",
    "Indoor", "Wireless", "Bold", "Gentle", "Rapid", "Golden", "Silver", "Velvet",
)
_SYLLABLES = (
    "ka", "lo", "mi", "ra", "to", "ve", "no", "si", "da", "pe", "lu", "ri", "zo", "fa", "ne", "ta", "bo", "ki",
    "sa", "mo", "vi", "la", "re", "do", "nu", "xa", "te", "po", "gi", "ha",
)
# Rough price level (log of a typical price) per vertical.
_LOG_PRICE = {"groceries": 1.4, "electronics": 4.6, "fashion": 3.6, "home": 3.5, "beauty": 2.8, "sports": 3.6,
              "toys": 3.1, "books": 2.7, "pets": 2.9, "garden": 3.3}
TAG_NAMES = ("sale", "organic", "premium", "new", "bestseller")
N_LATENT = 8  # dimensions of the small item x user latent factor (within-category taste)
MAX_STOCKOUTS = 2  # stockout episodes an item can have over the period


@dataclass
class Catalog:
    """The catalog as arrays indexed by item / category / brand number."""

    # Categories: verticals first (level 0), then mid-level (1), then leaves (2).
    category_name: list[str]
    category_parent: np.ndarray  # int32, -1 for verticals
    category_level: np.ndarray  # int8
    category_vertical: np.ndarray  # int8 vertical index
    leaf_ids: np.ndarray  # category numbers of the leaves
    leaf_popularity: np.ndarray  # float64 share of demand per category (0 for non-leaves)
    leaf_log_price: np.ndarray  # float32 per category: typical log price of its items
    brand_name: list[str]
    brand_vertical: np.ndarray  # int8
    # Items.
    item_leaf: np.ndarray  # int32 category number
    item_mid: np.ndarray  # int32
    item_vertical: np.ndarray  # int8
    item_brand: np.ndarray  # int32
    item_quality: np.ndarray  # float32 in [-0.7, 1.8], right-skewed: the long tail
    item_buzz: np.ndarray  # float32: what the old system sees as popularity (quality + noise)
    item_clickbait: np.ndarray  # bool
    item_has_image: np.ndarray  # bool
    item_price: np.ndarray  # float32 price at period start
    item_price_change_t: np.ndarray  # float64 seconds since start (inf: no change)
    item_new_price: np.ndarray  # float32
    item_created_t: np.ndarray  # float64 seconds since start (negative: before the period)
    item_stock_qty: np.ndarray  # int32 units when in stock
    item_oos_start: np.ndarray  # float64 [n, MAX_STOCKOUTS] (inf: none)
    item_oos_end: np.ndarray  # float64 [n, MAX_STOCKOUTS]
    item_tags: np.ndarray  # bool [n, len(TAG_NAMES)]
    item_latent: np.ndarray  # float32 [n, N_LATENT]
    item_title_number: np.ndarray  # int32: model number in the title

    @property
    def n_items(self) -> int:
        return len(self.item_leaf)

    @cached_property
    def has_stockouts(self) -> np.ndarray:
        return np.isfinite(self.item_oos_start[:, 0])

    @property
    def n_categories(self) -> int:
        return len(self.category_name)


def build_catalog(spec: ScaleSpec, rng: np.random.Generator) -> Catalog:
    verticals = spec.verticals
    n_vert = len(verticals)
    vert_share = rng.dirichlet(np.full(n_vert, 6.0))

    # --- category tree: vertical -> mid -> leaf ---
    n_below = spec.n_categories - n_vert
    n_mid = max(n_vert, round(n_below * 0.12))
    n_leaf = n_below - n_mid
    mids_per_vert = 1 + rng.multinomial(n_mid - n_vert, vert_share)
    mid_vertical = np.repeat(np.arange(n_vert), mids_per_vert)
    leaves_per_mid = 1 + rng.multinomial(n_leaf - n_mid, vert_share[mid_vertical] / vert_share[mid_vertical].sum())
    names: list[str] = list(v.title() for v in verticals)
    parent = [-1] * n_vert
    for v, count in enumerate(mids_per_vert):
        nouns = _MID_NOUNS[verticals[v]]
        for k in range(count):
            names.append(nouns[k % len(nouns)] + ("" if k < len(nouns) else f" {k // len(nouns) + 1}"))
            parent.append(v)
    mid_names = names[n_vert:]
    first_leaf = len(names)
    for m, count in enumerate(leaves_per_mid):
        adjectives = rng.permutation(len(_LEAF_ADJECTIVES))
        for k in range(count):
            adj = _LEAF_ADJECTIVES[adjectives[k % len(adjectives)]]
            suffix = "" if k < len(adjectives) else f" {k // len(adjectives) + 1}"
            names.append(f"{adj} {mid_names[m]}{suffix}")
            parent.append(n_vert + m)
    category_parent = np.array(parent, dtype=np.int32)
    n_cat = len(names)
    level = np.zeros(n_cat, dtype=np.int8)
    level[n_vert:first_leaf] = 1
    level[first_leaf:] = 2
    cat_vertical = np.empty(n_cat, dtype=np.int8)
    cat_vertical[:n_vert] = np.arange(n_vert)
    cat_vertical[n_vert:first_leaf] = mid_vertical
    cat_vertical[first_leaf:] = mid_vertical[category_parent[first_leaf:] - n_vert]
    leaf_ids = np.arange(first_leaf, n_cat, dtype=np.int32)

    # Demand per leaf: long-tailed, scaled by its vertical's share.
    leaf_pop = np.zeros(n_cat)
    raw = rng.lognormal(0.0, 0.9, len(leaf_ids))
    for v in range(n_vert):
        in_v = cat_vertical[leaf_ids] == v
        leaf_pop[leaf_ids[in_v]] = vert_share[v] * raw[in_v] / raw[in_v].sum()
    leaf_log_price = np.array([_LOG_PRICE[verticals[v]] for v in cat_vertical], dtype=np.float32)
    leaf_log_price += rng.normal(0.0, 0.45, n_cat).astype(np.float32)

    # --- brands: each belongs to one vertical, Zipf-like sizes ---
    brand_vertical = np.concatenate([np.arange(n_vert), rng.choice(n_vert, spec.n_brands - n_vert, p=vert_share)])
    brand_vertical = brand_vertical.astype(np.int8)
    brand_size = np.empty(spec.n_brands)
    for v in range(n_vert):
        in_v = np.flatnonzero(brand_vertical == v)
        brand_size[in_v] = 1.0 / (1.0 + rng.permutation(len(in_v))) ** 1.1
    brand_name = _brand_names(spec.n_brands, rng)
    brand_premium = rng.normal(0.0, 0.3, spec.n_brands)

    # --- items ---
    n = spec.n_items
    leaf_p = leaf_pop[leaf_ids] / leaf_pop[leaf_ids].sum()
    # Every leaf holds at least one item; the rest follow demand.
    item_leaf = np.concatenate([leaf_ids, rng.choice(leaf_ids, n - len(leaf_ids), p=leaf_p)])
    item_leaf = rng.permutation(item_leaf).astype(np.int32)
    item_mid = category_parent[item_leaf]
    item_vertical = cat_vertical[item_leaf]
    item_brand = np.empty(n, dtype=np.int32)
    for v in range(n_vert):
        in_v = np.flatnonzero(item_vertical == v)
        brands_v = np.flatnonzero(brand_vertical == v)
        item_brand[in_v] = rng.choice(brands_v, len(in_v), p=brand_size[brands_v] / brand_size[brands_v].sum())
    crossover = rng.random(n) < 0.08  # a few brands sell outside their vertical
    item_brand[crossover] = rng.choice(spec.n_brands, crossover.sum(), p=brand_size / brand_size.sum())

    # Right-skewed but bounded (a Gumbel tail would make the top of 500,000 items absurd).
    quality = (2.5 * (rng.beta(2.0, 5.0, n) - 2.0 / 7.0)).astype(np.float32)
    buzz = (quality + rng.normal(0.0, 0.5, n)).astype(np.float32)
    clickbait = rng.random(n) < 0.05
    buzz[clickbait] += 0.8  # clickbait gets clicks, so the old system thinks it is popular
    has_image = rng.random(n) >= 0.05
    log_price = leaf_log_price[item_leaf] + brand_premium[item_brand] + rng.normal(0.0, 0.35, n)
    price = _shop_price(np.exp(log_price))

    period = spec.period_seconds
    created = -rng.uniform(0.0, 730 * DAY, n)
    is_new = rng.random(n) < 0.05
    created[is_new] = rng.uniform(0.05, 0.9, is_new.sum()) * period
    created = np.round(created)

    price_change_t = np.full(n, np.inf)
    changes = rng.random(n) < 0.08
    price_change_t[changes] = np.round(rng.uniform(0.0, period, changes.sum()))
    price_change_t = np.maximum(price_change_t, created + 3600)
    new_price = _shop_price(price * np.exp(rng.normal(-0.08, 0.15, n)))

    # Stockouts: start (some before the period, so items begin out of stock) and end.
    oos_start = np.full((n, MAX_STOCKOUTS), np.inf)
    oos_end = np.full((n, MAX_STOCKOUTS), np.inf)
    n_episodes = np.searchsorted(np.cumsum([0.82, 0.13, 0.05]), rng.random(n), side="right")
    for k in range(MAX_STOCKOUTS):
        has = n_episodes > k
        lo = np.maximum(created[has], -2 * DAY)
        start = lo + rng.random(has.sum()) * (period - lo)
        oos_start[has, k] = np.round(start)
        oos_end[has, k] = np.round(start + 2 * 3600 + rng.exponential(1.5 * DAY, has.sum()))
    stock_qty = (1 + rng.geometric(1 / 60, n)).astype(np.int32)

    tags = np.zeros((n, len(TAG_NAMES)), dtype=bool)
    tags[:, 0] = rng.random(n) < 0.12
    consumable = np.isin(np.array(verticals)[item_vertical], CONSUMABLE_VERTICALS)
    tags[:, 1] = consumable & (rng.random(n) < 0.25)
    tags[:, 2] = log_price > leaf_log_price[item_leaf] + 0.4
    tags[:, 3] = created > -45 * DAY
    tags[:, 4] = quality >= np.quantile(quality, 0.98)

    latent = rng.normal(0.0, 1.0, (n, N_LATENT)).astype(np.float32)
    return Catalog(
        category_name=names, category_parent=category_parent, category_level=level,
        category_vertical=cat_vertical, leaf_ids=leaf_ids, leaf_popularity=leaf_pop,
        leaf_log_price=leaf_log_price, brand_name=brand_name, brand_vertical=brand_vertical,
        item_leaf=item_leaf, item_mid=item_mid, item_vertical=item_vertical, item_brand=item_brand,
        item_quality=quality, item_buzz=buzz, item_clickbait=clickbait, item_has_image=has_image,
        item_price=price, item_price_change_t=price_change_t, item_new_price=new_price, item_created_t=created,
        item_stock_qty=stock_qty, item_oos_start=oos_start, item_oos_end=oos_end, item_tags=tags,
        item_latent=latent, item_title_number=rng.integers(10, 990, n).astype(np.int32),
    )


def _shop_price(raw: np.ndarray) -> np.ndarray:
    """Prices end in .99 above 5, in .x9 below (as shops price)."""
    raw = np.maximum(raw, 0.5)
    high = np.floor(raw) + 0.99
    low = np.floor(raw * 10) / 10 + 0.09
    return np.where(raw >= 5, high, low).astype(np.float32)


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    s = len(_SYLLABLES)
    codes = rng.choice(s**3, n, replace=False)
    names = []
    for code in codes:
        a, b, c = code // (s * s), (code // s) % s, code % s
        word = _SYLLABLES[a] + _SYLLABLES[b] + ("" if c % 3 == 0 else _SYLLABLES[c])
        names.append(word.capitalize())
    # Two-syllable names can collide; make every brand name unique.
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            names[i] = f"{name} {_SYLLABLES[i % s].capitalize()}{i}"
        seen[names[i]] = i
    return names


# --- state over time ---

def in_stock_at(catalog: Catalog, items: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """True where the item exists and is not in a stockout at time t (seconds since start)."""
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), items.shape)
    ok = catalog.item_created_t[items] <= t
    # Most items never run out: test the stockout windows only for those that do.
    risky = np.flatnonzero(catalog.has_stockouts[items])
    r_items, r_t = items[risky], t[risky]
    for k in range(MAX_STOCKOUTS):
        out = (catalog.item_oos_start[r_items, k] <= r_t) & (r_t < catalog.item_oos_end[r_items, k])
        ok[risky[out]] = False
    return ok


def price_at(catalog: Catalog, items: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    changed = catalog.item_price_change_t[items] <= t
    return np.where(changed, catalog.item_new_price[items], catalog.item_price[items])


# --- tables ---

def category_id_strings(n: int) -> pa.Array:
    return _prefixed("c", np.arange(n))


def item_id_strings(n: int) -> pa.Array:
    return _prefixed("i", np.arange(n))


def _prefixed(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), "")


def _timestamps(spec: ScaleSpec, seconds: np.ndarray) -> pa.Array:
    start_us = int(spec.start.timestamp() * 1_000_000)
    us = start_us + np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(us, type=pa.timestamp("us", tz="UTC"))


def categories_table(spec: ScaleSpec, cat: Catalog, schema: pa.Schema) -> pa.Table:
    ids = category_id_strings(cat.n_categories)
    parent = pa.array(cat.category_parent, mask=cat.category_parent < 0)
    return pa.table({
        "category_id": ids,
        "name": pa.array(cat.category_name, type=pa.string()),
        "parent_id": ids.take(parent),
        "vertical": pa.array(spec.verticals, type=pa.string()).take(pa.array(cat.category_vertical)),
        "level": pa.array(cat.category_level.astype(np.int64)),
    }, schema=schema)


def items_table(spec: ScaleSpec, cat: Catalog, schema: pa.Schema) -> pa.Table:
    n = cat.n_items
    ids = item_id_strings(n)
    brands = pa.array(cat.brand_name, type=pa.string()).take(pa.array(cat.item_brand))
    leaf_names = pa.array(cat.category_name, type=pa.string()).take(pa.array(cat.item_leaf))
    # "Lokavi Organic Dairy 240": brand + category words + model number.
    numbers = pc.cast(pa.array(cat.item_title_number.astype(np.int64)), pa.string())
    titles = pc.binary_join_element_wise(brands, leaf_names, numbers, " ")
    image_url = pc.binary_join_element_wise("https://img.shelfrank.example/", ids, ".jpg", "")
    image_url = pc.if_else(pa.array(cat.item_has_image), image_url, pa.scalar(None, pa.string()))
    # State at period start, or at creation for items created during the period.
    t0 = np.maximum(cat.item_created_t, 0.0)
    items_idx = np.arange(n)
    in_stock = in_stock_at(cat, items_idx, t0)
    tag_rows, tag_cols = np.nonzero(cat.item_tags)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(tag_rows, minlength=n))]).astype(np.int32)
    tags = pa.ListArray.from_arrays(pa.array(offsets), pa.array(TAG_NAMES).take(pa.array(tag_cols)))
    return pa.table({
        "item_id": ids,
        "title": titles,
        "vertical": pa.array(spec.verticals, type=pa.string()).take(pa.array(cat.item_vertical)),
        "category_id": category_id_strings(cat.n_categories).take(pa.array(cat.item_leaf)),
        "brand": brands,
        "price": pa.array(price_at(cat, items_idx, t0).astype(np.float64)),
        "has_image": pa.array(cat.item_has_image),
        "image_url": image_url,
        "in_stock": pa.array(in_stock),
        "stock_quantity": pa.array(np.where(in_stock, cat.item_stock_qty, 0).astype(np.int64)),
        "created_at": _timestamps(spec, cat.item_created_t),
        "tags": tags,
        "attributes": pa.nulls(n, pa.string()),
    }, schema=schema)


def inventory_table(spec: ScaleSpec, cat: Catalog, schema: pa.Schema) -> pa.Table:
    """One full state row (in_stock, quantity, price) per change: the first state, every
    stockout start and end inside the period, and every price change."""
    n = cat.n_items
    period = spec.period_seconds
    t0 = np.maximum(cat.item_created_t, 0.0)
    times = [t0]
    owners = [np.arange(n)]
    for k in range(MAX_STOCKOUTS):
        for edge in (cat.item_oos_start[:, k], cat.item_oos_end[:, k]):
            inside = (edge > t0) & (edge < period)
            times.append(edge[inside])
            owners.append(np.flatnonzero(inside))
    inside = cat.item_price_change_t < period
    times.append(cat.item_price_change_t[inside])
    owners.append(np.flatnonzero(inside))
    t = np.concatenate(times)
    item = np.concatenate(owners)
    order = np.lexsort((t, item))
    t, item = t[order], item[order]
    keep = np.ones(len(t), dtype=bool)
    keep[1:] = (item[1:] != item[:-1]) | (t[1:] != t[:-1])
    t, item = t[keep], item[keep]
    in_stock = in_stock_at(cat, item, t)
    return pa.table({
        "item_id": item_id_strings(n).take(pa.array(item)),
        "ts": _timestamps(spec, t),
        "in_stock": pa.array(in_stock),
        "quantity": pa.array(np.where(in_stock, cat.item_stock_qty[item], 0).astype(np.int64)),
        "price": pa.array(price_at(cat, item, t).astype(np.float64)),
    }, schema=schema)
