"""Every feature family on hand-made events with hand-computed values (offline and online agree)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from feature_tables import at, features_both_ways, insert_rows

from shelfrank.features import FEATURES, FeatureSpace, Vocabularies
from shelfrank.features.definitions import RECENCY_CAP_HOURS, ItemVectors

HALF = 0.5


def item(item_id, category="c1", price=10.0, brand="b1", vertical="food", **extra):
    return dict(item_id=item_id, title=item_id, vertical=vertical, category_id=category, brand=brand, price=price,
                created_at=at(-10), **extra)


def event(kind, days, item_id="a", user="u", session="s1", **extra):
    return dict(ts=at(days), user_id=user, session_id=session, event_type=kind, item_id=item_id, **extra)


@pytest.fixture
def store(con):
    insert_rows(con, "items", [item("a"), item("b", price=1000.0, category="c2", brand="b2"),
                               item("c", price=100.0, category="c2", brand=None, vertical="home")])
    return con


def test_decayed_counts_halve_after_one_half_life(store):
    insert_rows(store, "events", [event("click", 0), event("click", 0, item_id="b"), event("purchase", 0)])
    [f] = features_both_ways(store, [("u", "a", at(1))])
    assert f["user_clicks_1d"] == pytest.approx(2 * HALF)
    assert f["user_clicks_7d"] == pytest.approx(2 * HALF ** (1 / 7))
    assert f["user_clicks_30d"] == pytest.approx(2 * HALF ** (1 / 30))
    assert f["user_purchases_1d"] == pytest.approx(HALF)
    assert f["user_carts_7d"] == 0.0
    assert f["item_clicks_1d"] == pytest.approx(HALF)  # item a: one of the two clicks
    assert f["item_purchases_30d"] == pytest.approx(HALF ** (1 / 30))


def test_recency_is_hours_since_the_last_engagement_and_capped(store):
    insert_rows(store, "events", [event("impression", 0), event("click", 0, item_id="b"), event("impression", 1)])
    soon, late, never = features_both_ways(store, [("u", "a", at(1.5)), ("u", "a", at(40)), ("v", "a", at(1))])
    assert soon["user_hours_since_engagement"] == pytest.approx(36.0)  # impressions are not engagement
    assert soon["user_hours_since_category"] == RECENCY_CAP_HOURS  # the click was in c2, item a is in c1
    assert late["user_hours_since_engagement"] == RECENCY_CAP_HOURS
    assert never["user_hours_since_engagement"] == RECENCY_CAP_HOURS


def test_affinity_is_the_users_share_of_engagement_in_the_items_category_brand_and_vertical(store):
    # Same time for every event: decay multiplies all counts alike, so shares are plain ratios.
    insert_rows(store, "events", [event("click", 0), event("add_to_cart", 0), event("click", 0, item_id="c"),
                                  event("impression", 0, item_id="b")])
    a, b, c = features_both_ways(store, [("u", "a", at(3)), ("u", "b", at(3)), ("u", "c", at(3))])
    assert a["user_category_share"] == pytest.approx(2 / 3)
    assert a["user_brand_share"] == pytest.approx(2 / 3)
    assert a["user_vertical_share"] == pytest.approx(2 / 3)
    assert b["user_category_share"] == pytest.approx(1 / 3)  # c is in c2 too
    assert b["user_brand_share"] == 0.0
    assert c["user_brand_share"] == 0.0  # no brand: no affinity
    assert c["user_vertical_share"] == pytest.approx(1 / 3)


def test_price_level_is_the_decayed_mean_log_price_of_carted_and_bought_items(store):
    insert_rows(store, "events", [event("add_to_cart", 0, item_id="a"), event("purchase", 0, item_id="b"),
                                  event("click", 0, item_id="c")])  # clicks do not set the price level
    a, c = features_both_ways(store, [("u", "a", at(2)), ("u", "c", at(2))])
    assert a["user_log_price_level"] == pytest.approx(math.log(100.0))  # mean of log 10 and log 1000
    assert c["item_price_vs_user_level"] == pytest.approx(0.0)  # c costs 100
    assert a["item_price_vs_user_level"] == pytest.approx(math.log(10 / 100))


def test_bought_before_counts_only_purchases_strictly_before(store):
    insert_rows(store, "events", [event("purchase", 0, item_id="a"), event("add_to_cart", 0, item_id="b")])
    at_the_time, after, other = features_both_ways(store, [("u", "a", at(0)), ("u", "a", at(0.01)),
                                                           ("u", "b", at(1))])
    assert at_the_time["user_bought_item"] == 0.0
    assert after["user_bought_item"] == 1.0
    assert other["user_bought_item"] == 0.0


def test_smoothed_rates_use_their_beta_prior(store):
    rows = [event("impression", 0, user=f"u{k}") for k in range(10)]
    rows += [event("click", 0, user="u1"), event("click", 0, user="u2"), event("purchase", 0, user="u1")]
    insert_rows(store, "events", rows)
    fresh, month, unseen = features_both_ways(store, [("x", "a", at(0.001)), ("x", "a", at(30)), ("x", "b", at(1))])
    assert month["item_ctr"] == pytest.approx((2 * HALF + 1) / (10 * HALF + 20))
    assert month["item_conversion"] == pytest.approx((1 * HALF + 1) / (2 * HALF + 10))
    assert fresh["item_ctr"] == pytest.approx(3 / 30, rel=1e-4)
    assert unseen["item_ctr"] == pytest.approx(1 / 20)  # the prior mean
    assert unseen["item_conversion"] == pytest.approx(1 / 10)


def test_debiased_ctr_divides_clicks_by_the_examination_of_the_slots_shown(store):
    # Default curve: 1/(1+position) * 1/(1+0.5 row). Row 2, position 3: 1/4 * 1/2 = 0.125.
    insert_rows(store, "events", [event("impression", 0, row=0, position=0), event("impression", 0, row=2, position=3),
                                  event("impression", 0, row=None, position=None),  # unknown slot: row 0, position 0
                                  event("click", 0)])
    [f] = features_both_ways(store, [("x", "a", at(30))])
    assert f["item_debiased_ctr"] == pytest.approx((1 * HALF + 1) / (2.125 * HALF + 5))


def test_debiased_ctr_takes_the_examination_curve_as_an_input(store):
    curve = np.array([[1.0, 0.5], [0.5, 0.25]])  # 2 rows x 2 positions; beyond the edge: the edge value
    insert_rows(store, "events", [event("impression", 0, row=1, position=1), event("impression", 0, row=7, position=9),
                                  event("click", 0)])
    [f] = features_both_ways(store, [("x", "a", at(30))], FeatureSpace(examination_curve=curve))
    assert f["item_debiased_ctr"] == pytest.approx((1 * HALF + 1) / (0.5 * HALF + 5))


def test_item_attributes_price_vs_category_age_image_and_stock_at_t(con):
    insert_rows(con, "items", [
        item("a", price=10.0, image_url="http://img/a.png"), item("b", price=20.0, has_image=False),
        item("c", price=60.0, in_stock=None, stock_quantity=0),
    ])
    insert_rows(con, "inventory", [dict(item_id="a", ts=at(1), in_stock=False, price=40.0),
                                   dict(item_id="c", ts=at(1), quantity=5)])
    before, at_update, after, c_after = features_both_ways(con, [("u", "a", at(0)), ("u", "a", at(1)),
                                                                 ("u", "a", at(2)), ("u", "c", at(2))])
    assert before["item_price"] == 10.0 and before["item_in_stock"] == 1.0
    assert before["item_price_vs_category"] == pytest.approx(10 / 20)  # catalog median of 10, 20, 60
    assert before["item_has_image"] == 1.0  # derived from image_url
    assert before["item_age_days"] == pytest.approx(10.0)
    assert at_update["item_price"] == 10.0  # an update at exactly t is not yet visible
    assert after["item_price"] == 40.0 and after["item_in_stock"] == 0.0
    assert after["item_price_vs_category"] == pytest.approx(2.0)
    assert c_after["item_in_stock"] == 1.0  # quantity 5 arrived; the catalog said 0


def test_context_features_and_codes(store):
    insert_rows(store, "users", [dict(user_id="u", location="north", subscription="member")])
    vocab = Vocabularies.from_dict({"surface": ["ios", "web"], "location": ["north", "south"],
                                    "subscription": ["member", "none"]})
    rows = [("u", "a", at(2, hours=3), "web", "south"), ("v", "a", at(5, hours=-12), "tv", None)]
    web, unknown = features_both_ways(store, rows, FeatureSpace(vocabularies=vocab))
    assert (web["context_hour"], web["context_day_of_week"]) == (15.0, 2.0)  # Wednesday 15:00 UTC
    assert (web["context_surface"], web["context_location"]) == (2.0, 2.0)
    assert (web["user_location"], web["user_subscription"]) == (1.0, 1.0)
    assert (unknown["context_hour"], unknown["context_day_of_week"]) == (0.0, 5.0)  # Saturday midnight
    assert (unknown["context_surface"], unknown["context_location"], unknown["user_location"]) == (0.0, 0.0, 0.0)


def test_session_counts_only_the_current_session(store):
    insert_rows(store, "events", [event("click", 0, session="s1"), event("click", 1, session="s2"),
                                  event("add_to_cart", 1, session="s2"), event("click", 1, session="s2")])
    same, new = features_both_ways(store, [("u", "a", at(2), None, None, "s2"), ("u", "a", at(2), None, None, "s3")])
    assert (same["session_clicks"], same["session_carts"]) == (2.0, 1.0)
    assert (new["session_clicks"], new["session_carts"]) == (0.0, 0.0)


def test_unknown_users_and_items_get_each_features_default(store):
    insert_rows(store, "events", [event("click", 0), event("purchase", 0, item_id="b")])
    [f] = features_both_ways(store, [("nobody", "no-such-item", at(1))])
    for feature in FEATURES:
        if math.isnan(feature.default):
            assert math.isnan(f[feature.name]), feature.name
        elif feature.name not in ("context_hour", "context_day_of_week"):
            assert f[feature.name] == feature.default, feature.name


def test_collection_features_count_what_happened_inside_the_collection(store):
    insert_rows(store, "collections", [dict(collection_id="deals", title="Deals", source="curated",
                                            item_ids=["a", "b"])])
    rows = [event("impression", 0, user=f"u{k}", collection_id="deals", row=1, position=0) for k in range(4)]
    rows += [event("click", 0, user="u1", collection_id="deals"),
             event("purchase", 0, user="u1", collection_id="deals"),
             event("click", 0, user="u1", collection_id="other"), event("click", 0, user="u1")]
    insert_rows(store, "events", rows)
    deals, other = features_both_ways(store, [("u1", "a", at(7), None, None, None, "deals"),
                                              ("u2", "b", at(30), None, None, None, "nowhere")])
    assert deals["collection_impressions_7d"] == pytest.approx(4 * HALF)
    assert deals["collection_clicks_7d"] == pytest.approx(HALF)
    month = HALF ** (7 / 30)
    assert deals["collection_ctr"] == pytest.approx((month + 1) / (4 * month + 20))
    # Row 1, position 0 is examined with probability 1/1.5.
    assert deals["collection_debiased_ctr"] == pytest.approx((month + 1) / (4 * month / 1.5 + 5))
    assert deals["collection_conversion"] == pytest.approx((month + 1) / (month + 10))
    assert (deals["collection_source"], deals["collection_size"]) == (1.0, 2.0)
    assert deals["user_collection_share"] == pytest.approx(2 / 4)  # click + purchase of 4 engagements
    assert deals["user_hours_since_collection"] == pytest.approx(7 * 24)
    assert other["collection_ctr"] == pytest.approx(1 / 20)  # unknown collection: the prior
    assert other["collection_source"] == 0.0 and math.isnan(other["collection_size"])


def test_embedding_similarity_is_the_cosine_with_the_decayed_funnel_weighted_taste(store):
    # a and b are orthogonal unit vectors; c has no embedding.
    space = FeatureSpace(item_vectors=ItemVectors(np.array(["a", "b"]), np.array([[1.0, 0.0], [0.0, 1.0]])))
    insert_rows(store, "events", [event("click", 0, item_id="a", session="s1"),
                                  event("add_to_cart", 7, item_id="b", session="s1"),
                                  event("impression", 7, item_id="a", session="s1"),  # not engagement
                                  event("purchase", 14, item_id="a", session="s1")])  # at t: not yet seen
    rows = [("u", "a", at(14), None, None, "s1"), ("u", "b", at(14), None, None, "s1"),
            ("u", "c", at(14), None, None, "s1"), ("u", "a", at(14), None, None, "s2"), ("nobody", "a", at(14))]
    a, b, c, new_session, nobody = features_both_ways(store, rows, space)
    # User taste at day 14 (7-day half-life): click a (weight 1) two half-lives ago, cart b (weight 3)
    # one half-life ago: 0.25 a + 1.5 b.
    taste = math.hypot(0.25, 1.5)
    assert a["user_item_embedding_similarity"] == pytest.approx(0.25 / taste)
    assert b["user_item_embedding_similarity"] == pytest.approx(1.5 / taste)
    # Session taste (no decay): 1 a + 3 b.
    assert a["session_item_embedding_similarity"] == pytest.approx(1 / math.sqrt(10))
    assert b["session_item_embedding_similarity"] == pytest.approx(3 / math.sqrt(10))
    assert math.isnan(c["user_item_embedding_similarity"])  # no embedding for c
    assert math.isnan(new_session["session_item_embedding_similarity"])  # nothing earlier in s2
    assert new_session["user_item_embedding_similarity"] == pytest.approx(0.25 / taste)
    assert math.isnan(nobody["user_item_embedding_similarity"])


def test_embedding_similarity_is_nan_when_the_space_has_no_embeddings(store):
    insert_rows(store, "events", [event("click", 0, item_id="a")])
    [f] = features_both_ways(store, [("u", "a", at(1), None, None, "s1")])
    assert math.isnan(f["user_item_embedding_similarity"])
    assert math.isnan(f["session_item_embedding_similarity"])
