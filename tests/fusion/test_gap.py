"""Share of the clinical-to-oracle gap and paired bootstrap differences, checked by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.bootstrap import resample_counts
from sarcoma_risk.fusion.gap import gap_report, gap_share

# Five cases, every one an event, so every pair is comparable: 10 pairs. The oracle orders them all
# (C = 1); the clinical score gets 6 of 10 pairs right (C = 0.6), the model 8 (C = 0.8): the model
# closes (0.8 - 0.6) / (1 - 0.6) = half of the gap.
TIME = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
EVENT = np.ones(5, dtype=bool)
ORACLE = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
CLINICAL = np.array([3.0, 5.0, 2.0, 1.0, 4.0])
MODEL = np.array([5.0, 3.0, 4.0, 1.0, 2.0])


def _pair_count_c(risk, weights=None) -> float:
    """Harrell's C by counting pairs one at a time (all events, no ties): the hand check."""
    w = np.ones(5) if weights is None else weights
    good = total = 0.0  # a resample without a comparable pair has no C
    for i, j in itertools.combinations(range(5), 2):
        early, late = (i, j) if TIME[i] < TIME[j] else (j, i)
        total += w[i] * w[j]
        good += w[i] * w[j] * (risk[early] > risk[late])
    return good / total if total else np.nan


def test_the_hand_example_has_the_c_indices_it_claims():
    assert _pair_count_c(ORACLE) == 1.0
    assert _pair_count_c(CLINICAL) == pytest.approx(0.6)
    assert _pair_count_c(MODEL) == pytest.approx(0.8)


def test_gap_share_is_half_when_the_model_is_halfway_from_clinical_to_oracle():
    report = gap_report(TIME, EVENT, {"clinical": CLINICAL, "model": MODEL, "oracle": ORACLE},
                        clinical="clinical", oracle="oracle", differences={"model_minus_clinical": ("model", "clinical")},
                        n_resamples=50, seed=1)
    assert report["c_index"]["model"]["estimate"] == pytest.approx(0.8)
    assert report["gap_share"]["model"]["estimate"] == pytest.approx(0.5)
    assert report["differences"]["model_minus_clinical"]["estimate"] == pytest.approx(0.2)
    assert "clinical" not in report["gap_share"] and "oracle" not in report["gap_share"]


def test_bootstrap_intervals_use_the_same_resamples_for_every_model():
    n_resamples, seed = 200, 7
    report = gap_report(TIME, EVENT, {"clinical": CLINICAL, "model": MODEL, "oracle": ORACLE},
                        clinical="clinical", oracle="oracle", differences={"d": ("model", "clinical")},
                        n_resamples=n_resamples, seed=seed)
    counts = resample_counts(5, n_resamples, seed)
    # A case drawn k times counts k times in each of its pairs (pairs of a case with itself are not
    # comparable): the weighted pair count, per resample, for each model on the SAME rows.
    c = {name: np.array([_pair_count_c(r, w) for w in counts])
         for name, r in (("clinical", CLINICAL), ("model", MODEL), ("oracle", ORACLE))}
    gap = c["oracle"] - c["clinical"]
    valid = np.isfinite(gap) & (gap > 0)
    share = np.full(n_resamples, np.nan)
    share[valid] = (c["model"][valid] - c["clinical"][valid]) / gap[valid]
    assert report["gap_share"]["model"]["n_undefined"] == int((~valid).sum())
    assert report["gap_share"]["model"]["low"] == pytest.approx(np.quantile(share[valid], 0.025))
    assert report["gap_share"]["model"]["high"] == pytest.approx(np.quantile(share[valid], 0.975))
    diff = c["model"] - c["clinical"]
    assert report["differences"]["d"]["low"] == pytest.approx(np.nanquantile(diff, 0.025))
    assert report["differences"]["d"]["high"] == pytest.approx(np.nanquantile(diff, 0.975))


def test_a_model_compared_with_itself_differs_by_exactly_zero_in_every_resample():
    report = gap_report(TIME, EVENT, {"clinical": CLINICAL, "model": MODEL, "copy": MODEL.copy(), "oracle": ORACLE},
                        clinical="clinical", oracle="oracle", differences={"same": ("model", "copy")},
                        n_resamples=100, seed=0)
    same = report["differences"]["same"]
    assert same["estimate"] == same["low"] == same["high"] == 0.0


def test_the_share_is_undefined_where_clinical_reaches_the_oracle():
    assert np.isnan(gap_share(0.8, 0.7, 0.7))
    assert gap_share(np.array([0.75]), np.array([0.7]), np.array([0.8]))[0] == pytest.approx(0.5)


def test_a_missing_reference_score_is_named():
    with pytest.raises(InvalidInput, match="oracle score 'truth'"):
        gap_report(TIME, EVENT, {"clinical": CLINICAL, "model": MODEL}, clinical="clinical", oracle="truth")
