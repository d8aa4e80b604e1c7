"""Rules sources: each proposes what its rule says, on the ten-item catalog (tiny_catalog.py)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_catalog import DAY, T, clicks, context, events_table, history, ids

from shelfrank.candidates.base import CandidateCollection
from shelfrank.candidates.rules import (
    RULE_SOURCES,
    BecauseYouViewedSource,
    BuyAgainSource,
    InYourCartSource,
    NewArrivalsSource,
    RecentCategoriesSource,
    TopBrandsSource,
    TrendingNearYouSource,
    default_rule_sources,
    stored_collection_ids,
)
from shelfrank.store.catalog import Catalog, CuratedDefinition
from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE, InMemoryUserHistory


def by_id(collections: list[CandidateCollection]) -> dict[str, CandidateCollection]:
    return {c.collection_id: c for c in collections}


# --- top brands -----------------------------------------------------------------------------

def test_top_brands_ranks_brands_by_purchases_and_carts_not_clicks(catalog: Catalog) -> None:
    h = history(catalog, [("i03", PURCHASE, 2), ("i03", PURCHASE, 1), ("i01", ADD_TO_CART, 1)]
                + [("i08", CLICK, 0.5)] * 5)
    out = TopBrandsSource(catalog).propose(context(h))
    assert [c.title for c in out] == ["More from Bolt", "More from Acme"]
    assert out[0].reason == "Because you bought from Bolt"
    assert out[1].reason == "Because you added to your cart from Acme"
    assert out[0].prior > out[1].prior


def test_top_brand_collections_hold_only_that_brands_in_stock_items(catalog: Catalog) -> None:
    h = history(catalog, [("i03", PURCHASE, 2), ("i01", PURCHASE, 1)])
    out = by_id(TopBrandsSource(catalog).propose(context(h)))
    assert ids(catalog, out["rules:top_brands:Bolt"].items) == ["i03", "i07"]  # i04 is out of stock
    assert ids(catalog, out["rules:top_brands:Acme"].items) == ["i01", "i02", "i05", "i10"]


def test_generated_collections_take_the_stored_id_when_one_matches(catalog: Catalog) -> None:
    defs = [CuratedDefinition("brand:b7", "Bolt", rule_brands=("Bolt",), source="rules"),
            CuratedDefinition("cat:c4", "Phones", rule_categories=("c4",), source="rules"),
            CuratedDefinition("cur:x", "Phones on sale", rule_categories=("c1",), rule_tags=("sale",))]
    stored = stored_collection_ids(defs)
    assert stored == {("brand", "Bolt"): "brand:b7", ("category", "c4"): "cat:c4"}
    h = history(catalog, [("i03", PURCHASE, 2), ("i01", PURCHASE, 1)] + clicks("i01", "i07"))
    assert {c.collection_id for c in TopBrandsSource(catalog, stored_ids=stored).propose(context(h))} == {
        "brand:b7", "rules:top_brands:Acme"}
    assert {c.collection_id for c in RecentCategoriesSource(catalog, stored_ids=stored).propose(context(h))} == {
        "cat:c4", "rules:recent_categories:c1"}


# --- buy again ------------------------------------------------------------------------------

BOUGHT = [("i01", PURCHASE, 10), ("i01", PURCHASE, 5), ("i05", PURCHASE, 3), ("i07", PURCHASE, 2),
          ("i03", PURCHASE, 0.5), ("i04", PURCHASE, 4), ("i06", CLICK, 1), ("i02", ADD_TO_CART, 1)]


def test_buy_again_items_are_exactly_bought_in_stock_items_not_bought_in_the_last_day(catalog: Catalog) -> None:
    (c,) = BuyAgainSource(catalog).propose(context(history(catalog, BOUGHT)))
    # i03: bought 12 hours ago; i04: out of stock; i06 clicked and i02 carted only.
    assert ids(catalog, c.items) == ["i01", "i07", "i05"]  # i01 bought twice first, then the most recent
    assert c.collection_id == "rules:buy_again:purchases"


def test_buy_again_puts_categories_with_repeat_purchases_first(catalog: Catalog) -> None:
    rates = np.zeros(len(catalog.category_ids))
    rates[catalog.category_index("c2")] = 0.5  # everyone rebuys bakery
    (c,) = BuyAgainSource(catalog, category_repeat_rate=rates).propose(context(history(catalog, BOUGHT)))
    assert ids(catalog, c.items) == ["i01", "i05", "i07"]
    assert c.signals["n_consumable"] == 2


def test_buy_again_without_purchases_proposes_nothing(catalog: Catalog) -> None:
    assert BuyAgainSource(catalog).propose(context(history(catalog, clicks("i01", "i02")))) == []


# --- recent categories ----------------------------------------------------------------------

def test_recent_categories_follow_recent_clicks_most_clicked_first(catalog: Catalog) -> None:
    h = history(catalog, clicks("i01", "i07", "i08", "i07") + [("i05", ADD_TO_CART, 0.1), ("i06", CLICK, 45)])
    out = RecentCategoriesSource(catalog).propose(context(h))
    assert [c.title for c in out] == ["Phones", "Dairy"]  # bakery: carted, and clicked 45 days ago
    assert ids(catalog, out[0].items) == ["i07", "i08", "i10"]
    assert out[0].signals["category_clicks"] == 3
    assert out[1].reason == "Because you browsed Dairy"


# --- because you viewed ---------------------------------------------------------------------

def test_because_viewed_uses_the_most_recent_click_and_ranks_by_category_band_then_brand(catalog: Catalog) -> None:
    (c,) = BecauseYouViewedSource(catalog).propose(context(history(catalog, clicks("i01", "i07"))))
    assert c.collection_id == "because_viewed:i07"
    assert c.reason == "Because you viewed Item i07"
    # i08: phone one band away; i10: phone two bands away; i03: Bolt in another category; i09 out of stock.
    assert ids(catalog, c.items) == ["i08", "i10", "i03"]


def test_because_viewed_uses_an_injected_similarity(catalog: Catalog) -> None:
    def similar(item: int, k: int) -> np.ndarray:
        return np.asarray([item, 8, 7, 7, 99, -1, 0])  # itself, out of stock, repeat, outside the catalog

    (c,) = BecauseYouViewedSource(catalog, similar_items=similar).propose(context(history(catalog, clicks("i02"))))
    assert ids(catalog, c.items) == ["i08", "i01"]


# --- trending -------------------------------------------------------------------------------

@pytest.fixture
def trending_state(catalog: Catalog) -> InMemoryUserHistory:
    state = InMemoryUserHistory(catalog)
    state.update(events_table(
        [("a", "i02", "click", 0.1, "r1")] * 5 + [("b", "i08", "purchase", 0.1, "r2")] * 2
        + [("b", "i09", "purchase", 0.1, "r2")] * 3 + [("c", "i06", "add_to_cart", 0.2, "r3")]))
    return state


def test_trending_follows_the_users_location_and_skips_out_of_stock(catalog: Catalog,
                                                                     trending_state: InMemoryUserHistory) -> None:
    source = TrendingNearYouSource(catalog, trending_state)
    (r1,) = source.propose(context(location="r1"))
    (r2,) = source.propose(context(location="r2"))
    assert r1.collection_id == "rules:trending:r1" and r1.title == "Trending near you"
    assert ids(catalog, r1.items)[0] == "i02" and ids(catalog, r2.items)[0] == "i08"
    assert "i09" not in ids(catalog, r2.items)
    # topped up from the global list, best first: i08 (20), i02 (5), i06 (3)
    assert ids(catalog, r1.items) == ["i02", "i08", "i06"]


def test_trending_without_a_known_location_is_global(catalog: Catalog, trending_state: InMemoryUserHistory) -> None:
    source = TrendingNearYouSource(catalog, trending_state)
    for location in ("", "r9"):
        (c,) = source.propose(context(location=location))
        assert c.collection_id == "rules:trending:global" and c.title == "Trending now"
        assert ids(catalog, c.items) == ["i08", "i02", "i06"]


# --- new arrivals ---------------------------------------------------------------------------

def test_new_arrivals_are_recent_in_stock_items_of_the_users_top_categories(catalog: Catalog) -> None:
    (c,) = NewArrivalsSource(catalog, max_age_days=30).propose(context(history(catalog, clicks("i10"))))
    assert sorted(ids(catalog, c.items)) == ["i07", "i08"]  # i09 out of stock, i10 is 40 days old
    assert c.collection_id == "rules:new_arrivals:for_you"
    assert all(T - catalog.created_t[c.items] <= 30 * DAY)
    assert NewArrivalsSource(catalog).propose(context(history(catalog, clicks("i01")))) == []  # no new dairy


def test_new_arrivals_for_a_new_user_come_from_popular_categories(catalog: Catalog) -> None:
    # category popularity: dairy 34 > bakery 11 > phones 10; the new items are phones.
    assert NewArrivalsSource(catalog, n_categories=2).propose(context()) == []
    (c,) = NewArrivalsSource(catalog, n_categories=3).propose(context())
    assert c.collection_id == "rules:new_arrivals:popular" and sorted(ids(catalog, c.items)) == ["i07", "i08"]


# --- every source -----------------------------------------------------------------------------

def test_a_new_user_gets_nothing_from_personalized_sources_but_trending_and_new_arrivals(
        catalog: Catalog, trending_state: InMemoryUserHistory) -> None:
    sources = default_rule_sources(catalog, trending_state)
    unknown = context(trending_state.history("nobody"), user_id="nobody")
    proposed = {s.name: s.propose(unknown) for s in sources}
    assert set(proposed) == set(RULE_SOURCES)
    assert {name for name, out in proposed.items() if out} == {"trending", "new_arrivals"}


def test_generated_ids_are_stable_across_requests(catalog: Catalog, trending_state: InMemoryUserHistory) -> None:
    h = history(catalog, [*BOUGHT, *clicks("i01", "i07"), ("i04", ADD_TO_CART, 0.1)])
    for source in default_rule_sources(catalog, trending_state):
        first = [c.collection_id for c in source.propose(context(h, "r1", user_id="a"))]
        later = [c.collection_id for c in source.propose(context(h, "r1", t=T + 60, user_id="b"))]
        assert first and first == later, source.name


def test_events_at_or_after_the_request_time_are_ignored(catalog: Catalog) -> None:
    h = history(catalog, [("i03", PURCHASE, 3), ("i01", PURCHASE, -1)])  # the second is in the future
    assert [c.title for c in TopBrandsSource(catalog).propose(context(h))] == ["More from Bolt"]


def test_right_after_an_add_to_cart_the_carted_items_category_is_proposed_without_the_item(catalog: Catalog) -> None:
    source = InYourCartSource(catalog)
    carted = catalog.index_of(["i04"])[0]
    h = history(catalog, [("i01", PURCHASE, 5), ("i04", ADD_TO_CART, 0.1)])
    (c,) = source.propose(context(h))
    assert c.title.startswith("Goes with") and carted not in c.items
    assert set(catalog.category[c.items]) == {catalog.category[carted]}
    assert catalog.in_stock[c.items].all()
    # A day and more later the cart no longer steers the page.
    assert source.propose(context(history(catalog, [("i04", ADD_TO_CART, 2.0)]))) == []


def test_popular_categories_follow_stock_changes_between_requests(catalog: Catalog) -> None:
    from shelfrank.candidates.popular import PopularCategoriesSource

    source = PopularCategoriesSource(catalog, min_items=1)
    before = source.propose(context())
    assert before and [c.collection_id for c in source.propose(context())] == [c.collection_id for c in before]
    gone = int(before[0].items[0])
    catalog.in_stock[gone] = False
    after = source.propose(context())
    assert all(gone not in c.items for c in after)
    catalog.in_stock[gone] = True
    again = source.propose(context())
    assert any(gone in c.items for c in again)
    assert all(catalog.in_stock[c.items].all() for c in again)
