"""The negative Cox partial log-likelihood over a batch, with Breslow or Efron handling of ties.

For predicted log hazards ``eta`` and risk sets R(t) = {j : t_j >= t}, per distinct event time t
with d events D(t):

- Breslow: ``sum_{i in D} eta_i - d * log sum_{j in R} exp(eta_j)``;
- Efron: ``sum_{i in D} eta_i - sum_{l=0}^{d-1} log(sum_{R} exp(eta) - l/d * sum_{D} exp(eta))``,

which agree when there are no ties. The loss is minus their sum divided by the number of events
(so its scale does not depend on the batch size); a batch without events gives 0.
"""

from __future__ import annotations

import torch

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidOutcome
from sarcoma_risk.radiology.config import Ties


def cox_partial_nll(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str | Ties = "efron") -> torch.Tensor:
    """Mean negative partial log-likelihood per event.

    Parameters
    ----------
    risk : Tensor, shape (n,)
        Predicted log relative hazards (higher = riskier).
    time : Tensor, shape (n,)
        Follow-up times.
    event : Tensor, shape (n,)
        1/True where the event was observed at ``time``.
    ties : {"breslow", "efron"}
    """
    method = check_choice(ties, Ties, "ties")
    if risk.ndim != 1 or risk.shape != time.shape or risk.shape != event.shape:
        raise InvalidOutcome(f"cox loss: risk, time and event must be 1-D of equal length; got {tuple(risk.shape)}, "
                             f"{tuple(time.shape)}, {tuple(event.shape)}")
    order = torch.argsort(time, descending=True, stable=True)
    eta, t, observed = risk[order], time[order], event[order].bool()
    n_events = int(observed.sum())
    if n_events == 0:
        return risk.sum() * 0.0
    _, group, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    # Sorted by decreasing time, the risk set of a time group is everything up to the group's end.
    log_risk_set = torch.logcumsumexp(eta, 0)[torch.cumsum(counts, 0) - 1]
    event_eta, event_group = eta[observed], group[observed]
    if method is Ties.BRESLOW:
        log_likelihood = (event_eta - log_risk_set[event_group]).sum()
    else:
        n_groups = counts.numel()
        d = torch.zeros(n_groups, dtype=eta.dtype).index_add_(0, event_group, torch.ones_like(event_eta))
        shift = torch.full((n_groups,), -torch.inf, dtype=eta.dtype).scatter_reduce(
            0, event_group, event_eta.detach(), reduce="amax")
        sum_exp = torch.zeros(n_groups, dtype=eta.dtype).index_add(0, event_group, torch.exp(event_eta - shift[event_group]))
        log_tied = torch.log(sum_exp[event_group]) + shift[event_group]  # log sum_{D} exp(eta), per event
        first_event = torch.cumsum(d, 0) - d
        rank = torch.arange(n_events, dtype=eta.dtype) - first_event[event_group]  # l = 0 .. d-1 within a group
        share = rank / d[event_group]
        # log(S_R - l/d S_D) = log S_R + log1p(-l/d * S_D/S_R); S_D <= S_R keeps the argument > -1.
        log_terms = log_risk_set[event_group] + torch.log1p(-share * torch.exp(log_tied - log_risk_set[event_group]))
        log_likelihood = (event_eta - log_terms).sum()
    return -log_likelihood / n_events
