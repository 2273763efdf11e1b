"""Calibration of a Cox model's predictions on evaluated cases: by risk group, slope, and in the large.

* :func:`calibration_table`: cases are split into quantile groups of predicted survival at a horizon
  (deciles by default, fewer for small sets); in each group the mean predicted probability of being
  recurrence-free is set against the Kaplan-Meier estimate with its 95% confidence interval
  (lifelines, Greenwood with the log(-log) transform). A calibrated model's points lie on the diagonal.
* :func:`calibration_slope_weighted`: the calibration slope, the coefficient of the model's linear
  predictor (log relative hazard) in a Cox model refitted on the evaluated cases (Cox 1958; van
  Houwelingen 2000). 1 is ideal; below 1 the predicted risks are too spread out (the model
  over-weights its inputs, e.g. a score whose scale grew), above 1 too narrow.
* :func:`observed_expected_weighted`: calibration-in-the-large as the ratio of observed to expected
  recurrences up to ``tau`` (Royston & Altman 2013; Crowson, Atkinson & Therneau 2016): each case's
  expected count is the model's cumulative hazard at the end of its own follow-up (cut at ``tau``),
  ``H0(min(t_i, tau)) * exp(risk_i)``. Its log is the calibration intercept, the intercept of a Poisson
  model of the events with offset log(expected) (Crowson et al.): 0 is ideal, above 0 the model
  predicts too few recurrences, below 0 too many.

The slope and the O/E ratio take a matrix of case weights (rows of bootstrap counts), as the metrics of
:mod:`sarcoma_risk.fusion.metrics` do, so every bootstrap resample is evaluated at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lifelines import KaplanMeierFitter

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.concordance import check_scores, check_weights
from sarcoma_risk.survival.outcome import check_outcome

#: Newton-Raphson of the calibration slope: at most this many steps, each at most MAX_STEP long.
NEWTON_STEPS = 50
MAX_STEP = 2.0
#: A Newton step shorter than this ends the iteration.
CONVERGED = 1e-8


def default_groups(n: int) -> int:
    """Deciles from 200 cases, quintiles from 50, else tertiles (each group keeps ~10+ cases)."""
    return 10 if n >= 200 else 5 if n >= 50 else 3


def _km_at(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[float | None, float | None, float | None]:
    """KM survival and 95% CI at ``horizon``; None when follow-up ends before it."""

    if time.max() < horizon:
        return None, None, None
    kmf = KaplanMeierFitter().fit(time, event)
    s = float(kmf.survival_function_at_times(horizon).iloc[0])
    ci = kmf.confidence_interval_survival_function_
    row = ci.loc[ci.index <= horizon].iloc[-1]
    return s, float(row.iloc[0]), float(row.iloc[1])


def calibration_table(time, event, survival, horizon: float, *, n_groups: int | None = None) -> dict[str, Any]:
    """Calibration of predicted survival at ``horizon`` months.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Observed outcome.
    survival : array-like, shape (n,)
        Predicted probability of being recurrence-free at ``horizon``.
    n_groups : int, optional
        Number of quantile groups (default :func:`default_groups`).

    Returns
    -------
    dict
        ``{"horizon_months", "groups": [{"n", "events", "predicted", "observed", "observed_low",
        "observed_high"}], "overall": {"predicted", "observed"}, "mean_abs_difference"}``;
        ``observed`` is None for a group whose follow-up ends before the horizon.
    """
    y = check_outcome(time, event, name="calibration", require_events=False)
    s = np.asarray(survival, dtype=float)
    if s.shape != y.time.shape or not np.isfinite(s).all():
        raise InvalidInput(f"survival: expected {y.time.size} finite probabilities, got shape {s.shape}")
    k = n_groups or default_groups(y.time.size)
    if not 1 <= k <= y.time.size:
        raise InvalidInput(f"n_groups: {k} must be between 1 and the number of cases ({y.time.size})")
    # Rank-based groups: equal sizes even when predictions tie.
    order = np.argsort(s, kind="mergesort")
    labels = np.empty(y.time.size, dtype=int)
    labels[order] = np.arange(y.time.size) * k // y.time.size
    groups = []
    for g in range(k):
        mask = labels == g
        observed, low, high = _km_at(y.time[mask], y.event[mask], horizon)
        groups.append({"n": int(mask.sum()), "events": int(y.event[mask].sum()),
                       "predicted": float(s[mask].mean()), "observed": observed,
                       "observed_low": low, "observed_high": high})
    overall, _, _ = _km_at(y.time, y.event, horizon)
    diffs = [abs(g["predicted"] - g["observed"]) for g in groups if g["observed"] is not None]
    return {"horizon_months": float(horizon), "groups": groups,
            "overall": {"predicted": float(s.mean()), "observed": overall},
            "mean_abs_difference": float(np.mean(diffs)) if diffs else None}


def calibration_slope_weighted(time, event, risk, weights=None) -> np.ndarray:
    """Calibration slope for each row of case weights: shape (B,), NaN where it is undefined.

    The slope is the maximum partial-likelihood estimate of ``b`` in ``h(t) = h0(t) exp(b * risk)``
    on the evaluated cases, with Breslow's handling of tied times (for times without ties it equals
    lifelines' Efron estimate). A case weight of k counts the case k times. Undefined (NaN) on a row
    without an event that has another case at risk, whose risks do not vary within risk sets, or
    whose likelihood has no finite maximum (the risks order the events perfectly).

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Observed outcome.
    risk : array-like, shape (n,)
        The model's linear predictor (log relative hazard; higher = riskier).
    weights : array-like, shape (n,) or (B, n), optional
        Case weights (default: one row of ones).
    """
    y = check_outcome(time, event, name="calibration slope", require_events=False)
    n = y.time.size
    x = check_scores(risk, n, "risk")
    w = check_weights(weights, n)
    order = np.argsort(y.time, kind="mergesort")
    t, d, x, w = y.time[order], y.event[order].astype(float), x[order] - x.mean(), w[:, order]
    start = np.searchsorted(t, t, side="left")  # the risk set of position k: every position >= start[k]
    wd = w * d
    beta = np.zeros(w.shape[0])
    information = np.zeros(w.shape[0])
    step = np.full(w.shape[0], np.inf)
    for _ in range(NEWTON_STEPS):
        e = w * np.exp(np.outer(beta, x))
        s0 = np.cumsum(e[:, ::-1], axis=1)[:, ::-1][:, start]
        s1 = np.cumsum((e * x)[:, ::-1], axis=1)[:, ::-1][:, start]
        s2 = np.cumsum((e * x * x)[:, ::-1], axis=1)[:, ::-1][:, start]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(s0 > 0, s1 / s0, 0.0)
            score = (wd * (x - mean)).sum(axis=1)
            information = (wd * (np.where(s0 > 0, s2 / s0, 0.0) - mean**2)).sum(axis=1)
            step = np.clip(np.where(information > 1e-12, score / information, 0.0), -MAX_STEP, MAX_STEP)
        beta = beta + step
        if np.all(np.abs(step) < CONVERGED):
            break
    # A row still moving after NEWTON_STEPS has no finite maximum (the risks separate the events
    # from the others in every risk set, so the likelihood grows without bound): undefined.
    return np.where((information > 1e-12) & (np.abs(step) < CONVERGED), beta, np.nan)


def calibration_slope(time, event, risk) -> float:
    """Calibration slope of ``risk`` on the evaluated cases (see :func:`calibration_slope_weighted`)."""
    return float(calibration_slope_weighted(time, event, risk)[0])


def observed_expected_weighted(time, event, expected, tau: float, weights=None) -> np.ndarray:
    """Observed / expected recurrences up to ``tau`` for each row of case weights: shape (B,).

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Observed outcome; a recurrence counts when it happened at or before ``tau``.
    expected : array-like, shape (n,)
        Each case's expected recurrences: the model's cumulative hazard at ``min(time, tau)``.
    tau : float
        The end of the counting window (months), within the model's development follow-up.
    """
    y = check_outcome(time, event, name="observed/expected", require_events=False)
    n = y.time.size
    e = check_scores(expected, n, "expected")
    if (e < 0).any():
        raise InvalidInput("expected: cumulative hazards must be >= 0")
    w = check_weights(weights, n)
    observed = (y.event & (y.time <= tau)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w @ e > 0, (w @ observed) / (w @ e), np.nan)
