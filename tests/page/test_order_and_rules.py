import numpy as np
import pytest

from shelfrank.page.order import OrderByTopKMean, top_k_mean
from shelfrank.page.rules import (
    DedupeItemsAcrossPage,
    DemoteMissingImages,
    DropJustCarted,
    DropOutOfStock,
    DropThinCollections,
    InsertPinnedCollections,
)
from shelfrank.page.slate import Slate


def _slate(pinned=None):
    return Slate.from_lists(
        ["weak", "strong", "mid"],
        items=[[0, 1, 2], [3, 4, 5, 6], [1, 7, 8]],
        scores=[[0.2, 0.1, 0.1], [0.9, 0.8, 0.1, 0.1], [0.5, 0.6, 0.4]],
        pinned_rows=pinned,
    )


def test_top_k_mean_uses_only_the_k_best_present_scores():
    scores = np.array([[0.9, 0.8, 0.1, -np.inf], [0.3, -np.inf, -np.inf, -np.inf], [-np.inf] * 4])
    assert top_k_mean(scores, 2).tolist() == pytest.approx([0.85, 0.3, -np.inf])


def test_collections_are_ordered_by_their_top_k_mean():
    ordered = OrderByTopKMean(k=2).apply(_slate())
    assert ordered.collection_ids.tolist() == ["strong", "mid", "weak"]
    assert [t.stage for t in ordered.trace] == ["order_by_top_k_mean"]


def test_out_of_stock_items_are_removed_and_counted():
    in_stock = np.ones(9, dtype=bool)
    in_stock[[4, 7]] = False
    slate = DropOutOfStock(in_stock).apply(_slate())
    shown = {item for _, row in slate.rows() for item in row}
    assert not shown & {4, 7}
    assert slate.trace[-1].removed["out_of_stock"] == 2


def test_items_without_image_go_behind_every_item_with_one():
    has_image = np.ones(9, dtype=bool)
    has_image[3] = False  # the best item of "strong"
    slate = DemoteMissingImages(has_image).apply(_slate())
    rows = dict(slate.rows())
    assert rows["strong"] == [4, 5, 6, 3]
    assert slate.trace[-1].demoted == 1
    removed = DemoteMissingImages(has_image, remove=True).apply(_slate())
    assert 3 not in dict(removed.rows())["strong"]


def test_an_item_appears_once_at_its_first_place_in_reading_order():
    ordered = OrderByTopKMean(k=2).apply(_slate())  # strong, mid, weak
    deduped = DedupeItemsAcrossPage(visible=10).apply(ordered)
    rows = dict(deduped.rows())
    assert 1 in rows["mid"] and 1 not in rows["weak"]
    assert deduped.trace[-1].removed["repeated_on_page"] == 1


def test_an_item_beyond_the_visible_width_does_not_block_a_later_row():
    slate = Slate.from_lists(["a", "b"], items=[[0, 1, 2], [2, 3]], scores=[[0.9, 0.8, 0.1], [0.7, 0.6]])
    rows = dict(DedupeItemsAcrossPage(visible=2).apply(slate).rows())
    assert rows["b"] == [2, 3]


def test_just_carted_items_are_removed_wherever_they_are_and_counted():
    slate = DropJustCarted(np.array([7, 1, 7])).apply(_slate())
    rows = dict(slate.rows())
    assert 1 not in rows["weak"] and 1 not in rows["mid"] and 7 not in rows["mid"]
    assert slate.trace[-1].removed["just_carted"] == 3
    untouched = DropJustCarted(np.zeros(0, dtype=np.int64)).apply(_slate())
    assert untouched.rows() == _slate().rows() and untouched.trace[-1].removed["just_carted"] == 0


def test_thin_collections_are_dropped():
    in_stock = np.array([False, False, True, True, True, True, True, True, True])
    slate = DropThinCollections(min_items=2).apply(DropOutOfStock(in_stock).apply(_slate()))
    assert [c for c, _ in slate.rows()] == ["strong", "mid"]
    assert slate.trace[-1].removed["too_few_items"] == 1


def test_pinned_collections_keep_their_row():
    ordered = OrderByTopKMean(k=2).apply(_slate(pinned=[0, -1, -1]))  # "weak" pinned on top
    assert ordered.collection_ids[0] != "weak"
    pinned = InsertPinnedCollections().apply(ordered)
    assert [c for c, _ in pinned.rows()] == ["weak", "strong", "mid"]


def test_a_slate_with_mismatched_shapes_is_refused():
    with pytest.raises(ValueError, match="differ"):
        Slate(np.array(["a"], dtype=object), np.zeros((1, 2), int), np.zeros((1, 3)), np.zeros(1), np.zeros(1, int))
