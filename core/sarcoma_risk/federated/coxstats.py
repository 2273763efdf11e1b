"""The Cox partial likelihood of one centre as sums, and the Newton-Raphson fit on their totals.

A centre evaluates, at the coefficients the server sends, the log partial likelihood of its own
cases (Efron's ties, as lifelines), its gradient and its Hessian. These are sums over the centre's
event times, so the server adds them over centres, subtracts the ridge penalty once and takes a
Newton step. The risk set of a centre holds only its own cases: the sum over centres is the
partial likelihood of the pooled Cox model STRATIFIED by centre (one baseline hazard per centre),
so the federated fit equals lifelines' ``CoxPHFitter(penalizer=p, l1_ratio=0).fit(..., strata=
["centre"])`` on the pooled rows, not the unstratified pooled fit (risk sets do not decompose
across centres).

As lifelines does, the design is standardised with the pooled means and standard deviations
(ddof=1) before fitting, the penalty ``n * penalizer / 2 * ||beta_std||^2`` applies to the
standardised coefficients (``n`` the pooled number of cases), and the coefficients are returned on
the original scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generator

import numpy as np

from sarcoma_risk.errors import InvalidInput, InvalidModel


@dataclass(frozen=True)
class CoxStats:
    """Log partial likelihood, gradient (p,) and Hessian (p, p) of some cases at one beta."""

    log_likelihood: float
    gradient: np.ndarray
    hessian: np.ndarray

    def __add__(self, other: "CoxStats") -> "CoxStats":
        return CoxStats(self.log_likelihood + other.log_likelihood, self.gradient + other.gradient,
                        self.hessian + other.hessian)


def efron_stats(x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray) -> CoxStats:
    """Efron log partial likelihood, gradient and Hessian of one stratum (one centre's cases).

    ``x`` is (n, p) (already standardised), ``time`` (n,) > 0, ``event`` (n,) boolean, ``beta`` (p,).
    """
    x = np.asarray(x, dtype=float)
    p = x.shape[1]
    beta = np.asarray(beta, dtype=float).reshape(p)
    r = x @ beta
    w = np.exp(r)
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    for t in np.unique(time[event]):
        at_risk = time >= t
        ties = (time == t) & event
        d = int(ties.sum())
        xr, wr = x[at_risk], w[at_risk]
        s0, s1, s2 = wr.sum(), wr @ xr, (xr * wr[:, None]).T @ xr
        xd, wd = x[ties], w[ties]
        d0, d1, d2 = wd.sum(), wd @ xd, (xd * wd[:, None]).T @ xd
        ll += r[ties].sum()
        grad += xd.sum(axis=0)
        for k in range(d):
            f = k / d
            den = s0 - f * d0
            num = s1 - f * d1
            ll -= math.log(den)
            grad -= num / den
            hess -= (s2 - f * d2) / den - np.outer(num, num) / den ** 2
    return CoxStats(ll, grad, hess)


@dataclass(frozen=True)
class NewtonResult:
    """The penalised fit on the standardised scale: beta, its covariance, iterations, convergence."""

    beta: np.ndarray
    covariance: np.ndarray
    log_likelihood: float
    iterations: int
    converged: bool


def newton_step_solver(total: CoxStats, beta: np.ndarray, n_cases: int, penalizer: float
                       ) -> tuple[np.ndarray, float, np.ndarray]:
    """Add the ridge penalty once to summed statistics; returns (step, penalised ll, -Hessian)."""
    ll = total.log_likelihood - n_cases * penalizer * 0.5 * float(beta @ beta)
    g = total.gradient - n_cases * penalizer * beta
    neg_h = -total.hessian + n_cases * penalizer * np.eye(beta.size)
    try:
        step = np.linalg.solve(neg_h, g)
    except np.linalg.LinAlgError:
        raise InvalidModel("federated Cox: the summed Hessian is singular (collinear covariates?); "
                           "raise the penalizer or drop a feature") from None
    return step, ll, neg_h


def newton_steps(p: int, n_cases: int, penalizer: float, *, max_steps: int = 50, tolerance: float = 1e-10
                 ) -> Generator[np.ndarray, CoxStats, NewtonResult]:
    """Newton-Raphson with step halving, driven from outside: yields each beta at which it needs the
    summed statistics, is sent them back (``CoxStats``), and returns the :class:`NewtonResult`.

    A server that fits several models can advance them all in the same rounds of messages (one
    generator each); :func:`fit_newton` drives one with a function. At most ``max_steps`` iterations.
    """
    if not (math.isfinite(penalizer) and penalizer >= 0):
        raise InvalidInput(f"penalizer: {penalizer}; expected a finite number >= 0")
    beta = np.zeros(p)
    total = yield beta
    step, ll, neg_h = newton_step_solver(total, beta, n_cases, penalizer)
    for iteration in range(1, max_steps + 1):
        size = 1.0
        while True:
            candidate = beta + size * step
            new_total = yield candidate
            new_step, new_ll, new_neg_h = newton_step_solver(new_total, candidate, n_cases, penalizer)
            # the penalised partial likelihood is concave: a full step that lowers it overshot
            if new_ll >= ll - 1e-12 or size < 1e-4:
                break
            size /= 2
        converged = float(np.linalg.norm(candidate - beta)) < tolerance or float(np.linalg.norm(new_step)) < tolerance
        beta, step, ll, neg_h = candidate, new_step, new_ll, new_neg_h
        if converged:
            return NewtonResult(beta, np.linalg.inv(neg_h), ll, iteration, True)
    return NewtonResult(beta, np.linalg.inv(neg_h), ll, max_steps, False)


def fit_newton(evaluate: Callable[[np.ndarray], CoxStats], p: int, n_cases: int, penalizer: float, *,
               max_steps: int = 50, tolerance: float = 1e-10) -> NewtonResult:
    """:func:`newton_steps` on ``evaluate(beta) -> CoxStats`` (the sum over centres).

    ``evaluate`` is called once per iteration and once per halved step (one round of messages each).
    """
    steps = newton_steps(p, n_cases, penalizer, max_steps=max_steps, tolerance=tolerance)
    beta = next(steps)
    while True:
        try:
            beta = steps.send(evaluate(beta))
        except StopIteration as done:
            return done.value
