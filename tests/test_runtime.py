"""The serving process settings: start-up objects frozen, young collections spaced out."""

import gc

from shelfrank.runtime import YOUNG_THRESHOLD, settle_after_start


def test_settling_freezes_what_start_up_built_and_releases_it_on_the_next_call():
    before = gc.get_threshold()
    try:
        kept = [{"n": i} for i in range(1000)]  # long-lived state built at start
        settle_after_start()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        frozen = gc.get_freeze_count()
        cycles = [[] for _ in range(2000)]
        for c in cycles:
            c.append(c)  # garbage made after the first settle (a replaced engine's), then a new start
        del cycles, c
        settle_after_start()
        assert gc.get_freeze_count() < frozen + 500  # the 2,000 cycles were collected, not frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
