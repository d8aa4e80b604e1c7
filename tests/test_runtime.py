"""The serving process settings: start-up objects frozen, young collections spaced out."""

import gc

from shelfrank.runtime import YOUNG_THRESHOLD, settle_after_start


def test_settling_freezes_what_start_up_built_and_releases_it_on_the_next_call():
    before = gc.get_threshold()
    try:
        engine_state = [[] for _ in range(2000)]
        for c in engine_state:
            c.append(c)  # an engine's long-lived objects, with reference cycles
        settle_after_start()
        frozen = gc.get_freeze_count()
        assert frozen >= 2000
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        del engine_state, c  # the engine is replaced: its objects are garbage, but frozen
        settle_after_start()
        assert gc.get_freeze_count() <= frozen - 1900  # released and collected, not kept forever
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
