"""The one outcome validator: every bad outcome gets a message with its positions."""

from __future__ import annotations

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidOutcome
from sarcoma_risk.survival.outcome import check_outcome


def test_a_valid_outcome_becomes_float_times_and_boolean_events():
    outcome = check_outcome([12, 30.5, 60], [1, 0, 1])
    assert outcome.time.dtype == float and outcome.event.dtype == bool
    assert outcome.event.tolist() == [True, False, True]
    structured = outcome.to_structured()
    assert structured.dtype.names == ("event", "time") and structured["time"][1] == 30.5


def test_boolean_events_are_kept_as_they_are():
    assert check_outcome(np.array([1.0, 2.0]), np.array([True, False])).event.tolist() == [True, False]


@pytest.mark.parametrize("time, event, match", [
    ([1, 2], [1], "time has 2 values but event has 1"),
    ([], [], "no cases"),
    ([1, float("nan")], [1, 0], r"time is NaN or infinite at positions \[1\]"),
    ([1, float("inf")], [1, 0], "NaN or infinite"),
    ([0, 5], [1, 0], r"time must be > 0 months; found 1 value\(s\) <= 0 \(min 0\)"),
    ([-3, 5], [1, 0], "min -3"),
    (["12", "soon"], [1, 0], "time must be numbers of months"),
    ([1, 2, 3], [1, 2, 0], r"event must be 0 or 1 \(or True/False\); found 2 at positions \[1\]"),
    ([1, 2], [1, float("nan")], r"found nan at positions \[1\]"),
    ([1, 2], ["yes", "no"], r"found 'yes', 'no'"),
    ([1, 2], [0, 0], "no events among 2 cases"),
])
def test_bad_outcomes_are_refused_with_what_and_where(time, event, match):
    with pytest.raises(InvalidOutcome, match=match):
        check_outcome(time, event, name="outcome")


def test_no_events_is_accepted_when_not_required():
    assert not check_outcome([1, 2], [0, 0], require_events=False).event.any()


def test_the_message_names_the_data_set():
    with pytest.raises(InvalidOutcome, match="^validation: "):
        check_outcome([1, -1], [1, 0], name="validation")
