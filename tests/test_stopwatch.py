"""The stopwatch behind the stage timings that score-slide reports."""

from __future__ import annotations

import time

import pytest

from sarcoma_risk.stopwatch import Stopwatch, timed


def test_stages_add_up_keep_their_first_order_and_count_a_body_that_raised():
    watch = Stopwatch()
    with watch.stage("b"):
        time.sleep(0.02)
    with watch.stage("a"):
        pass
    with pytest.raises(ValueError), watch.stage("b"):
        time.sleep(0.02)
        raise ValueError("boom")
    assert list(watch.to_dict()) == ["b", "a"]
    assert watch.seconds["b"] >= 0.04 and watch.seconds["a"] < watch.seconds["b"]
    with timed(None, "ignored"):
        pass
    with timed(watch, "a"):
        time.sleep(0.01)
    assert watch.seconds["a"] >= 0.01 and "ignored" not in watch.seconds
