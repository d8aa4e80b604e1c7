"""One contract, every collection source: valid candidates, no repeats, in the catalog, in stock, capped."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tiny_catalog import BOUGHT_AND_CLICKED, T, context, events_table, history

from shelfrank.candidates.base import CandidateCollection, CollectionSource, UserContext
from shelfrank.candidates.curated import CuratedCollectionsSource
from shelfrank.candidates.rules import RULE_SOURCES, default_rule_sources
from shelfrank.store.catalog import Catalog, CuratedDefinition
from shelfrank.store.history import InMemoryUserHistory

POOL = 3
DEFINITIONS = [
    CuratedDefinition("cur:picks", "Picks", item_ids=("i04", "i09", "i01", "i02", "i03", "i05"), pinned_row=1),
    CuratedDefinition("cat:c1", "Dairy", rule_categories=("c1",), source="rules"),
    CuratedDefinition("brand:b2", "Crux", rule_brands=("Crux",), source="rules"),
]


def _state(catalog: Catalog) -> InMemoryUserHistory:
    state = InMemoryUserHistory(catalog)
    state.update(events_table([("a", f"i{n:02d}", "purchase", 0.1 * n, "r1") for n in range(1, 11)]))
    return state


def _all_sources(catalog: Catalog) -> dict[str, CollectionSource]:
    sources: dict[str, CollectionSource] = {"curated": CuratedCollectionsSource(DEFINITIONS, catalog, POOL)}
    for source in default_rule_sources(catalog, _state(catalog), DEFINITIONS, pool_size=POOL):
        sources[source.name] = source
    return sources


SOURCE_NAMES = ["curated", *RULE_SOURCES]
USERS: dict[str, Callable[[Catalog], UserContext]] = {
    "new": lambda c: context(location="r1", user_id="new"),
    "engaged": lambda c: context(history(c, BOUGHT_AND_CLICKED), location="r1"),
    "unknown_location": lambda c: context(history(c, BOUGHT_AND_CLICKED), location="nowhere"),
}


def check(out: list[CandidateCollection], source: CollectionSource, catalog: Catalog) -> None:
    assert isinstance(out, list)
    assert len({c.collection_id for c in out}) == len(out), "collection ids repeat"
    for c in out:
        assert isinstance(c, CandidateCollection)
        assert c.collection_id and c.title and c.reason
        assert c.source in ("curated", "rules", "ml") and c.generator == source.name
        assert c.items.dtype == np.int64 and c.items.ndim == 1
        assert 0 < len(c.items) <= POOL
        assert len(np.unique(c.items)) == len(c.items), "items repeat"
        assert ((c.items >= 0) & (c.items < len(catalog))).all(), "items outside the catalog"
        assert catalog.in_stock[c.items].all(), "out-of-stock items"
        assert 0.0 <= c.prior <= 1.0
        assert all(isinstance(v, float) and np.isfinite(v) for v in c.signals.values())


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_source_proposes_valid_collections(catalog: Catalog, name: str, user: str) -> None:
    source = _all_sources(catalog)[name]
    assert isinstance(source.fail_open, bool) and source.name == name
    out = source.propose(USERS[user](catalog))
    check(out, source, catalog)
    if user == "engaged":
        assert out, "the contract would hold vacuously"


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_source_answers_the_same_request_the_same_way(catalog: Catalog, name: str) -> None:
    source = _all_sources(catalog)[name]
    user = USERS["engaged"](catalog)
    first, again = source.propose(user), source.propose(user)
    assert [c.collection_id for c in first] == [c.collection_id for c in again]
    assert all(np.array_equal(a.items, b.items) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_source_proposes_nothing_when_nothing_is_in_stock(catalog: Catalog, name: str) -> None:
    source = _all_sources(catalog)[name]
    catalog.set_stock(np.arange(len(catalog)), False)
    assert source.propose(USERS["engaged"](catalog)) == []


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_source_ignores_history_after_the_request(catalog: Catalog, name: str) -> None:
    source = _all_sources(catalog)[name]
    past = context(history(catalog, BOUGHT_AND_CLICKED), location="r1", t=T - 30 * 86_400.0)
    check(source.propose(past), source, catalog)
