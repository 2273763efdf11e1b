"""Harrell's C: one argument order (time, event, risk), NaN when no pair is comparable, case weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines.utils import concordance_index
from sksurv.metrics import concordance_index_censored

from sarcoma_risk.errors import InvalidInput, InvalidOutcome
from sarcoma_risk.survival import concordance
from sarcoma_risk.survival.concordance import harrell_c, harrell_c_weighted, undefined_as_none

# Tied times (three cases at 2 months: two events, one censored; two at 5 months) and tied risks.
TIME = np.array([2.0, 2.0, 2.0, 3.0, 5.0, 5.0])
EVENT = np.array([True, True, False, True, True, False])
RISK = np.array([3.0, 0.0, 1.0, 3.0, 2.0, 2.0])


def tied_data(seed: int, n: int = 40):
    """Integer times (many ties, events and censorings at the same time) and risks rounded to 1 decimal."""
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(25, n)) + 1
    event = rng.random(n) < 0.6
    risk = np.round(rng.normal(size=n), 1)
    return time, event, risk


def brute_force_harrell(time, event, risk) -> float:
    """Harrell's C pair by pair: i before j when i has an event and t_i < t_j, or t_i == t_j and j is censored."""
    num = den = 0.0
    for i in range(len(time)):
        for j in range(len(time)):
            if i == j or not event[i]:
                continue
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                den += 1
                num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


def test_a_hand_computed_c_with_tied_times_and_tied_risks():
    # Comparable pairs (first case failing first) and their credit:
    #   case 0 (2 mo, risk 3): with 2 (censored at 2 mo) 1, 3 (risk 3) 0.5, 4 1, 5 1; not with 1 (an event at 2 mo)
    #   case 1 (2 mo, risk 0): with 2, 3, 4, 5: 0 each
    #   case 3 (3 mo, risk 3): with 4 and 5: 1 each
    #   case 4 (5 mo, risk 2): with 5 (censored at 5 mo, risk 2): 0.5
    # 11 pairs, 3.5 + 0 + 2 + 0.5 = 6 concordant.
    assert harrell_c(TIME, EVENT, RISK) == 6 / 11


def test_the_hand_computed_c_agrees_with_scikit_survival_and_lifelines():
    assert harrell_c(TIME, EVENT, RISK) == concordance_index_censored(EVENT, TIME, RISK)[0]
    assert harrell_c(TIME, EVENT, RISK, tied_tol=0.0) == concordance_index(TIME, -RISK, EVENT)


@pytest.mark.parametrize("seed", range(5))
def test_harrell_c_equals_brute_force_on_tied_data(seed):
    time, event, risk = tied_data(seed)
    assert harrell_c(time, event, risk) == pytest.approx(brute_force_harrell(time, event, risk), abs=1e-12)


def test_a_higher_risk_is_a_riskier_case():
    time, event = np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4, dtype=bool)
    assert harrell_c(time, event, [4.0, 3.0, 2.0, 1.0]) == 1.0
    assert harrell_c(time, event, [1.0, 2.0, 3.0, 4.0]) == 0.0
    assert harrell_c(time, event, pd.Series([1.0, 1.0, 1.0, 1.0])) == 0.5


@pytest.mark.parametrize("time, event", [
    ([3.0, 5.0, 8.0], [0, 0, 0]),  # no event
    ([4.0], [1]),  # one case
    ([1.0, 2.0, 9.0], [0, 0, 1]),  # the only event comes after everyone else left
    ([6.0, 6.0], [1, 1]),  # two events at the same time
])
def test_no_comparable_pair_gives_nan_and_json_gets_none(time, event):
    c = harrell_c(time, event, np.arange(len(time), dtype=float))
    assert math.isnan(c)
    assert undefined_as_none(c) is None and undefined_as_none(0.75) == 0.75


def test_risks_closer_than_the_tolerance_tie_unless_the_tolerance_is_zero():
    time, event = np.array([1.0, 2.0]), np.array([True, False])
    risk = np.array([1.0 + 1e-9, 1.0])
    assert harrell_c(time, event, risk) == 0.5
    assert harrell_c(time, event, risk, tied_tol=0.0) == 1.0


def test_bootstrap_count_rows_equal_duplicated_cases():
    time, event, risk = tied_data(3, n=30)
    counts = np.random.default_rng(0).integers(0, 3, size=(4, 30)).astype(float)
    expected = []
    for row in counts:
        keep = np.repeat(np.arange(30), row.astype(int))
        expected.append(harrell_c(time[keep], event[keep], risk[keep]))
    np.testing.assert_allclose(harrell_c_weighted(time, event, risk, counts), expected, rtol=0, atol=1e-15)


def test_the_result_does_not_depend_on_how_many_rows_are_built_at_once(monkeypatch):
    time, event, risk = tied_data(4, n=200)
    counts = np.random.default_rng(1).multinomial(200, np.full(200, 1 / 200), size=5).astype(float)
    whole = harrell_c_weighted(time, event, risk, counts)
    monkeypatch.setattr(concordance, "BLOCK_ROWS", 7)
    np.testing.assert_array_equal(harrell_c_weighted(time, event, risk, counts), whole)


@pytest.mark.parametrize("risk, weights, error, match", [
    ([1.0, 2.0], None, InvalidInput, r"risk: expected 3 values \(one per case\), got shape \(2,\)"),
    ([1.0, float("nan"), 2.0], None, InvalidInput, r"risk: NaN or infinite value\(s\) for case position\(s\) \[1\]"),
    ([[1.0], [2.0], [3.0]], None, InvalidInput, r"risk: expected one value per case"),
    ([1.0, 2.0, 3.0], [1.0, -1.0, 1.0], InvalidInput, "weights: must be finite and >= 0"),
    ([1.0, 2.0, 3.0], [[1.0, 1.0]], InvalidInput, r"weights: expected shape \(n,\) or \(B, n\) with n = 3"),
])
def test_bad_risks_and_weights_are_refused_with_what_was_expected(risk, weights, error, match):
    with pytest.raises(error, match=match):
        harrell_c_weighted([1.0, 2.0, 3.0], [1, 0, 1], risk, weights)


def test_a_bad_outcome_is_refused_by_the_outcome_check():
    with pytest.raises(InvalidOutcome, match=r"harrell_c: time must be > 0 months"):
        harrell_c([0.0, 2.0], [1, 0], [1.0, 2.0])
