"""Discrimination and accuracy metrics for survival predictions, with case weights.

Every metric is written once, for a matrix of case weights ``W`` of shape ``(B, n)``: a row of ones
gives the usual estimate, a row of bootstrap counts gives the estimate on that resample (a case
drawn twice counts twice, exactly as if it were duplicated). The bootstrap in
:mod:`sarcoma_risk.fusion.bootstrap` therefore evaluates all resamples at once with matrix products
over pairwise comparison matrices built once.

Definitions follow scikit-survival (tests compare against ``sksurv.metrics``):

* Harrell's C: in :mod:`sarcoma_risk.survival.concordance`, with the pairwise matrices built there.
* Uno's C: Harrell's pairs, each weighted by ``1 / G(t_i)^2`` where G is the Kaplan-Meier estimate
  of the censoring distribution, and only ``t_i < tau``.
* Cumulative/dynamic AUC(t): cases have an event by t (weight ``1 / G(t_i)``), controls are
  event-free after t; the mean over times is weighted by the Kaplan-Meier drop of survival.
* Brier score at t with inverse probability of censoring weights; the integrated Brier score is its
  trapezoidal mean over a time grid.

The censoring distribution comes from ``train`` when given (fixed across resamples), otherwise
from the evaluated data itself (re-estimated on each resample). Risks are log relative hazards or
any score where a higher value means a higher risk; survival inputs are probabilities.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput, InvalidOutcome
from sarcoma_risk.survival.concordance import (
    check_scores,
    check_weights,
    comparable_pairs,
    concordance_matrix,
    pair_sums,
    ratio,
)
from sarcoma_risk.survival.outcome import Outcome, check_outcome


# ---- inputs --------------------------------------------------------------------------------------

def _check_times(times, time: np.ndarray, name: str = "times") -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise InvalidInput(f"{name}: need one or more finite time points")
    if (np.diff(t) <= 0).any():
        raise InvalidInput(f"{name}: time points must be strictly increasing, got {t.tolist()}")
    if t.max() >= time.max() or t.min() < time.min():
        raise InvalidInput(
            f"{name}: every time point must lie within the follow-up of the evaluated data, "
            f"[{time.min():g}, {time.max():g}) months; got {t.min():g}-{t.max():g}")
    return t


def _outcome(time, event, name: str) -> Outcome:
    return check_outcome(time, event, name=name)


# ---- weighted Kaplan-Meier ---------------------------------------------------------------------

def kaplan_meier_weighted(time: np.ndarray, event: np.ndarray, weights: np.ndarray, *,
                          censoring: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimates for many weightings of one sample at once.

    Parameters
    ----------
    time, event : ndarray, shape (n,)
        A validated outcome.
    weights : ndarray, shape (B, n)
        Case weights per row (bootstrap counts, or 0/1 masks selecting subgroups).
    censoring : bool
        Estimate the censoring distribution G instead of the survival function. As in
        scikit-survival, events at a time are removed from the risk set before the censorings at
        that time are counted.

    Returns
    -------
    unique_times : ndarray, shape (m,)
    prob : ndarray, shape (B, m)
        The right-continuous step function's value at each unique time. A row with no weight left
        at a time keeps its last value (0/0 steps count as no drop).
    """
    order = np.argsort(time, kind="mergesort")
    t_sorted = time[order]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    unique_times = t_sorted[starts]
    w_sorted = weights[:, order]
    total = np.add.reduceat(w_sorted, starts, axis=1)
    events = np.add.reduceat(w_sorted * event[order], starts, axis=1)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    if censoring:
        at_risk = at_risk - events
        drops = total - events
    else:
        drops = events
    hazard = np.divide(drops, at_risk, out=np.zeros_like(drops), where=drops > 0)
    return unique_times, np.cumprod(1.0 - hazard, axis=1)


