"""Measured facts of the simulated logs: the properties the rest of shelfrank learns from."""

from __future__ import annotations

import numpy as np
from simulated_store import TinyStore

from shelfrank.simulate import SCALES


def test_about_five_percent_of_items_have_no_image(tiny: TinyStore) -> None:
    share, mismatched = tiny.con.execute(
        "SELECT avg(CASE WHEN has_image THEN 0 ELSE 1 END), "
        "count(*) FILTER (WHERE has_image <> (image_url IS NOT NULL)) FROM items").fetchone()
    assert 0.035 <= share <= 0.065
    assert mismatched == 0


def test_new_items_arrive_during_the_period_and_are_never_shown_before(tiny: TinyStore) -> None:
    spec = SCALES["tiny"]
    share_new = tiny.con.execute("SELECT avg(CASE WHEN created_at >= ? THEN 1 ELSE 0 END) FROM items",
                                 [spec.start]).fetchone()[0]
    assert 0.03 <= share_new <= 0.07
    early = tiny.con.execute("SELECT count(*) FROM events e JOIN items i USING (item_id) "
                             "WHERE e.ts < i.created_at").fetchone()[0]
    assert early == 0
    shown_new = tiny.con.execute("SELECT count(DISTINCT item_id) FROM events e JOIN items i USING (item_id) "
                                 "WHERE e.event_type = 'impression' AND i.created_at >= ?", [spec.start]).fetchone()[0]
    assert shown_new > 0  # cold-start items do get shown once they exist


def test_stock_changes_over_time_and_nothing_out_of_stock_is_carted(tiny: TinyStore) -> None:
    q = tiny.con.execute
    went_out, came_back = q("SELECT count(*) FILTER (WHERE NOT in_stock), count(*) FILTER (WHERE in_stock) "
                            "FROM inventory WHERE ts > (SELECT min(ts) FROM inventory)").fetchone()
    assert went_out > 0 and came_back > 0
    carted_out_of_stock = q("""
        SELECT count(*) FROM events e ASOF JOIN inventory v ON e.item_id = v.item_id AND e.ts >= v.ts
        WHERE e.event_type IN ('add_to_cart', 'purchase') AND NOT v.in_stock""").fetchone()[0]
    assert carted_out_of_stock == 0
    # The old system filters out-of-stock items from a stale (hourly) view: mostly, not always.
    shown_out, shown = q("""
        SELECT count(*) FILTER (WHERE NOT v.in_stock), count(*) FROM events e
        ASOF JOIN inventory v ON e.item_id = v.item_id AND e.ts >= v.ts
        WHERE e.event_type = 'impression'""").fetchone()
    assert shown_out / shown < 0.01


def test_funnel_is_nested_per_impression(tiny: TinyStore) -> None:
    q = tiny.con.execute
    for stage, before in (("click", "impression"), ("add_to_cart", "click"), ("purchase", "add_to_cart")):
        orphans = q(f"""
            SELECT count(*) FROM events s WHERE s.event_type = '{stage}' AND NOT EXISTS (
              SELECT 1 FROM events b WHERE b.event_type = '{before}' AND b.request_id = s.request_id
              AND b.item_id = s.item_id AND b.row = s.row AND b.position = s.position AND b.ts <= s.ts)
        """).fetchone()[0]
        assert orphans == 0, stage


def test_funnel_rates_are_plausible(tiny: TinyStore) -> None:
    facts = tiny.summary.facts
    assert 0.02 <= facts["ctr"] <= 0.10
    assert 0.10 <= facts["cart_per_click"] <= 0.40
    assert 0.35 <= facts["purchase_per_cart"] <= 0.75
    counts = tiny.summary.counts
    assert counts["events.impression"] > counts["events.click"] > counts["events.add_to_cart"] \
        > counts["events.purchase"] > 0


def test_clickbait_gets_clicks_but_not_carts(tiny: TinyStore) -> None:
    clickbait = tiny.truth.catalog.item_clickbait
    rows = tiny.con.execute("""
        SELECT CAST(substr(item_id, 2) AS INTEGER) AS k,
               count(*) FILTER (WHERE event_type = 'impression'), count(*) FILTER (WHERE event_type = 'click'),
               count(*) FILTER (WHERE event_type = 'add_to_cart')
        FROM events WHERE item_id IS NOT NULL GROUP BY 1""").fetchnumpy()
    k, imps, clicks, carts = (np.asarray(rows[c]) for c in rows)
    bait = clickbait[k]
    ctr_bait, ctr_other = clicks[bait].sum() / imps[bait].sum(), clicks[~bait].sum() / imps[~bait].sum()
    cart_bait, cart_other = carts[bait].sum() / clicks[bait].sum(), carts[~bait].sum() / clicks[~bait].sum()
    assert ctr_bait > 1.3 * ctr_other
    assert cart_bait < 0.5 * cart_other


