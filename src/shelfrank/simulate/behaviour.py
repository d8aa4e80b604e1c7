"""How simulated users respond to a page: scrolling, examining, clicking, carting, buying.

**What counts as an impression**: every item of every row the user scrolled to (the row was
rendered in the viewport), all its positions. Scroll depth is drawn per request so that
P(row r rendered) = sqrt(row curve(r)); inside a rendered row the user examines position p
with probability sqrt(row curve(r)) x column curve(p), so P(examined) = row curve x column
curve as the truth says. Only examined items can be clicked. Satiation counts the examined
items of the same leaf category / brand in rows above, and of the same leaf or brand to the
left in the same row (see truth.py).
An item out of stock at the moment of the add-to-cart (or purchase) cannot be carted
(bought). Delays: impression = request + 1.5 s per row; click 3 s + Exp(20 s) later;
add to cart 10 s + Exp(60 s) after the click; purchase 30 s + Exp(5 min) after the cart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfrank.simulate.catalog import in_stock_at, price_at
from shelfrank.simulate.logging_policy import Pages
from shelfrank.simulate.sessions import Requests
from shelfrank.simulate.truth import GroundTruth

IMPRESSION, CLICK, ADD_TO_CART, PURCHASE, SEARCH = range(5)


@dataclass
class EventArrays:
    """Events of one chunk as aligned columns (numbers, not strings yet)."""

    t: np.ndarray  # float64 seconds since start
    kind: np.ndarray  # int8
    request: np.ndarray  # int64 global request number (-1 for searches)
    user: np.ndarray
    session: np.ndarray
    item: np.ndarray  # -1 for searches
    collection: np.ndarray  # -1 for searches
    row: np.ndarray  # -1 for searches
    position: np.ndarray
    surface: np.ndarray
    region: np.ndarray
    query: np.ndarray  # category number named by a search, -1 otherwise
    quantity: np.ndarray  # 0 unless purchase
    price: np.ndarray  # 0 unless purchase
    propensity: np.ndarray  # 0 for searches

    def __len__(self) -> int:
        return len(self.t)


def respond(truth: GroundTruth, req: Requests, pages: Pages, first_request: int,
            rng: np.random.Generator) -> EventArrays:
    cat, p = truth.catalog, truth.params
    n, n_rows, per_row = pages.items.shape
    mobile = req.surface > 0
    row_curve = truth.row_curve(np.arange(n_rows)[None, :], mobile[:, None])  # [n, rows]
    col_curve = truth.column_curve(np.arange(per_row)[None, :], mobile[:, None])  # [n, per_row]
    reach = np.sqrt(row_curve)
    rendered = reach > rng.random(n)[:, None]
    present = (pages.items >= 0) & rendered[:, :, None]
    attention = reach[:, :, None] * col_curve[:, None, :]
    examined = present & (rng.random(present.shape) < attention)

    flat_present = np.flatnonzero(present)
    req_of, slot = np.divmod(flat_present, n_rows * per_row)
    row_of, pos_of = np.divmod(slot, per_row)
    imp_t = req.t[req_of] + 1.5 * row_of
    item = pages.items.reshape(-1)[flat_present].astype(np.int64)
    seen = examined.reshape(-1)[flat_present]

    # Funnel, for examined impressions only.
    e = np.flatnonzero(seen)
    e_req, e_item, e_t = req_of[e], item[e], imp_t[e]
    p_click, p_cart, p_purchase = truth.stage_probabilities(
        req.user[e_req].astype(np.int64), e_item, e_t, req.region[e_req].astype(np.int64),
        req.intent[e_req].astype(np.int64))
    e_leaf, e_brand, e_row = cat.item_leaf[e_item], cat.item_brand[e_item], row_of[e]
    e_req_row = e_req * n_rows + e_row
    leaf_same_row = _rank_in_group(e_req_row, e_leaf)
    brand_same_row = _rank_in_group(e_req_row, e_brand)
    same_row_either = leaf_same_row + brand_same_row - _rank_in_group(e_req_row, e_leaf * len(cat.brand_name) + e_brand)
    satiation = truth.satiation(leaf_above=_rank_in_group(e_req, e_leaf) - leaf_same_row,
                                brand_above=_rank_in_group(e_req, e_brand) - brand_same_row,
                                left=same_row_either)
    clicked = rng.random(len(e)) < p_click * satiation
    c = e[clicked]
    click_t = imp_t[c] + 3 + np.minimum(rng.exponential(20, len(c)), 600)
    cart_t = click_t + 10 + np.minimum(rng.exponential(60, len(c)), 900)
    carted = (rng.random(len(c)) < p_cart[clicked]) & in_stock_at(cat, item[c], cart_t)
    a = c[carted]
    buy_t = cart_t[carted] + 30 + np.minimum(rng.exponential(300, len(a)), 1800)
    bought = (rng.random(len(a)) < p_purchase[clicked][carted]) & in_stock_at(cat, item[a], buy_t)
    # Nobody buys the same durable item twice: later repeats stay in the cart.
    repeat = truth.record_purchases(req.user[req_of[a[bought]]], item[a[bought]], buy_t[bought])
    bought[np.flatnonzero(bought)[repeat]] = False
    b = a[bought]
    q_p = np.where(truth.mean_quantity(item[b]) > 1.3, p["quantity_p_consumable"], p["quantity_p_other"])
    quantity = rng.geometric(q_p)

    # Searches: a query naming a category, just before the request they lead to.
    s = np.flatnonzero(req.search_query >= 0)

    slots = np.concatenate([flat_present, flat_present[c], flat_present[a], flat_present[b]])
    kinds = np.concatenate([np.full(len(flat_present), IMPRESSION), np.full(len(c), CLICK),
                            np.full(len(a), ADD_TO_CART), np.full(len(b), PURCHASE)]).astype(np.int8)
    src = np.concatenate([np.arange(len(flat_present)), c, a, b])
    rq = req_of[src]
    n_item_events = len(slots)
    prop = pages.propensity.reshape(-1)[slots]
    out = EventArrays(
        t=np.concatenate([imp_t, click_t, cart_t[carted], buy_t[bought], req.t[s] - 20.0]),
        kind=np.concatenate([kinds, np.full(len(s), SEARCH, dtype=np.int8)]),
        request=np.concatenate([first_request + rq, np.full(len(s), -1)]),
        user=np.concatenate([req.user[rq], req.user[s]]),
        session=np.concatenate([req.session[rq], req.session[s]]),
        item=np.concatenate([item[src], np.full(len(s), -1)]),
        collection=np.concatenate([pages.collection[rq, row_of[src]], np.full(len(s), -1)]),
        row=np.concatenate([row_of[src], np.full(len(s), -1)]),
        position=np.concatenate([pos_of[src], np.full(len(s), -1)]),
        surface=np.concatenate([req.surface[rq], req.surface[s]]),
        region=np.concatenate([req.region[rq], req.region[s]]),
        query=np.concatenate([np.full(n_item_events, -1), req.search_query[s]]),
        quantity=np.concatenate([np.zeros(n_item_events - len(b), dtype=np.int64), quantity,
                                 np.zeros(len(s), dtype=np.int64)]),
        price=np.concatenate([np.zeros(n_item_events - len(b)), price_at(cat, item[b], buy_t[bought]),
                              np.zeros(len(s))]),
        propensity=np.concatenate([prop, np.zeros(len(s))]),
    )
    order = np.argsort(np.round(out.t, 6), kind="stable")
    return EventArrays(**{k: v[order] for k, v in out.__dict__.items()})


def _rank_in_group(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """For entries in (group, reading) order: how many earlier entries share group and key."""
    combined = group.astype(np.int64) * (int(key.max(initial=0)) + 1) + key
    order = np.argsort(combined, kind="stable")
    sorted_key = combined[order]
    first = np.searchsorted(sorted_key, sorted_key, side="left")
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - first
    return rank
