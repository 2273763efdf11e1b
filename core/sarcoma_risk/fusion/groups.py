"""Risk groups: a cutoff on the log relative hazard fixed on the development set, and group comparison.

Two ways to fix the cutoff:

* ``median``: the development median (half the development cases are "high");
* ``maxstat``: the maximally selected log-rank statistic (Lausen and Schumacher 1992) over
  cutoffs that leave at least ``min_share`` of the development cases in each group. Its own p-value
  is optimistic (the cutoff was chosen to maximise it), so only the log-rank test on the validation
  set, where the cutoff is fixed, says whether the groups separate.

A case is "high" when its risk is strictly above the cutoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

import numpy as np
import pandas as pd

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.survival.outcome import check_outcome

LOW, HIGH = "low", "high"


class CutoffMethod(str, Enum):
    MEDIAN = "median"
    MAXSTAT = "maxstat"


@dataclass(frozen=True)
class Cutoff:
    """A risk-group cutoff fixed on development cases: a case is high risk when its risk is above ``value``."""

    method: str  # a CutoffMethod value
    value: float
    share_high: float  # share of the development cases above the cutoff
    min_share: float  # for maxstat: the smallest share allowed in either group
    statistic: float | None  # log-rank chi-square at the cutoff (selected, hence optimistic, for maxstat)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "value": self.value, "share_high": self.share_high,
                "min_share": self.min_share, "statistic": self.statistic}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "cutoff") -> "Cutoff":
        """Rebuild a saved cutoff; :class:`InvalidModel` names ``where`` and the broken field."""
        if not isinstance(data, Mapping):
            raise InvalidModel(f"{where}: expected an object")
        try:
            method = check_choice(data.get("method"), CutoffMethod, f"{where}.method").value
        except InvalidInput as exc:
            raise InvalidModel(str(exc)) from None
        numbers = {}
        for key in ("value", "share_high", "min_share", "statistic"):
            value = data.get(key)
            if key == "statistic" and value is None:
                numbers[key] = None
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidModel(f"{where}.{key}: expected a finite number, got {value!r}")
            else:
                numbers[key] = value
        return cls(method, **numbers)


def logrank_statistics(time: np.ndarray, event: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Two-group log-rank chi-square statistics for many groupings of one sample at once.

    Parameters
    ----------
    time, event : ndarray, shape (n,)
        A validated outcome.
    high : ndarray of bool, shape (K, n)
        Each row marks the cases of one grouping's second group.

    Returns
    -------
    ndarray, shape (K,)
        ``(O - E)^2 / V`` of the second group (hypergeometric variance, as lifelines'
        ``logrank_test``); NaN where the variance is 0 (e.g. an empty group).
    """
    order = np.argsort(time, kind="mergesort")
    t_sorted = time[order]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    e_sorted = event[order].astype(float)
    h_sorted = np.asarray(high, dtype=float)[:, order]
    total = np.add.reduceat(np.ones_like(e_sorted), starts)
    deaths = np.add.reduceat(e_sorted, starts)
    at_risk = np.cumsum(total[::-1])[::-1]
    high_total = np.add.reduceat(h_sorted, starts, axis=1)
    high_deaths = np.add.reduceat(h_sorted * e_sorted, starts, axis=1)
    high_at_risk = np.cumsum(high_total[:, ::-1], axis=1)[:, ::-1]
    share = high_at_risk / at_risk
    expected = (deaths * share).sum(axis=1)
    ties = np.divide(at_risk - deaths, at_risk - 1, out=np.zeros_like(at_risk), where=at_risk > 1)
    variance = (deaths * share * (1.0 - share) * ties).sum(axis=1)
    observed = high_deaths.sum(axis=1)
    return np.divide(np.square(observed - expected), variance, out=np.full(variance.shape, np.nan),
                     where=variance > 0)


