"""Synthetic users: sparse tastes that drift, brand loyalty, price level, home region,
preferred surface, staple items and a long-tailed activity level."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.simulate.catalog import DAY, N_LATENT, Catalog
from shelfrank.simulate.scales import CONSUMABLE_VERTICALS, ScaleSpec

N_FAVOURITES = 5  # favourite leaf categories per user; one more slot holds the drift category
N_STAPLES = 3


@dataclass
class Users:
    fav_leaf: np.ndarray  # int32 [n, N_FAVOURITES + 1]; last column: the category taste drifts to
    fav_mid: np.ndarray  # int32, parents of fav_leaf
    fav_weight: np.ndarray  # float32 [n, N_FAVOURITES + 1]; sums to 1, last column 0 (before drift)
    drift_t: np.ndarray  # float64 seconds since start (inf: no drift)
    drift_share: np.ndarray  # float32: weight that moves to the drift category
    vertical_affinity: np.ndarray  # float32 [n, n_verticals], sums to 1
    fav_brand: np.ndarray  # int32 [n, 2]
    loyalty: np.ndarray  # float32 brand loyalty strength
    price_pref: np.ndarray  # float32: preferred log-price offset from a category's typical price
    price_sensitivity: np.ndarray  # float32
    member: np.ndarray  # bool
    home_region: np.ndarray  # int8
    preferred_surface: np.ndarray  # int8 index into SURFACES
    activity: np.ndarray  # float32, mean 1, long-tailed
    signup_t: np.ndarray  # float64 seconds since start (negative: before the period)
    staples: np.ndarray  # int32 [n, N_STAPLES], -1 for none
    latent: np.ndarray  # float32 [n, N_LATENT]

    @property
    def n_users(self) -> int:
        return len(self.member)


def region_names(n: int) -> list[str]:
    return [f"r{k + 1:02d}" for k in range(n)]


def sample_leaf_in_verticals(cat: Catalog, verticals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One leaf category per entry, drawn within that entry's vertical by category demand."""
    out = np.empty(len(verticals), dtype=np.int32)
    leaf_vertical = cat.category_vertical[cat.leaf_ids]
    for v in np.unique(verticals):
        rows = np.flatnonzero(verticals == v)
        leaves = cat.leaf_ids[leaf_vertical == v]
        p = cat.leaf_popularity[leaves] ** 0.7  # users like niche categories more than sales do
        out[rows] = rng.choice(leaves, len(rows), p=p / p.sum())
    return out


