"""The one survival outcome type: times in months (> 0) and event indicators (bool).

Every fitter and metric calls :func:`check_outcome`, so a bad outcome gets the same clear message
wherever it enters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sarcoma_risk.errors import InvalidOutcome


class Outcome(NamedTuple):
    """Survival outcome: ``time`` (float months, > 0) and ``event`` (True = recurrence observed)."""

    time: np.ndarray
    event: np.ndarray

    def to_structured(self) -> np.ndarray:
        """The structured array scikit-survival expects (fields ``event``, ``time``)."""
        out = np.empty(len(self.time), dtype=[("event", bool), ("time", float)])
        out["event"] = self.event
        out["time"] = self.time
        return out


def check_outcome(time: Any, event: Any, *, name: str = "outcome", require_events: bool = True) -> Outcome:
    """Validate and convert survival data.

    Parameters
    ----------
    time : array-like, shape (n,)
        Time to recurrence or censoring, in months; must be finite and > 0.
    event : array-like, shape (n,)
        1/True when recurrence was observed at ``time``, 0/False when censored.
    require_events : bool
        Refuse data with no events (nothing can be fitted or ranked).

    Returns
    -------
    Outcome
        ``time`` as float64 and ``event`` as bool arrays of shape (n,).

    Raises
    ------
    InvalidOutcome
        Naming ``name``, the problem and the positions of the offending values.
    """
    try:
        t = np.asarray(time, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidOutcome(f"{name}: time must be numbers of months ({exc})") from None
    e_raw = np.asarray(event).ravel()
    if t.shape != e_raw.shape:
        raise InvalidOutcome(f"{name}: time has {t.size} values but event has {e_raw.size}")
    if t.size == 0:
        raise InvalidOutcome(f"{name}: no cases")
    bad = ~np.isfinite(t)
    if bad.any():
        raise InvalidOutcome(f"{name}: time is NaN or infinite at positions {np.flatnonzero(bad)[:10].tolist()}")
    if (t <= 0).any():
        raise InvalidOutcome(
            f"{name}: time must be > 0 months; found {int((t <= 0).sum())} value(s) <= 0 (min {t.min():g})"
        )
    if e_raw.dtype == bool:
        e = e_raw
    else:
        try:
            e_num = np.asarray(e_raw, dtype=float)
        except (TypeError, ValueError):
            e_num = np.full(e_raw.shape, np.nan)
        bad = ~np.isin(e_num, (0.0, 1.0))  # NaN is never in (0, 1)
        if bad.any():
            examples = [repr(v) for v in dict.fromkeys(e_raw[bad].tolist())][:5]
            raise InvalidOutcome(f"{name}: event must be 0 or 1 (or True/False); found {', '.join(examples)} "
                                 f"at positions {np.flatnonzero(bad)[:10].tolist()}")
        e = e_num.astype(bool)
    if require_events and not e.any():
        raise InvalidOutcome(f"{name}: no events among {t.size} cases; a survival model needs at least one")
    return Outcome(t, e)
