"""Harrell's concordance index, once, for one weighting of the cases or many at once.

Definition (as scikit-survival's ``concordance_index_censored``): a pair (i, j) is comparable when
i has an event and ``t_i < t_j``, or ``t_i == t_j`` and j is censored; it is concordant when
``risk_i > risk_j``; risks closer than ``tied_tol`` count 0.5. Two events at the same time, or two
censored cases, are never comparable. lifelines' ``concordance_index`` (on ``-risk``) pairs the
cases the same way and counts only exactly equal risks as ties: ``tied_tol=0`` gives its value.

When no pair is comparable (no event, one case, every event at the last time...) the C-index is
undefined and :func:`harrell_c` returns NaN; writers of JSON write it as null.

Case weights: a matrix ``W`` of shape ``(B, n)`` gives one estimate per row; a row of ones is the
usual estimate, a row of bootstrap counts the estimate on that resample (a case drawn twice counts
twice, exactly as if it were duplicated). The pairwise matrices are built a block of rows at a
time, so memory stays bounded for large cohorts. With whole-number weights every partial sum is
exact, so the result does not depend on the block size.

Risks are log relative hazards or any score where a higher value means a higher risk.
"""

from __future__ import annotations

import math

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.outcome import check_outcome

#: Risk scores closer than this count as tied (scikit-survival's default ``tied_tol``).
TIED_TOL = 1e-8
#: Rows of the pairwise matrices built at once: at most this many times n values per array.
BLOCK_ROWS = 1024


# ---- inputs --------------------------------------------------------------------------------------

def check_scores(values, n: int, name: str) -> np.ndarray:
    """``values`` as a float array with one finite value (or row) per case; :class:`InvalidInput` if not."""
    arr = np.asarray(values, dtype=float)
    if arr.shape[:1] != (n,):
        raise InvalidInput(f"{name}: expected {n} values (one per case), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(n, -1)).all(axis=1))
        raise InvalidInput(f"{name}: NaN or infinite value(s) for case position(s) {bad[:10].tolist()}")
    return arr


def check_weights(weights, n: int) -> np.ndarray:
    """Case weights as shape (B, n): None gives one row of ones; a (n,) vector becomes one row."""
    if weights is None:
        return np.ones((1, n))
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise InvalidInput(f"weights: expected shape (n,) or (B, n) with n = {n}, got {np.shape(weights)}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InvalidInput("weights: must be finite and >= 0")
    return w


# ---- pairwise matrices ---------------------------------------------------------------------------

def comparable_pairs(time: np.ndarray, event: np.ndarray, rows=slice(None)) -> np.ndarray:
    """``A[i, j]`` = 1 when (i, j) is a comparable pair with i failing first (module docstring).

    ``rows`` selects the rows i (all by default); the columns are always every case.
    """
    ti, tj = time[rows, None], time[None, :]
    return (event[rows, None] & ((ti < tj) | ((ti == tj) & ~event[None, :]))).astype(float)


def concordance_matrix(risk: np.ndarray, rows=slice(None), tied_tol: float = TIED_TOL) -> np.ndarray:
    """``K[i, j]`` = 1 when risk_i > risk_j, 0.5 when tied (within ``tied_tol``), else 0."""
    diff = risk[rows, None] - risk[None, :]
    return np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float))


def pair_sums(left: np.ndarray, matrix: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise ``left_b @ matrix @ right_b`` for (B, n) weight rows."""
    return np.einsum("bj,bj->b", left @ matrix, right)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is 0 (an estimate with nothing to average)."""
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


# ---- Harrell's C ---------------------------------------------------------------------------------

def undefined_as_none(value: float) -> float | None:
    """``value``, or None when it is NaN (undefined): JSON has no NaN, and None is written as null."""
    return None if math.isnan(value) else value


def harrell_c_weighted(time, event, risk, weights=None, *, tied_tol: float = TIED_TOL) -> np.ndarray:
    """Harrell's C for each row of case weights; shape (B,). NaN where no pair is comparable.

    Parameters are those of :func:`harrell_c`, plus ``weights`` of shape (n,) or (B, n) (default:
    one row of ones).
    """
    y = check_outcome(time, event, name="harrell_c", require_events=False)
    r = check_scores(risk, y.time.size, "risk")
    if r.ndim != 1:
        raise InvalidInput(f"risk: expected one value per case, shape ({y.time.size},), got shape {r.shape}")
    w = check_weights(weights, y.time.size)
    concordant, comparable = np.zeros(w.shape[0]), np.zeros(w.shape[0])
    events = np.flatnonzero(y.event)  # only rows of events hold comparable pairs
    for start in range(0, events.size, BLOCK_ROWS):
        rows = events[start:start + BLOCK_ROWS]
        a = comparable_pairs(y.time, y.event, rows)
        concordant += pair_sums(w[:, rows], a * concordance_matrix(r, rows, tied_tol), w)
        comparable += pair_sums(w[:, rows], a, w)
    return ratio(concordant, comparable)


def harrell_c(time, event, risk, *, tied_tol: float = TIED_TOL) -> float:
    """Harrell's concordance index.

    Parameters
    ----------
    time : array-like, shape (n,)
        Months to recurrence or censoring (> 0).
    event : array-like, shape (n,)
        True (or 1) when recurrence was observed.
    risk : array-like, shape (n,)
        Predicted risk; a higher value indicates a higher risk (earlier recurrence).
    tied_tol : float
        Risks closer than this count as tied (0.5); 0 counts only equal risks (lifelines' rule).

    Returns
    -------
    float
        The share of comparable pairs ranked correctly (tied risks count 0.5); NaN when no pair is
        comparable (e.g. no event), where the C-index is undefined.

    Raises
    ------
    InvalidOutcome
        A bad outcome (see :func:`~sarcoma_risk.survival.outcome.check_outcome`).
    InvalidInput
        ``risk`` of another length than ``time``, or NaN/infinite risks.
    """
    return float(harrell_c_weighted(time, event, risk, tied_tol=tied_tol)[0])