def build_users(spec: ScaleSpec, cat: Catalog, rng: np.random.Generator) -> Users:
    n = spec.n_users
    n_vert = spec.n_verticals
    vert_pop = np.bincount(cat.category_vertical[cat.leaf_ids], weights=cat.leaf_popularity[cat.leaf_ids],
                           minlength=n_vert)
    # Sparse vertical affinity: most users care about 1-3 verticals.
    vert_aff = rng.gamma(np.broadcast_to(0.35 * n_vert * vert_pop, (n, n_vert)))
    vert_aff = (vert_aff + 1e-6) / (vert_aff + 1e-6).sum(axis=1, keepdims=True)
    vert_aff = vert_aff.astype(np.float32)

    fav_vert = _sample_rows(vert_aff, N_FAVOURITES, rng)
    fav_leaf = np.empty((n, N_FAVOURITES + 1), dtype=np.int32)
    fav_leaf[:, :N_FAVOURITES] = sample_leaf_in_verticals(cat, fav_vert.ravel(), rng).reshape(n, N_FAVOURITES)
    # Taste drift: some weight moves to a category the user did not care about.
    drift_vert = rng.choice(n_vert, n, p=vert_pop / vert_pop.sum())
    fav_leaf[:, N_FAVOURITES] = sample_leaf_in_verticals(cat, drift_vert, rng)
    fav_weight = np.zeros((n, N_FAVOURITES + 1), dtype=np.float32)
    fav_weight[:, :N_FAVOURITES] = rng.dirichlet(np.full(N_FAVOURITES, 0.8), n)
    drifts = rng.random(n) < 0.4
    drift_t = np.where(drifts, rng.uniform(0.2, 0.8, n) * spec.period_seconds, np.inf)
    drift_share = rng.uniform(0.4, 0.7, n).astype(np.float32)

    # Favourite brands: popular brands of the verticals of the two first favourite leaves.
    fav_brand = np.empty((n, 2), dtype=np.int32)
    for k in range(2):
        v_of = cat.category_vertical[fav_leaf[:, k]]
        for v in range(n_vert):
            rows = np.flatnonzero(v_of == v)
            brands = np.flatnonzero(cat.brand_vertical == v)
            size = np.bincount(cat.item_brand, minlength=len(cat.brand_name))[brands] + 0.5
            fav_brand[rows, k] = rng.choice(brands, len(rows), p=size / size.sum())

    member = rng.random(n) < 0.18
    activity = rng.lognormal(0.0, 1.0, n) * np.where(member, 1.3, 1.0)
    activity = (activity / activity.mean()).astype(np.float32)
    region_p = 1.0 / np.arange(1, spec.n_regions + 1) ** 0.6
    signup_t = -rng.uniform(0, 3 * 365 * DAY, n)
    joins = rng.random(n) < 0.07  # new users: no history before they join
    signup_t[joins] = rng.uniform(0.0, 0.85, joins.sum()) * spec.period_seconds
    signup_t = np.floor(signup_t / DAY) * DAY  # users sign up on a date

    # Staples: for favourite leaves in consumable verticals, one item each the user rebuys.
    consumable = np.isin(np.arange(n_vert), [spec.verticals.index(v) for v in CONSUMABLE_VERTICALS
                                             if v in spec.verticals])
    order = np.argsort(cat.item_leaf, kind="stable")
    leaf_start = np.searchsorted(cat.item_leaf[order], np.arange(cat.n_categories))
    leaf_count = np.bincount(cat.item_leaf, minlength=cat.n_categories)
    pick_leaf = fav_leaf[:, :N_STAPLES]
    offset = (rng.random(pick_leaf.shape) * leaf_count[pick_leaf]).astype(np.int64)
    staples = order[np.minimum(leaf_start[pick_leaf] + offset, cat.n_items - 1)].astype(np.int32)
    eligible = consumable[cat.category_vertical[pick_leaf]] & (cat.item_created_t[staples] < 0)
    staples[~eligible] = -1

    return Users(
        fav_leaf=fav_leaf, fav_mid=cat.category_parent[fav_leaf], fav_weight=fav_weight, drift_t=drift_t,
        drift_share=drift_share, vertical_affinity=vert_aff, fav_brand=fav_brand,
        loyalty=rng.uniform(0.0, 1.2, n).astype(np.float32),
        price_pref=rng.normal(0.0, 0.35, n).astype(np.float32),
        price_sensitivity=rng.gamma(2.0, 0.5, n).astype(np.float32),
        member=member, home_region=rng.choice(spec.n_regions, n, p=region_p / region_p.sum()).astype(np.int8),
        preferred_surface=rng.choice(3, n, p=[0.4, 0.35, 0.25]).astype(np.int8),
        activity=activity, signup_t=signup_t, staples=staples,
        latent=rng.normal(0.0, 1.0, (n, N_LATENT)).astype(np.float32),
    )


def _sample_rows(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k independent draws per row from that row's (normalized) weights."""
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    u = rng.random((len(weights), k))
    return (u[:, :, None] > cum[:, None, :]).sum(axis=2).clip(0, weights.shape[1] - 1)


def current_weights(users: Users, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Favourite-category weights of users u at times t (drift applied)."""
    w = users.fav_weight[u].copy()
    drifted = t >= users.drift_t[u]
    share = users.drift_share[u][drifted]
    w[drifted, :N_FAVOURITES] *= (1 - share)[:, None]
    w[drifted, N_FAVOURITES] = share
    return w


def users_table(spec: ScaleSpec, users: Users, schema: pa.Schema) -> pa.Table:
    n = users.n_users
    start_day = int(spec.start.timestamp() // DAY)
    days = (start_day + np.floor(users.signup_t / DAY)).astype(np.int32)
    ids = pc.binary_join_element_wise("u", pc.cast(pa.array(np.arange(n)), pa.string()), "")
    return pa.table({
        "user_id": ids,
        "signup_date": pa.array(days, type=pa.int32()).cast(pa.date32()),
        "location": pa.array(region_names(spec.n_regions)).take(pa.array(users.home_region)),
        "subscription": pa.array(np.where(users.member, "member", "none")),
    }, schema=schema)