def _randomized_impressions(tiny: TinyStore) -> dict[str, np.ndarray]:
    """Impressions and clicks of requests served by the randomized policy, recognized from
    their logged propensities (the deterministic branch logs >= 0.95)."""
    return tiny.con.execute("""
        WITH rand AS (SELECT request_id FROM events WHERE event_type = 'impression'
                      GROUP BY request_id HAVING median(propensity) < 0.5)
        SELECT i.row, i.position, i.surface, (c.event_id IS NOT NULL)::INT AS clicked
        FROM events i JOIN rand USING (request_id)
        LEFT JOIN events c ON c.event_type = 'click' AND c.request_id = i.request_id
             AND c.row = i.row AND c.position = i.position
        WHERE i.event_type = 'impression'""").fetchnumpy()


def test_randomized_share_is_about_five_percent(tiny: TinyStore) -> None:
    share = tiny.con.execute("""
        SELECT avg((m < 0.5)::INT) FROM (SELECT median(propensity) AS m FROM events
        WHERE event_type = 'impression' GROUP BY request_id)""").fetchone()[0]
    assert 0.03 <= share <= 0.07


def test_ctr_by_position_on_randomized_traffic_follows_the_true_column_curve(tiny: TinyStore) -> None:
    d = _randomized_impressions(tiny)
    row, pos, clicked = np.asarray(d["row"]), np.asarray(d["position"]), np.asarray(d["clicked"])
    mobile = np.asarray(d["surface"]) != "web"
    # Given the row was rendered, P(examined) = sqrt(row curve) x column curve (see behaviour.py).
    truth = tiny.truth
    expected = np.sqrt(truth.row_curve(row, mobile)) * truth.column_curve(pos, mobile)
    groups = [(0,), (1,), (2, 3), (4, 5), (6, 7, 8, 9)]
    measured_ctr, expected_ctr = [], []
    for g in groups:
        sel = np.isin(pos, g)
        measured_ctr.append(clicked[sel].mean())
        expected_ctr.append(expected[sel].mean())
    measured_ratio = np.array(measured_ctr) / measured_ctr[0]
    expected_ratio = np.array(expected_ctr) / expected_ctr[0]
    assert np.all(np.diff(measured_ctr) < 0), measured_ctr
    # ~1,000 clicks: sampling noise, plus same-row satiation (<= 10% at the right end), fit in 30%.
    np.testing.assert_allclose(measured_ratio, expected_ratio, rtol=0.3)


def test_session_intent_shows_in_the_first_search_and_in_clicks(tiny: TinyStore) -> None:
    # Sessions that open with a search: the searched category's share of clicks far exceeds
    # its share of impressions.
    share_clicks, share_imps = tiny.con.execute("""
        WITH first_search AS (
            SELECT session_id, arg_min(query, ts) AS query FROM events WHERE event_type = 'search'
            GROUP BY session_id),
        named AS (SELECT e.event_type, lower(c.name) = s.query AS in_intent
                  FROM events e JOIN first_search s USING (session_id)
                  JOIN items i USING (item_id) JOIN categories c ON c.category_id = i.category_id
                  WHERE e.event_type IN ('impression', 'click'))
        SELECT avg(in_intent::INT) FILTER (WHERE event_type = 'click'),
               avg(in_intent::INT) FILTER (WHERE event_type = 'impression') FROM named""").fetchone()
    assert share_clicks > 2 * share_imps


def test_users_click_their_favourite_categories_more(tiny: TinyStore) -> None:
    users = tiny.truth.users
    d = tiny.con.execute("""
        SELECT CAST(substr(user_id, 2) AS INTEGER) AS u, CAST(substr(category_id, 2) AS INTEGER) AS c,
               (event_type = 'click')::INT AS clicked
        FROM events JOIN items USING (item_id) WHERE event_type IN ('impression', 'click')""").fetchnumpy()
    u, c, clicked = (np.asarray(d[k]) for k in ("u", "c", "clicked"))
    favourite = (users.fav_leaf[u, :5] == c[:, None]).any(axis=1)
    ctr_fav = clicked[favourite].sum() / max((~clicked.astype(bool) & favourite).sum(), 1)
    ctr_other = clicked[~favourite].sum() / max((~clicked.astype(bool) & ~favourite).sum(), 1)
    assert ctr_fav > 2 * ctr_other


