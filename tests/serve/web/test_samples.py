"""Sample shoppers: per vertical the heaviest user whose history is mostly that vertical."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from shelfrank.candidates.base import UserHistory
from shelfrank.serve.web.samples import describe_store
from shelfrank.store.history import CLICK, PURCHASE


def _history(items: list[int], events: list[int], t0: float) -> UserHistory:
    n = len(items)
    return UserHistory(np.asarray(items), np.asarray(events, dtype=np.int8), t0 + np.arange(n, dtype=float),
                       np.asarray(["s"] * n, dtype=object))


def test_each_sample_is_the_heaviest_mostly_one_vertical_user_and_the_clock_is_the_newest_event():
    # items 0-1 beauty, 2-3 home
    catalog = SimpleNamespace(verticals=np.asarray(["beauty", "home"], dtype=object), vertical=np.asarray([0, 0, 1, 1]))
    histories = {
        "light-beauty": _history([0], [CLICK], 100.0),
        "heavy-beauty": _history([0, 1, 1], [PURCHASE, PURCHASE, CLICK], 200.0),
        "mixed": _history([0, 2, 1, 3], [PURCHASE] * 4, 300.0),  # half and half: no single taste
        "home": _history([2, 3], [PURCHASE, CLICK], 1_000.0),
        "newcomer": UserHistory(),
    }
    profiles = {u: ("r01" if u != "home" else "r02", "") for u in histories}
    engine = SimpleNamespace(catalog=catalog, features=SimpleNamespace(profiles=profiles),
                             history_state=SimpleNamespace(history=histories.__getitem__))
    view = describe_store(engine, min_share=0.6)
    assert [(u.user_id, u.vertical) for u in view.users] == [("heavy-beauty", "beauty"), ("home", "home")]
    assert view.users[0].engagement == 21.0 and "Beauty" in view.users[0].label
    assert view.locations == ("r01", "r02")
    assert view.clock is not None and view.clock.timestamp() == 1_001.0
