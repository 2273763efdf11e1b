"""The vectorised bootstrap equals metrics computed resample by resample."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.bootstrap import Prediction, bootstrap_metrics, resample_counts
from sarcoma_risk.survival.outcome import Outcome

HORIZONS = [12.0, 36.0]


def cohort(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    event_time = rng.exponential(40 * np.exp(-risk))
    censor = rng.uniform(40, 100, n)
    time = np.round(np.minimum(event_time, censor), 1) + 0.1
    event = event_time <= censor
    survival = np.exp(-np.outer(np.exp(risk), np.asarray(HORIZONS) / 50.0))
    return time, event, risk, survival


def test_resamples_match_scikit_survival_on_each_expanded_resample():
    time, event, risk, survival = cohort()
    n_resamples, seed = 12, 5
    result = bootstrap_metrics(time, event, {"m": Prediction(risk, survival)}, HORIZONS, n_resamples=n_resamples,
                               seed=seed, tau=36.0)
    counts = resample_counts(time.size, n_resamples, seed)
    harrell, uno, auc12 = [], [], []
    for row in counts:
        keep = np.repeat(np.arange(time.size), row.astype(int))
        t, e, r = time[keep], event[keep], risk[keep]
        y = Outcome(t, e).to_structured()
        harrell.append(concordance_index_censored(e, t, r)[0])
        uno.append(concordance_index_ipcw(y, y, r, tau=36.0)[0])
        auc12.append(cumulative_dynamic_auc(y, y, r, [12.0])[0][0])
    for key, values in (("harrell_c", harrell), ("uno_c", uno), ("auc_12", auc12)):
        expected = np.quantile(values, [0.025, 0.975])
        got = result["models"]["m"][key]
        assert [got["low"], got["high"]] == pytest.approx(expected.tolist(), abs=1e-12), key


def test_point_estimates_sit_inside_their_intervals_and_differences_are_paired():
    time, event, risk, survival = cohort(seed=1)
    noisy = risk + np.random.default_rng(2).normal(scale=1.5, size=risk.size)
    preds = {"good": Prediction(risk, survival), "noisy": Prediction(noisy, survival)}
    result = bootstrap_metrics(time, event, preds, HORIZONS, n_resamples=300, seed=0, reference="good")
    for name in preds:
        for key, iv in result["models"][name].items():
            assert iv["low"] <= iv["estimate"] <= iv["high"], (name, key)
    diff = result["differences"]["noisy"]["harrell_c"]
    assert diff["estimate"] == pytest.approx(result["models"]["noisy"]["harrell_c"]["estimate"]
                                             - result["models"]["good"]["harrell_c"]["estimate"])
    assert diff["high"] < 0  # the true risk ranks better than a noisy copy of it: the whole interval is below 0
    assert "good" not in result["differences"]


def test_bootstrap_refuses_bad_requests():
    time, event, risk, survival = cohort()
    with pytest.raises(InvalidInput, match="reference"):
        bootstrap_metrics(time, event, {"m": Prediction(risk, survival)}, HORIZONS, n_resamples=10, reference="x")
    with pytest.raises(InvalidInput, match="n_resamples"):
        resample_counts(10, 0, 0)
