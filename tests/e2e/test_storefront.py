"""The storefront in headless chromium over the real engine: the homepage is the API's page, two
shoppers differ, a click and an add to cart change the next page, the side-by-side view, phone
width, an item set out of stock in the operator view leaves the homepage, and the report's plots.
Every test also fails on a console error (the `page` fixture)."""

from __future__ import annotations

import uuid

import pytest

READY = "#storefront[data-state='ready']"


def _load(page, path: str) -> dict:
    """Open a storefront URL; the /v1/homepage JSON the page was built from."""
    with page.expect_response(lambda r: "/v1/homepage" in r.url and "pipeline=default" in r.url) as response:
        page.goto(path)
    page.wait_for_selector(READY)
    return response.value.json()


def _shown(page, column: str = "rows-main") -> list[str]:
    return page.locator(f"#{column} .card").evaluate_all("cards => cards.map(c => c.dataset.itemId)")


def _api_items(api: dict) -> list[str]:
    return [s["item_id"] for r in api["rows"] for s in r["items"]]


def _sample_users(page) -> list[str]:
    values = page.locator("#user-pick option").evaluate_all("os => os.map(o => o.value)")
    return [v for v in values if not v.startswith("__")]


def test_the_homepage_shows_the_api_page_as_carousels_of_cards_with_reasons(page, screenshots):
    page.goto("/")
    page.wait_for_selector(READY)
    users = _sample_users(page)
    assert len(users) >= 2, "the store should offer sample shoppers of contrasting tastes"
    api = _load(page, f"/?user={users[0]}")
    assert not api["new_user"] and not api["fallback"], api.get("fallback_reason")
    assert 4 <= len(api["rows"]) <= 8
    assert page.locator("#rows-main section.collection").count() == len(api["rows"])
    assert page.locator("#rows-main .carousel").count() == len(api["rows"])
    assert page.locator("#rows-main h3").all_inner_texts() == [r["title"] for r in api["rows"]]
    assert _shown(page) == _api_items(api)  # every card, in the API's order
    # a card's reason shows on keyboard focus (and on hover)
    first = page.locator("#rows-main .card").first
    tip = first.locator(".tip")
    assert not tip.is_visible()
    first.focus()
    assert tip.is_visible() and tip.inner_text() == (api["rows"][0]["items"][0]["reason"] or "Recommended for you")
    assert page.locator("#rows-main .thumb[role='img'][aria-label]").count() == len(_api_items(api))
    screenshots(page, "storefront")
    # debug mode: the scores and propensities of the same kind of page
    page.locator("#debug").check()
    page.wait_for_selector("body.debug " + READY)
    line = page.locator("#rows-main .card .debug-line").first
    assert line.is_visible() and "propensity" in line.inner_text()
    assert page.locator("#meta-main").is_visible()
    screenshots(page, "storefront-debug")


def test_two_shoppers_of_contrasting_tastes_get_different_pages(page):
    page.goto("/")
    page.wait_for_selector(READY)
    first, second = _sample_users(page)[:2]
    a = _load(page, f"/?user={first}")
    b = _load(page, f"/?user={second}")
    assert _shown(page) == _api_items(b)
    assert _api_items(a) != _api_items(b)
    assert len(set(_api_items(a)) & set(_api_items(b))) < 0.8 * len(_api_items(a))


def test_a_click_and_an_add_to_cart_change_the_next_page_and_the_page_says_what_changed(page, screenshots):
    user = f"e2e-newcomer-{uuid.uuid4().hex[:8]}"
    before = _load(page, f"/?user={user}")
    assert before["new_user"]
    renders = int(page.locator("#storefront").get_attribute("data-renders"))
    card = page.locator("#rows-main section.collection").last.locator(".card").nth(1)
    item = card.get_attribute("data-item-id")
    card.focus()
    page.keyboard.press("Enter")  # keyboard reachable: a card is a button
    dialog = page.locator("#item-dialog")
    assert dialog.is_visible()
    page.wait_for_selector("#dialog-status:has-text('Click logged')")
    with page.expect_response(lambda r: "/v1/homepage" in r.url) as response:
        page.locator("#add-to-cart").click()
    after = response.value.json()
    page.wait_for_function(f"document.getElementById('storefront').dataset.renders === '{renders + 1}'"
                           " && document.getElementById('storefront').dataset.state === 'ready'")
    assert not after["new_user"], "the shopper's events make them known on the next page"
    assert _api_items(after) != _api_items(before)
    assert _shown(page) == _api_items(after)
    changes = page.locator("#changes")
    assert changes.is_visible() and "Nothing changed" not in changes.inner_text()
    assert page.locator("#rows-main .is-new, #rows-main .is-moved, #rows-main .is-new-item").count() > 0
    assert item  # the carted item's category now shapes the page (the serving tests check which)
    screenshots(page, "live-session")


