"""Bootstrap 95% confidence intervals for every metric, all resamples at once.

A resample is a row of counts (how often each case was drawn). The metrics of
:mod:`sarcoma_risk.fusion.metrics` and Harrell's C (:mod:`sarcoma_risk.survival.concordance`)
accept such rows as case weights, so 1000 resamples cost a few matrix products over pairwise
matrices, instead of 1000 calls. Several models evaluated
on the same cases share the same resamples, which gives paired intervals for their differences.
Intervals are percentile intervals; a resample on which a metric is undefined (no comparable pair,
no case before a horizon) is left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion import metrics
from sarcoma_risk.fusion.calibration import calibration_slope_weighted, observed_expected_weighted
from sarcoma_risk.survival.concordance import harrell_c_weighted
from sarcoma_risk.survival.outcome import check_outcome

#: Resamples evaluated per block (bounds memory: a block holds a few (block, n) arrays).
BLOCK = 250


@dataclass(frozen=True)
class Prediction:
    """One model's predictions for the evaluated cases.

    ``risk``: shape (n,), higher = riskier (log relative hazard). ``survival``: shape (n, T),
    probability of being recurrence-free at each horizon. ``expected``: shape (n,), optional, the
    model's cumulative hazard at the end of each case's follow-up cut at ``tau`` (expected
    recurrences; :func:`~sarcoma_risk.fusion.calibration.observed_expected_weighted`).
    """

    risk: np.ndarray
    survival: np.ndarray
    expected: np.ndarray | None = None


def resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap counts, shape (n_resamples, n): each row sums to n."""
    if n < 2:
        raise InvalidInput(f"bootstrap: need at least 2 cases, got {n}")
    if n_resamples < 1:
        raise InvalidInput(f"n_resamples: must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)


def interval(estimate: float, resampled: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """``{"estimate", "low", "high", "n_resamples", "n_undefined"}`` (percentile interval)."""
    valid = resampled[np.isfinite(resampled)]
    alpha = (1.0 - confidence) / 2.0
    low, high = (np.quantile(valid, [alpha, 1.0 - alpha]) if valid.size else (np.nan, np.nan))
    clean = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731  (JSON has no NaN)
    return {"estimate": clean(estimate), "low": clean(low), "high": clean(high),
            "n_resamples": int(resampled.size), "n_undefined": int(resampled.size - valid.size)}


def _metric_rows(time, event, pred: Prediction, horizons: np.ndarray, weights: np.ndarray,
                 tau: float | None) -> dict[str, np.ndarray]:
    """Every metric for each weight row: name -> shape (B,)."""
    out = {
        "harrell_c": harrell_c_weighted(time, event, pred.risk, weights),
        "uno_c": metrics.uno_c_weighted(time, event, pred.risk, weights, tau=tau),
    }
    _, auc, mean = metrics.cumulative_dynamic_auc_weighted(time, event, pred.risk, horizons, weights)
    for k, h in enumerate(horizons):
        out[f"auc_{h:g}"] = auc[:, k]
    out["mean_auc"] = mean
    if horizons.size >= 2:
        out["integrated_brier"] = metrics.integrated_brier_weighted(time, event, pred.survival, horizons, weights)
    out["calibration_slope"] = calibration_slope_weighted(time, event, pred.risk, weights)
    if pred.expected is not None and tau is not None:
        ratio = observed_expected_weighted(time, event, pred.expected, tau, weights)
        out["observed_expected"] = ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            out["calibration_intercept"] = np.log(ratio)
    return out


def bootstrap_metrics(time, event, predictions: Mapping[str, Prediction], horizons: Sequence[float], *,
                      n_resamples: int = 1000, seed: int = 0, tau: float | None = None,
                      reference: str | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """Point estimates and bootstrap intervals of every metric for each model, on the same resamples.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        The evaluated outcome (months, recurrence observed).
    predictions : mapping of str to Prediction
        Each model's predictions for the same n cases; survival columns follow ``horizons``.
    horizons : sequence of float
        Months (increasing, within follow-up) for the time-dependent AUC and the Brier score.
    tau : float, optional
        Truncation time of Uno's C, and the end of the window of the observed/expected ratio (for
        predictions with ``expected``).
    reference : str, optional
        A model name; differences ``model - reference`` get paired intervals too.

    Returns
    -------
    dict
        ``{"models": {name: {metric: interval}}, "differences": {name: {metric: interval}},
        "n": n, "events": ..., "n_resamples": ..., "seed": ..., "confidence": ...}``
    """
    y = check_outcome(time, event, name="bootstrap")
    t = np.asarray(horizons, dtype=float)
    if reference is not None and reference not in predictions:
        raise InvalidInput(f"reference: {reference!r} is not one of the models {sorted(predictions)}")
    counts = resample_counts(y.time.size, n_resamples, seed)
    ones = np.ones((1, y.time.size))
    point = {name: _metric_rows(y.time, y.event, p, t, ones, tau) for name, p in predictions.items()}
    blocks: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in predictions}
    for start in range(0, n_resamples, BLOCK):
        w = counts[start:start + BLOCK]
        for name, p in predictions.items():
            for metric, values in _metric_rows(y.time, y.event, p, t, w, tau).items():
                blocks[name].setdefault(metric, []).append(values)
    resampled = {name: {m: np.concatenate(v) for m, v in per.items()} for name, per in blocks.items()}
    models = {name: {m: interval(point[name][m][0], resampled[name][m], confidence) for m in point[name]}
              for name in predictions}
    differences: dict[str, dict[str, Any]] = {}
    if reference is not None:
        for name in predictions:
            if name == reference:
                continue
            differences[name] = {
                m: interval(point[name][m][0] - point[reference][m][0],
                            resampled[name][m] - resampled[reference][m], confidence)
                for m in point[name]}
    return {"models": models, "differences": differences, "reference": reference, "n": int(y.time.size),
            "events": int(y.event.sum()), "n_resamples": n_resamples, "seed": seed, "confidence": confidence,
            "horizons_months": t.tolist(), "tau_months": tau}