def test_staples_are_bought_again_mostly_in_consumable_verticals(tiny: TinyStore) -> None:
    repeat_share = dict(tiny.con.execute("""
        WITH bought AS (SELECT e.user_id, e.item_id, i.vertical, count(*) AS n FROM events e
                        JOIN items i USING (item_id) WHERE e.event_type = 'purchase' GROUP BY ALL)
        SELECT vertical IN ('groceries', 'beauty', 'pets') AS consumable, avg((n >= 2)::INT) FROM bought
        GROUP BY 1""").fetchall())
    assert repeat_share[True] > 0.05
    assert repeat_share[False] == 0  # durable items are bought once


def test_groceries_are_clicked_more_in_the_morning_than_at_night(tiny: TinyStore) -> None:
    morning, evening = tiny.con.execute("""
        SELECT avg((event_type = 'click')::INT) FILTER (WHERE hour(ts) BETWEEN 7 AND 10),
               avg((event_type = 'click')::INT) FILTER (WHERE hour(ts) BETWEEN 18 AND 22)
        FROM events JOIN items USING (item_id)
        WHERE items.vertical = 'groceries' AND event_type IN ('impression', 'click')""").fetchone()
    assert morning > 1.15 * evening


def test_categories_trending_in_a_region_are_clicked_more_there(tiny: TinyStore) -> None:
    boost = tiny.truth.context.region_category
    d = tiny.con.execute("""
        SELECT CAST(substr(location, 2) AS INTEGER) - 1 AS region, CAST(substr(category_id, 2) AS INTEGER) AS c,
               (event_type = 'click')::INT AS clicked
        FROM events JOIN items USING (item_id) WHERE event_type IN ('impression', 'click')""").fetchnumpy()
    region, c, clicked = (np.asarray(d[k]) for k in ("region", "c", "clicked"))
    boosted = boost[region, c] > 0.5
    # The same categories, elsewhere: clicks per impression.
    trending = np.isin(c, np.unique(c[boosted]))
    here = clicked[boosted].sum() / max((boosted & (clicked == 0)).sum(), 1)
    elsewhere = clicked[trending & ~boosted].sum() / max((trending & ~boosted & (clicked == 0)).sum(), 1)
    assert here > 1.5 * elsewhere


def test_taste_drifts_towards_a_new_category(tiny: TinyStore) -> None:
    users, spec = tiny.truth.users, SCALES["tiny"]
    d = tiny.con.execute("""
        SELECT CAST(substr(user_id, 2) AS INTEGER) AS u, CAST(substr(category_id, 2) AS INTEGER) AS c,
               epoch(ts) - epoch(?::TIMESTAMPTZ) AS t, (event_type = 'click')::INT AS clicked
        FROM events JOIN items USING (item_id) WHERE event_type IN ('impression', 'click')""",
                         [spec.start]).fetchnumpy()
    u, c, t, clicked = (np.asarray(d[k]) for k in ("u", "c", "t", "clicked"))
    # Clicks per impression of the category each drifting user drifts to, before and after.
    sel = np.isfinite(users.drift_t[u]) & (c == users.fav_leaf[u, -1])
    after = t[sel] >= users.drift_t[u[sel]]
    ck = clicked[sel]
    ctr_before = ck[~after].sum() / max((~after & (ck == 0)).sum(), 1)
    ctr_after = ck[after].sum() / max((after & (ck == 0)).sum(), 1)
    assert ctr_after > 1.3 * ctr_before


def test_nobody_acts_before_signing_up(tiny: TinyStore) -> None:
    early, joined_during = tiny.con.execute("""
        SELECT count(*) FILTER (WHERE e.ts::DATE < u.signup_date),
               count(DISTINCT u.user_id) FILTER (WHERE u.signup_date >= ?::DATE)
        FROM events e JOIN users u USING (user_id)""", [SCALES["tiny"].start]).fetchone()
    assert early == 0
    assert joined_during > 0  # new users arrive during the period, with no history
