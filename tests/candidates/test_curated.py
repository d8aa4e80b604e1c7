"""The curated source: operator definitions resolved on the catalog, shown inside their window."""

from __future__ import annotations

import numpy as np
from tiny_catalog import DAY, T, context, ids

from shelfrank.candidates.curated import CuratedCollectionsSource
from shelfrank.store.catalog import Catalog, CuratedDefinition


def proposed(source: CuratedCollectionsSource, t: float = T) -> dict[str, list[str]]:
    return {c.collection_id: ids(source.catalog, c.items) for c in source.propose(context(t=t))}


def test_explicit_list_keeps_its_order_and_skips_unknown_repeated_and_out_of_stock_items(catalog: Catalog) -> None:
    d = CuratedDefinition("cur:picks", "Picks", item_ids=("i03", "nope", "i04", "i01", "i03", "i08"))
    assert proposed(CuratedCollectionsSource([d], catalog)) == {"cur:picks": ["i03", "i01", "i08"]}


def test_category_rule_covers_descendants_most_popular_first(catalog: Catalog) -> None:
    d = CuratedDefinition("cur:food", "Food", rule_categories=("c0",))
    assert proposed(CuratedCollectionsSource([d], catalog))["cur:food"] == ["i01", "i02", "i03", "i05", "i06"]


def test_rules_combine_with_and(catalog: Catalog) -> None:
    defs = [
        CuratedDefinition("a", "Acme food", rule_categories=("c0",), rule_brands=("Acme",)),
        CuratedDefinition("b", "Cheap sale", rule_tags=("sale",), rule_price_max=10.0),
        CuratedDefinition("c", "Pricey", rule_price_min=100.0),
        CuratedDefinition("d", "Organic or sale dairy", rule_categories=("c1",), rule_tags=("organic", "sale")),
    ]
    assert proposed(CuratedCollectionsSource(defs, catalog)) == {
        "a": ["i01", "i02", "i05"], "b": ["i03", "i05"], "c": ["i07", "i08"], "d": ["i01", "i03"]}


def test_dated_collection_appears_only_inside_its_window(catalog: Catalog) -> None:
    d = CuratedDefinition("cur:week", "Week", item_ids=("i01",), starts_t=T, ends_t=T + 7 * DAY)
    source = CuratedCollectionsSource([d], catalog)
    assert "cur:week" not in proposed(source, T - 1)
    assert "cur:week" in proposed(source, T)
    assert "cur:week" in proposed(source, T + 7 * DAY - 1)
    assert "cur:week" not in proposed(source, T + 7 * DAY)


def test_pinned_row_source_and_pool_size_are_carried(catalog: Catalog) -> None:
    defs = [CuratedDefinition("cur:top", "Top", item_ids=("i01", "i02", "i03"), pinned_row=0),
            CuratedDefinition("brand:b1", "Bolt", rule_brands=("Bolt",), source="rules")]
    out = {c.collection_id: c for c in CuratedCollectionsSource(defs, catalog, pool_size=2).propose(context())}
    assert out["cur:top"].pinned_row == 0 and out["cur:top"].source == "curated"
    assert ids(catalog, out["cur:top"].items) == ["i01", "i02"]
    assert out["brand:b1"].source == "rules" and out["brand:b1"].pinned_row == -1
    assert ids(catalog, out["brand:b1"].items) == ["i03", "i07"]


def test_curated_only_leaves_out_rule_definitions(catalog: Catalog) -> None:
    defs = [CuratedDefinition("cur:top", "Top", item_ids=("i01",)),
            CuratedDefinition("cat:c1", "Dairy", rule_categories=("c1",), source="rules")]
    assert list(proposed(CuratedCollectionsSource(defs, catalog, curated_only=True))) == ["cur:top"]


def test_upsert_and_remove_take_effect_on_the_next_propose(catalog: Catalog) -> None:
    source = CuratedCollectionsSource([CuratedDefinition("cur:x", "X", item_ids=("i01",))], catalog)
    assert proposed(source) == {"cur:x": ["i01"]}
    source.upsert(CuratedDefinition("cur:x", "X", item_ids=("i02", "i05")))
    source.upsert(CuratedDefinition("cur:y", "Y", rule_brands=("Crux",)))
    assert proposed(source) == {"cur:x": ["i02", "i05"], "cur:y": ["i06", "i08"]}
    source.remove("cur:x")
    assert proposed(source) == {"cur:y": ["i06", "i08"]}


def test_stock_changes_apply_without_a_rebuild_and_empty_collections_are_dropped(catalog: Catalog) -> None:
    source = CuratedCollectionsSource([CuratedDefinition("cur:x", "X", item_ids=("i01", "i02"))], catalog)
    catalog.set_stock(catalog.index_of(["i01"]), False)
    assert proposed(source) == {"cur:x": ["i02"]}
    catalog.set_stock(catalog.index_of(["i02"]), False)
    assert proposed(source) == {}
    catalog.set_stock(catalog.index_of(["i01", "i02"]), True)
    assert proposed(source) == {"cur:x": ["i01", "i02"]}


def test_a_definition_without_items_or_rules_proposes_nothing(catalog: Catalog) -> None:
    assert proposed(CuratedCollectionsSource([CuratedDefinition("cur:empty", "Empty")], catalog)) == {}


def test_ids_and_items_are_stable_across_requests(catalog: Catalog) -> None:
    source = CuratedCollectionsSource([CuratedDefinition("cur:food", "Food", rule_categories=("c0",))], catalog)
    first, second = source.propose(context(user_id="a")), source.propose(context(user_id="b"))
    assert [c.collection_id for c in first] == [c.collection_id for c in second] == ["cur:food"]
    assert np.array_equal(first[0].items, second[0].items)
