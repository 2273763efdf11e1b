"""Calibration slope and calibration-in-the-large (observed / expected) of Cox predictions, with case weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.fusion.bootstrap import Prediction, bootstrap_metrics, resample_counts
from sarcoma_risk.fusion.calibration import (
    calibration_slope,
    calibration_slope_weighted,
    observed_expected_weighted,
)


@pytest.fixture(scope="module")
def cox_data():
    """Outcomes drawn from h(t) = 0.02 exp(0.8 x) with uniform censoring; no tied times."""
    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=n)
    t = rng.exponential(1 / (0.02 * np.exp(0.8 * x)))
    c = rng.uniform(10, 90, n)
    return np.minimum(t, c) + 1e-3 * rng.random(n), t <= c, x


def test_the_slope_is_the_cox_coefficient_of_the_risk(cox_data):
    from lifelines import CoxPHFitter

    time, event, x = cox_data
    frame = pd.DataFrame({"x": x, "t": time, "e": event.astype(int)})
    expected = CoxPHFitter().fit(frame, "t", "e").params_["x"]
    assert calibration_slope(time, event, x) == pytest.approx(expected, abs=1e-4)  # lifelines stops at its tolerance
    assert calibration_slope(time, event, x) == pytest.approx(0.8, abs=0.2)


def test_risks_spread_twice_too_far_give_a_slope_of_one_half(cox_data):
    time, event, x = cox_data
    assert calibration_slope(time, event, 2 * x + 5) == pytest.approx(calibration_slope(time, event, x) / 2, rel=1e-6)


def test_a_weight_row_counts_each_case_as_often_as_it_was_drawn(cox_data):
    time, event, x = cox_data
    counts = resample_counts(time.size, 3, seed=1)
    weighted = calibration_slope_weighted(time, event, x, counts)
    for row, value in zip(counts, weighted):
        rows = np.repeat(np.arange(time.size), row.astype(int))
        assert value == pytest.approx(calibration_slope(time[rows], event[rows], x[rows]), abs=1e-8)


def test_without_an_event_the_slope_is_undefined():
    slopes = calibration_slope_weighted([1.0, 2.0, 3.0], [0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(slopes).all()


def test_risks_that_order_every_event_perfectly_have_no_slope():
    # Each event happens before every case of lower risk: the likelihood grows without bound in b.
    time = np.arange(1.0, 9.0)
    risk = -time
    event = np.array([1, 1, 0, 1, 0, 1, 0, 0], dtype=bool)
    assert np.isnan(calibration_slope(time, event, risk))
    assert np.isfinite(calibration_slope(time, event, risk[::-1] * 0.1 + np.sin(time)))


def test_observed_over_expected_counts_events_up_to_tau():
    time = np.array([5.0, 20.0, 30.0, 70.0])
    event = np.array([True, True, False, True])  # the event at 70 months lies beyond tau
    expected = np.array([0.5, 0.4, 0.6, 0.5])
    assert observed_expected_weighted(time, event, expected, 60.0)[0] == pytest.approx(2 / 2.0)
    weights = np.array([[2, 0, 1, 1]])
    assert observed_expected_weighted(time, event, expected, 60.0, weights)[0] == pytest.approx(2 / 2.1)


def test_bootstrap_metrics_give_calibration_with_intervals_when_expected_counts_are_given(cox_data):
    time, event, x = cox_data
    h0 = 0.02 * np.minimum(time, 60.0)  # the true cumulative baseline hazard up to 60 months
    horizons = [12.0, 36.0, 60.0]
    survival = np.exp(-np.outer(np.exp(0.8 * x), 0.02 * np.asarray(horizons)))
    predictions = {"true": Prediction(0.8 * x, survival, h0 * np.exp(0.8 * x)),
                   "too many": Prediction(0.8 * x, survival, 2 * h0 * np.exp(0.8 * x)),
                   "no expected": Prediction(0.8 * x, survival)}
    metrics = bootstrap_metrics(time, event, predictions, horizons, n_resamples=100, seed=0, tau=60.0)
    true = metrics["models"]["true"]
    assert true["calibration_slope"]["low"] < 1.0 < true["calibration_slope"]["high"]
    assert true["observed_expected"]["low"] < 1.0 < true["observed_expected"]["high"]
    assert true["calibration_intercept"]["estimate"] == pytest.approx(np.log(true["observed_expected"]["estimate"]))
    assert metrics["models"]["too many"]["observed_expected"]["estimate"] == pytest.approx(
        true["observed_expected"]["estimate"] / 2)
    assert "observed_expected" not in metrics["models"]["no expected"]
    assert "calibration_slope" in metrics["models"]["no expected"]
