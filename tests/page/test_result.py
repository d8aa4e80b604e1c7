"""The page result's JSON: what the service sends and the CLI prints."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson

from shelfrank.page.result import CollectionRow, ItemSlot, Page


def _page(signals: dict) -> Page:
    slot = ItemSlot(item_id="i1", position=0, score=0.5, propensity=1.0, badges=("new",), signals=signals)
    row = CollectionRow(collection_id="c1", title="C", source="rules", generator="g", row=0, score=0.5, reason="r",
                        items=(slot,), signals=signals)
    return Page(request_id="x", user_id="u", at="2026-01-01T00:00:00+00:00", surface="web", location="",
                rows=(row,))


def test_json_and_dict_agree_and_keep_the_field_order():
    page = _page({"item_ctr": 0.25})
    decoded = orjson.loads(page.to_json())
    assert decoded == orjson.loads(orjson.dumps(page.to_dict()))  # to_dict keeps tuples as tuples
    assert list(decoded) == ["request_id", "user_id", "at", "surface", "location", "rows", "model_version", "pipeline",
                             "new_user", "fallback", "fallback_reason", "timings_ms", "rule_counts"]
    assert decoded["rows"][0]["items"][0]["badges"] == ["new"]


def test_numpy_and_odd_values_are_written_as_plain_values_not_errors():
    when = datetime(2026, 1, 2, tzinfo=UTC)
    page = _page({"f64": np.float64(0.5), "f32": np.float32(0.1), "i": np.int64(3), "b": np.bool_(True),
                  "when": when, "other": Ellipsis})
    signals = orjson.loads(page.to_json())["rows"][0]["signals"]
    # float32 by its own shortest text, as orjson's numpy support wrote it (not 0.10000000149011612)
    assert signals == {"f64": 0.5, "f32": 0.1, "i": 3, "b": True, "when": "2026-01-02T00:00:00Z", "other": "Ellipsis"}
    assert page.to_dict()["rows"][0]["signals"]["f32"] == 0.1
