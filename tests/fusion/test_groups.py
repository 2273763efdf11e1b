"""Risk-group cutoffs and group comparison against lifelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import logrank_test

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.groups import assign_groups, choose_cutoff, compare_groups, logrank_statistics


def data(n: int = 90, seed: int = 0):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    event_time = np.round(rng.exponential(40 * np.exp(-risk))) + 1
    censor = rng.uniform(20, 120, n)
    return np.minimum(event_time, censor), event_time <= censor, risk


def test_vectorised_logrank_equals_lifelines_for_every_split():
    time, event, risk = data()
    splits = np.array([risk > q for q in np.quantile(risk, [0.2, 0.4, 0.5, 0.8])])
    expected = [logrank_test(time[s], time[~s], event[s], event[~s]).test_statistic for s in splits]
    np.testing.assert_allclose(logrank_statistics(time, event, splits), expected, rtol=1e-10)


def test_median_cutoff_puts_half_the_cases_in_each_group():
    time, event, risk = data()
    cutoff = choose_cutoff(time, event, risk, "median")
    assert cutoff.share_high == pytest.approx(0.5)
    assert (assign_groups(risk, cutoff.value) == "high").sum() == 45


def test_maxstat_cutoff_is_the_largest_logrank_among_allowed_splits():
    time, event, risk = data(seed=3)
    result = choose_cutoff(time, event, risk, "maxstat", min_share=0.25)
    levels = np.unique(risk)
    best = -1.0
    for c in (levels[:-1] + levels[1:]) / 2:
        high = risk > c
        if 0.25 <= high.mean() <= 0.75:
            best = max(best, logrank_test(time[high], time[~high], event[high], event[~high]).test_statistic)
    assert result.statistic == pytest.approx(best, rel=1e-10)
    assert 0.25 <= result.share_high <= 0.75


def test_cutoff_refuses_constant_risk_and_bad_choices():
    time, event, _ = data()
    with pytest.raises(InvalidInput, match="same risk"):
        choose_cutoff(time, event, np.zeros(time.size))
    with pytest.raises(InvalidInput, match="expected one of median, maxstat"):
        choose_cutoff(time, event, np.arange(time.size, dtype=float), "mean")


def test_compare_groups_matches_lifelines_hazard_ratio_and_explains_empty_groups():
    time, event, risk = data()
    groups = assign_groups(risk, 0.0)
    result = compare_groups(time, event, groups)
    frame = pd.DataFrame({"t": time, "e": event.astype(int), "high": (groups == "high").astype(float)})
    cph = CoxPHFitter().fit(frame, "t", "e")
    assert result["hazard_ratio"] == pytest.approx(float(np.exp(cph.params_["high"])))
    assert result["hr_low"] < result["hazard_ratio"] < result["hr_high"]
    assert result["logrank_p"] < 0.05
    one_group = compare_groups(time, event, np.full(time.size, "low"))
    assert one_group["hazard_ratio"] is None and "every case is in the low group" in one_group["note"]