def step_at(unique_times: np.ndarray, prob: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values of right-continuous step functions (``prob`` rows, 1 before the first time) at ``at``."""
    idx = np.searchsorted(unique_times, at, side="right") - 1
    padded = np.concatenate([np.ones((prob.shape[0], 1)), prob], axis=1)
    return padded[:, idx + 1]


def _censoring_at(outcome: Outcome, weights: np.ndarray, at: np.ndarray, train: Outcome | None) -> np.ndarray:
    """G(at) per weight row, shape (B, len(at)): from ``train`` (fixed) or from the weighted data."""
    if train is not None:
        if train.event.all():
            return np.ones((weights.shape[0], at.size))
        times, g = kaplan_meier_weighted(train.time, train.event, np.ones((1, train.time.size)), censoring=True)
        return np.repeat(step_at(times, g, at), weights.shape[0], axis=0)
    times, g = kaplan_meier_weighted(outcome.time, outcome.event, weights, censoring=True)
    return step_at(times, g, at)


def _train_outcome(train) -> Outcome | None:
    if train is None:
        return None
    if isinstance(train, Outcome):
        return train
    time, event = train
    return check_outcome(time, event, name="train (censoring distribution)")


# ---- concordance ---------------------------------------------------------------------------------

def uno_c_weighted(time, event, risk, weights=None, *, tau: float | None = None, train=None) -> np.ndarray:
    """Uno's IPCW concordance for each row of case weights; shape (B,)."""
    y = _outcome(time, event, "uno_c")
    r = check_scores(risk, y.time.size, "risk")
    w = check_weights(weights, y.time.size)
    train_y = _train_outcome(train)
    g = _censoring_at(y, w, y.time, train_y)
    use = y.event & (y.time < tau if tau is not None else True)
    with np.errstate(divide="ignore"):
        ipcw2 = np.where(use[None, :], 1.0 / np.square(g), 0.0)
    # A case with G(t_i) = 0 has an infinite weight: the estimate is undefined on that sample.
    infinite = np.isinf(ipcw2)
    undefined = (infinite & (w > 0)).any(axis=1)
    left = w * np.where(infinite, 0.0, ipcw2)
    a = comparable_pairs(y.time, y.event)
    out = ratio(pair_sums(left, a * concordance_matrix(r), w), pair_sums(left, a, w))
    out[undefined] = np.nan
    return out


def uno_c(time, event, risk, *, tau: float | None = None, train=None) -> float:
    """Uno's concordance index (inverse probability of censoring weighted), truncated at ``tau``.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        The evaluated outcome.
    risk : array-like, shape (n,)
        Predicted risk; a higher value indicates a higher risk.
    tau : float, optional
        Only events before ``tau`` months count; choose it where censoring has not removed everyone.
    train : Outcome or (time, event), optional
        Data to estimate the censoring distribution from; by default the evaluated data.
    """
    value = float(uno_c_weighted(time, event, risk, tau=tau, train=train)[0])
    if np.isnan(value):
        raise InvalidOutcome("uno_c: undefined (no comparable pair before tau, or the censoring "
                             "distribution reaches 0 before an event; choose a smaller tau)")
    return value


# ---- time-dependent AUC ------------------------------------------------------------------------

def cumulative_dynamic_auc_weighted(time, event, risk, times: Sequence[float], weights=None, *,
                                    train=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative/dynamic AUC for each row of case weights.

    ``risk`` is shape (n,) (one risk for all times) or (n, len(times)). Returns ``(times, auc, mean)``
    with ``auc`` of shape (B, len(times)) and ``mean`` of shape (B,).
    """
    y = _outcome(time, event, "cumulative_dynamic_auc")
    n = y.time.size
    t = _check_times(times, y.time)
    r = check_scores(risk, n, "risk")
    if r.ndim == 1:
        r = np.repeat(r[:, None], t.size, axis=1)
    elif r.shape != (n, t.size):
        raise InvalidInput(f"risk: expected shape ({n},) or ({n}, {t.size}), got {r.shape}")
    w = check_weights(weights, n)
    g = _censoring_at(y, w, y.time, _train_outcome(train))
    with np.errstate(divide="ignore"):
        ipcw = np.where(y.event[None, :], 1.0 / g, 0.0)
    undefined = np.zeros(w.shape[0], dtype=bool)
    auc = np.empty((w.shape[0], t.size))
    for k, horizon in enumerate(t):
        case = (y.time <= horizon) & y.event
        control = (y.time > horizon).astype(float)
        weight = np.where(case[None, :], ipcw, 0.0)
        infinite = np.isinf(weight)
        # A case whose G(t_i) is 0 has an infinite weight: AUC is undefined on that sample.
        undefined |= (infinite & (w > 0)).any(axis=1)
        left = np.where(infinite, 0.0, w * np.where(infinite, 0.0, weight))
        kmat = concordance_matrix(r[:, k]) * control[None, :]
        auc[:, k] = ratio(pair_sums(left, kmat, w), left.sum(axis=1) * (w @ control))
    auc[undefined] = np.nan
    if t.size == 1:
        mean = auc[:, 0].copy()
    else:
        km_times, km = kaplan_meier_weighted(y.time, y.event, w)
        s = step_at(km_times, km, t)
        drop = -np.diff(np.concatenate([np.ones((w.shape[0], 1)), s], axis=1), axis=1)
        mean = ratio((auc * drop).sum(axis=1), 1.0 - s[:, -1])
    return t, auc, mean


def cumulative_dynamic_auc(time, event, risk, times: Sequence[float], *, train=None) -> tuple[np.ndarray, float]:
    """Cumulative/dynamic time-dependent AUC at ``times`` and its survival-weighted mean.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        The evaluated outcome.
    risk : array-like, shape (n,) or (n, len(times))
        Predicted risk; a higher value indicates a higher risk.
    times : sequence of float
        Months, within the follow-up of the evaluated data.
    train : Outcome or (time, event), optional
        Data to estimate the censoring distribution from; by default the evaluated data.

    Returns
    -------
    auc : ndarray, shape (len(times),)
    mean_auc : float
    """
    _, auc, mean = cumulative_dynamic_auc_weighted(time, event, risk, times, train=train)
    return auc[0], float(mean[0])


# ---- Brier score -------------------------------------------------------------------------------

def brier_score_weighted(time, event, survival, times: Sequence[float], weights=None, *,
                         train=None) -> tuple[np.ndarray, np.ndarray]:
    """IPCW Brier score at ``times`` for each row of case weights: ``(times, scores (B, T))``."""
    y = _outcome(time, event, "brier_score")
    n = y.time.size
    t = _check_times(times, y.time)
    s = check_scores(survival, n, "survival")
    if s.ndim == 1:
        s = s[:, None]
    if s.shape != (n, t.size):
        raise InvalidInput(f"survival: expected shape ({n}, {t.size}) (one column per time), got {s.shape}")
    if (s < 0).any() or (s > 1).any():
        raise InvalidInput("survival: probabilities must lie in [0, 1]")
    w = check_weights(weights, n)
    train_y = _train_outcome(train)
    g_y = _censoring_at(y, w, y.time, train_y)
    g_t = _censoring_at(y, w, t, train_y)
    with np.errstate(divide="ignore"):
        inv_y = np.where(g_y > 0, 1.0 / g_y, 0.0)  # as scikit-survival: G = 0 makes the term 0
        inv_t = np.where(g_t > 0, 1.0 / g_t, 0.0)
    scores = np.empty((w.shape[0], t.size))
    for k, horizon in enumerate(t):
        case = (y.time <= horizon) & y.event
        control = y.time > horizon
        loss = (w * inv_y) @ (np.square(s[:, k]) * case) + (w @ (np.square(1.0 - s[:, k]) * control)) * inv_t[:, k]
        scores[:, k] = ratio(loss, w.sum(axis=1))
    return t, scores


def brier_score(time, event, survival, times: Sequence[float], *, train=None) -> np.ndarray:
    """Time-dependent Brier score (IPCW) at ``times``.

    Parameters
    ----------
    survival : array-like, shape (n, len(times))
        Predicted probability of being recurrence-free at each time.
    """
    return brier_score_weighted(time, event, survival, times, train=train)[1][0]


def integrated_brier_weighted(time, event, survival, times: Sequence[float], weights=None, *,
                              train=None) -> np.ndarray:
    """Integrated Brier score for each row of case weights; shape (B,)."""
    t, scores = brier_score_weighted(time, event, survival, times, weights, train=train)
    if t.size < 2:
        raise InvalidInput("times: the integrated Brier score needs at least two time points")
    return np.trapezoid(scores, t, axis=1) / (t[-1] - t[0])


def integrated_brier(time, event, survival, times: Sequence[float], *, train=None) -> float:
    """Integrated Brier score: the trapezoidal mean of the Brier score over ``times``.

    ``survival`` has shape (n, len(times)); lower is better (0 is perfect, 0.25 is an uninformative
    prediction of 0.5 for everyone).
    """
    return float(integrated_brier_weighted(time, event, survival, times, train=train)[0])