def choose_cutoff(time, event, risk, method: CutoffMethod | str = CutoffMethod.MEDIAN, *,
                  min_share: float = 0.2) -> Cutoff:
    """Fix the risk-group cutoff on development data.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Development outcome.
    risk : array-like, shape (n,)
        Development log relative hazards (higher = riskier).
    method : {"median", "maxstat"}
    min_share : float
        For ``maxstat``: the smallest share of cases allowed in either group (0 < min_share <= 0.5).

    Returns
    -------
    Cutoff
        ``statistic`` is the log-rank chi-square at the cutoff (selected, hence optimistic, for
        ``maxstat``); None where it is undefined.
    """
    method = check_choice(method, CutoffMethod, "cutoff")
    y = check_outcome(time, event, name="cutoff")
    r = np.asarray(risk, dtype=float)
    if r.shape != y.time.shape or not np.isfinite(r).all():
        raise InvalidInput(f"risk: expected {y.time.size} finite values, got shape {r.shape}")
    if not 0 < min_share <= 0.5:
        raise InvalidInput(f"min_share: {min_share} must be in (0, 0.5]")
    levels = np.unique(r)
    if levels.size < 2:
        raise InvalidInput("risk: every development case has the same risk; no cutoff can split them")
    if method is CutoffMethod.MEDIAN:
        value = float(np.median(r))
        if not (r > value).any():  # many ties at the top: split below the largest value instead
            value = float((levels[-2] + levels[-1]) / 2)
    else:
        # Candidate cutoffs halfway between consecutive distinct risks.
        candidates = (levels[:-1] + levels[1:]) / 2
        share = (r[None, :] > candidates[:, None]).mean(axis=1)
        allowed = (share >= min_share) & (share <= 1.0 - min_share)
        if not allowed.any():
            raise InvalidInput(f"maxstat: no cutoff leaves at least {min_share:.0%} of the {r.size} "
                               "development cases in each group (too many tied risks)")
        candidates = candidates[allowed]
        stats = logrank_statistics(y.time, y.event, r[None, :] > candidates[:, None])
        if np.isnan(stats).all():
            raise InvalidInput("maxstat: the log-rank statistic is undefined for every allowed cutoff")
        value = float(candidates[int(np.nanargmax(stats))])
    high = r > value
    stat = logrank_statistics(y.time, y.event, high[None, :])[0]
    return Cutoff(method.value, value, float(high.mean()), min_share, float(stat) if np.isfinite(stat) else None)


def assign_groups(risk, cutoff: float) -> np.ndarray:
    """``"high"`` where risk > cutoff, else ``"low"``."""
    return np.where(np.asarray(risk, dtype=float) > cutoff, HIGH, LOW)


def compare_groups(time, event, groups) -> dict[str, Any]:
    """Log-rank test and Cox hazard ratio (high vs low, 95% CI) between two risk groups.

    Returns ``{"n", "events", "logrank_chi2", "logrank_p", "hazard_ratio", "hr_low", "hr_high",
    "note"}``; figures that cannot be estimated (an empty group, a group without events) are None
    and ``note`` says why.
    """

    y = check_outcome(time, event, name="risk groups", require_events=False)
    g = np.asarray(groups)
    high = g == HIGH
    out: dict[str, Any] = {
        "n": {LOW: int((~high).sum()), HIGH: int(high.sum())},
        "events": {LOW: int(y.event[~high].sum()), HIGH: int(y.event[high].sum())},
        "logrank_chi2": None, "logrank_p": None, "hazard_ratio": None, "hr_low": None, "hr_high": None, "note": None,
    }
    if high.all() or not high.any():
        out["note"] = f"every case is in the {HIGH if high.all() else LOW} group; nothing to compare"
        return out
    if not y.event.any():
        out["note"] = "no events; the groups cannot be compared"
        return out
    # lifelines costs about 0.9 s at import; a process that only assigns risk groups never compares them
    from lifelines import CoxPHFitter  # lazy: see above
    from lifelines.statistics import logrank_test  # lazy: see above

    test = logrank_test(y.time[high], y.time[~high], y.event[high], y.event[~high])
    out["logrank_chi2"] = float(test.test_statistic)
    out["logrank_p"] = float(test.p_value)
    if out["events"][LOW] == 0 or out["events"][HIGH] == 0:
        out["note"] = "a group has no events; the hazard ratio is not estimable"
        return out
    frame = pd.DataFrame({"time": y.time, "event": y.event.astype(int), "high": high.astype(float)})
    cph = CoxPHFitter().fit(frame, "time", "event")
    ci = cph.confidence_intervals_.loc["high"].to_numpy()
    out["hazard_ratio"] = float(np.exp(cph.params_["high"]))
    out["hr_low"], out["hr_high"] = float(np.exp(ci[0])), float(np.exp(ci[1]))
    return out