def test_side_by_side_with_the_popularity_pipeline_and_a_phone_width_screen(page, screenshots):
    page.goto("/")
    page.wait_for_selector(READY)
    user = _sample_users(page)[0]
    with page.expect_response(lambda r: "pipeline=popularity" in r.url) as response:
        page.goto(f"/?user={user}&compare=popularity")
    page.wait_for_selector(READY + " #column-compare:not([hidden])")
    popular = response.value.json()
    assert popular["pipeline"] == "popularity"
    assert _shown(page, "rows-compare") == _api_items(popular)
    assert "shares" in page.locator("#compare-summary").inner_text()
    screenshots(page, "side-by-side")
    # the context controls are the request's context
    with page.expect_response(lambda r: "/v1/homepage" in r.url and "pipeline=default" in r.url) as response:
        page.locator("#ctx-surface").select_option("ios")
    assert response.value.json()["surface"] == "ios"
    page.wait_for_selector(READY)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/?user={user}")
    page.wait_for_selector(READY)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at phone width"
    screenshots(page, "phone")


def test_an_item_set_out_of_stock_in_the_operator_view_leaves_the_homepage(page, storefront, screenshots):
    page.goto("/")
    page.wait_for_selector(READY)
    user = _sample_users(page)[1]
    before = _load(page, f"/?user={user}")
    item = before["rows"][0]["items"][0]["item_id"]
    page.goto("/operator")
    page.locator("#admin-token").fill(storefront.admin_token)
    page.locator("#token-form button[type=submit]").click()
    page.wait_for_selector("#operator[data-state='ready']")
    assert page.locator("#model-serving").inner_text() == storefront.service.engine.model_version
    page.locator("#item-query").fill(item)
    page.locator("#item-search button").click()
    stock = page.locator(f"[id='stock-{item}']")
    stock.wait_for()
    assert stock.is_checked()
    stock.uncheck()
    page.wait_for_selector("#op-status:has-text('out of stock')")
    screenshots(page, "operator")
    after = _load(page, f"/?user={user}")
    assert item not in _api_items(after)
    assert item not in _shown(page)
    assert page.locator(f"[data-item-id='{item}']").count() == 0


def test_the_operator_view_creates_a_pinned_curated_collection(page, storefront):
    catalog = storefront.service.engine.catalog
    items = [str(i) for i in catalog.item_ids[catalog.in_stock][::7][:12]]
    page.goto("/operator")
    page.locator("#admin-token").fill(storefront.admin_token)
    page.locator("#token-form button[type=submit]").click()
    page.wait_for_selector("#operator[data-state='ready']")
    page.locator("#col-id").fill("e2e-picks")
    page.locator("#col-title").fill("Staff picks")
    page.locator("#col-items").fill(", ".join(items))
    page.locator("#col-pinned").fill("0")
    page.locator("#collection-form button[type=submit]").click()
    page.wait_for_selector("#collections-table tr[data-collection-id='e2e-picks']")
    api = _load(page, "/?user=e2e-curator-2")
    assert api["rows"][0]["collection_id"] == "e2e-picks" and api["rows"][0]["pinned"]
    assert page.locator("#rows-main h3").first.inner_text() == "Staff picks"
    assert page.locator("#metrics-table tr.rule-count").count() >= 0  # the table renders from /metrics
    r = storefront.client.delete("/v1/collections/e2e-picks", headers={"X-Admin-Token": storefront.admin_token})
    assert r.status_code == 204


def test_the_operator_view_toggles_an_image_and_hot_swaps_the_models(page, storefront):
    catalog = storefront.service.engine.catalog
    item = str(catalog.item_ids[catalog.has_image & catalog.in_stock][3])
    page.goto("/operator")
    page.locator("#admin-token").fill(storefront.admin_token)
    page.locator("#token-form button[type=submit]").click()
    page.wait_for_selector("#operator[data-state='ready']")
    page.locator("#item-query").fill(item)
    page.locator("#item-search button").click()
    image = page.locator(f"[id='image-{item}']")
    image.wait_for()
    image.uncheck()
    page.wait_for_selector("#op-status:has-text('has no image')")
    assert not catalog.has_image[catalog.index_of([item])[0]]
    serving = storefront.service.engine.model_version
    page.locator("#swap-form button").click()
    page.wait_for_selector(f"#op-status:has-text('Now serving {serving}')")
    assert page.locator("#model-serving").inner_text() == serving


def test_the_report_page_shows_the_latest_report_with_its_plots(page, storefront, screenshots):
    page.goto("/report")
    assert page.locator("h1").inner_text() == "shelfrank evaluation (e2e sample)"
    images = page.locator(".report img")
    assert images.count() == 2
    for k in range(2):
        images.nth(k).scroll_into_view_if_needed()
        assert images.nth(k).get_attribute("alt")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=images.nth(k).element_handle())
    assert page.locator(".report table tbody tr").count() == 3
    page.evaluate("window.scrollTo(0, 0)")
    screenshots(page, "report")


@pytest.mark.parametrize("path", ["../shelfrank.duckdb", "..%2Fshelfrank.duckdb", "%2e%2e/%2e%2e/etc/passwd",
                                  "/etc/passwd.png", "report.md/../../x.png", "missing.png"])
def test_report_files_never_leave_the_report_folder(storefront, path):
    r = storefront.client.get(f"/report/files/{path}")
    assert r.status_code == 404
    assert storefront.client.get("/report/files/examination_curve.png").headers["content-type"] == "image/png"
