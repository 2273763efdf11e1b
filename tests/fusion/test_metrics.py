"""Survival metrics against independent computations: brute force, scikit-survival, lifelines."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import (
    brier_score as sk_brier,
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc as sk_auc,
    integrated_brier_score as sk_ibs,
)

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion import metrics
from sarcoma_risk.fusion.cox import fit_cox
from sarcoma_risk.survival.concordance import harrell_c, harrell_c_weighted
from sarcoma_risk.survival.outcome import Outcome

TIMES = [10.0, 20.0, 30.0]


def tied_data(seed: int, n: int = 60):
    """Integer times (many ties, censored and events at the same time) and risks rounded to 1 decimal."""
    rng = np.random.default_rng(seed)
    time = np.round(rng.exponential(25, n)) + 1
    event = rng.random(n) < 0.6
    time[np.argmax(time)] += 5  # the horizons stay inside the follow-up
    risk = np.round(rng.normal(size=n), 1)
    return time, event, risk


@pytest.mark.parametrize("seed", range(3))
def test_every_metric_equals_scikit_survival(seed):
    time, event, risk = tied_data(seed)
    y = Outcome(time, event).to_structured()
    survival = np.exp(-np.outer(np.exp(risk), np.asarray(TIMES) / 40.0))
    assert harrell_c(time, event, risk) == pytest.approx(concordance_index_censored(event, time, risk)[0], abs=1e-12)
    assert metrics.uno_c(time, event, risk) == pytest.approx(concordance_index_ipcw(y, y, risk)[0], abs=1e-12)
    assert metrics.uno_c(time, event, risk, tau=25) == pytest.approx(concordance_index_ipcw(y, y, risk, tau=25)[0], abs=1e-12)
    auc, mean = metrics.cumulative_dynamic_auc(time, event, risk, TIMES)
    sk_values, sk_mean = sk_auc(y, y, risk, TIMES)
    np.testing.assert_allclose(auc, sk_values, atol=1e-12)
    assert mean == pytest.approx(sk_mean, abs=1e-12)
    np.testing.assert_allclose(metrics.brier_score(time, event, survival, TIMES), sk_brier(y, y, survival, TIMES)[1],
                               atol=1e-12)
    assert metrics.integrated_brier(time, event, survival, TIMES) == pytest.approx(sk_ibs(y, y, survival, TIMES), abs=1e-12)


def test_censoring_distribution_from_training_data_equals_scikit_survival():
    time, event, risk = tied_data(7)
    train_time, train_event, _ = tied_data(8, n=90)
    train_time[0] = time.max() + 10  # training follow-up covers the test data, as scikit-survival requires
    y, y_train = Outcome(time, event).to_structured(), Outcome(train_time, train_event).to_structured()
    train = (train_time, train_event)
    survival = np.exp(-np.outer(np.exp(risk), np.asarray(TIMES) / 40.0))
    assert metrics.uno_c(time, event, risk, tau=25, train=train) == pytest.approx(
        concordance_index_ipcw(y_train, y, risk, tau=25)[0], abs=1e-12)
    np.testing.assert_allclose(metrics.cumulative_dynamic_auc(time, event, risk, TIMES, train=train)[0],
                               sk_auc(y_train, y, risk, TIMES)[0], atol=1e-12)
    assert metrics.integrated_brier(time, event, survival, TIMES, train=train) == pytest.approx(
        sk_ibs(y_train, y, survival, TIMES), abs=1e-12)


def test_integer_weights_equal_duplicated_cases():
    time, event, risk = tied_data(3, n=30)
    counts = np.random.default_rng(0).integers(0, 3, size=30).astype(float)
    keep = np.repeat(np.arange(30), counts.astype(int))
    t, e, r = time[keep], event[keep], risk[keep]
    survival = np.exp(-np.outer(np.exp(risk), np.asarray(TIMES) / 40.0))
    times = [10.0, 20.0]  # inside the follow-up of the duplicated sample too
    assert harrell_c_weighted(time, event, risk, counts)[0] == pytest.approx(harrell_c(t, e, r), abs=1e-12)
    assert metrics.uno_c_weighted(time, event, risk, counts, tau=25)[0] == pytest.approx(
        metrics.uno_c(t, e, r, tau=25), abs=1e-12)
    _, auc, mean = metrics.cumulative_dynamic_auc_weighted(time, event, risk, times, counts)
    ref_auc, ref_mean = metrics.cumulative_dynamic_auc(t, e, r, times)
    np.testing.assert_allclose(auc[0], ref_auc, atol=1e-12)
    assert mean[0] == pytest.approx(ref_mean, abs=1e-12)
    assert metrics.integrated_brier_weighted(time, event, survival[:, :2], times, counts)[0] == pytest.approx(
        metrics.integrated_brier(t, e, survival[keep][:, :2], times), abs=1e-12)


def test_rossi_coefficients_survival_and_concordance_match_lifelines():
    from lifelines import CoxPHFitter
    from lifelines.datasets import load_rossi

    rossi = load_rossi()
    x = rossi.drop(columns=["week", "arrest"])
    time, event = rossi["week"].to_numpy(float), rossi["arrest"].to_numpy(bool)
    params, _ = fit_cox(x, time, event, penalizer=0.0)
    reference = CoxPHFitter().fit(rossi, "week", "arrest")
    np.testing.assert_allclose(params.beta, reference.params_[x.columns].to_numpy(), rtol=1e-8, atol=1e-10)
    risk = params.risk(x.to_numpy())
    np.testing.assert_allclose(risk, reference.predict_log_partial_hazard(rossi).to_numpy(), atol=1e-10)
    assert harrell_c(time, event, risk) == pytest.approx(reference.concordance_index_, abs=1e-6)
    horizons = [10.0, 30.0, 50.0]
    expected = reference.predict_survival_function(rossi, times=horizons).to_numpy().T
    np.testing.assert_allclose(params.survival(risk, horizons), expected, atol=1e-10)


def test_metric_inputs_are_checked_with_clear_errors():
    time, event, risk = tied_data(0)
    with pytest.raises(InvalidInput, match="risk: NaN"):
        harrell_c(time, event, np.where(np.arange(risk.size) == 3, np.nan, risk))
    with pytest.raises(InvalidInput, match="within the follow-up"):
        metrics.cumulative_dynamic_auc(time, event, risk, [10.0, time.max() + 1])
    with pytest.raises(InvalidInput, match="strictly increasing"):
        metrics.cumulative_dynamic_auc(time, event, risk, [30.0, 10.0])
    with pytest.raises(InvalidInput, match="probabilities must lie in"):
        metrics.brier_score(time, event, np.full((time.size, 1), 1.5), [10.0])
    with pytest.raises(InvalidInput, match="expected 60 values"):
        metrics.uno_c(time, event, risk[:-1])
