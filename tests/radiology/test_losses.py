"""The Cox partial likelihood loss against scikit-survival and lifelines fits, with and without ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sarcoma_risk.errors import InvalidInput, InvalidOutcome
from sarcoma_risk.radiology.losses import cox_partial_nll


@pytest.fixture(scope="module")
def tied_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=80)
    time = np.round(rng.exponential(np.exp(-0.8 * x)) * 4) + 1  # few distinct times: many ties
    event = rng.random(80) < 0.7
    assert len(np.unique(time)) < 30
    return x, time, event


def fit_coefficient(x, time, event, ties):
    beta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([beta], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15)
    X, T, E = torch.tensor(x), torch.tensor(time), torch.tensor(event)

    def closure():
        optimiser.zero_grad()
        loss = cox_partial_nll(X * beta, T, E, ties)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(beta.detach())


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_minimising_the_loss_gives_scikit_survivals_cox_coefficient(tied_data, ties):
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    x, time, event = tied_data
    reference = CoxPHSurvivalAnalysis(ties=ties).fit(x[:, None], Surv.from_arrays(event, time)).coef_[0]
    assert fit_coefficient(x, time, event, ties) == pytest.approx(reference, abs=1e-6)


def test_efron_agrees_with_lifelines(tied_data):
    from lifelines import CoxPHFitter

    x, time, event = tied_data
    fitted = CoxPHFitter().fit(pd.DataFrame({"x": x, "t": time, "e": event.astype(int)}), "t", "e")
    assert fit_coefficient(x, time, event, "efron") == pytest.approx(fitted.params_["x"], abs=1e-4)


def test_breslow_and_efron_differ_with_ties_and_agree_without(tied_data):
    x, time, event = tied_data
    risk = torch.tensor(0.7 * x)
    with_ties = [float(cox_partial_nll(risk, torch.tensor(time), torch.tensor(event), t)) for t in ("breslow", "efron")]
    assert with_ties[0] != pytest.approx(with_ties[1])
    distinct = torch.tensor(time + np.arange(len(time)) * 1e-3)
    without = [float(cox_partial_nll(risk, distinct, torch.tensor(event), t)) for t in ("breslow", "efron")]
    assert without[0] == pytest.approx(without[1], rel=1e-12)


def test_breslow_matches_the_definition_written_as_loops(tied_data):
    x, time, event = tied_data
    risk = 0.5 * x
    total = 0.0
    for i in np.flatnonzero(event):
        total += risk[i] - np.log(np.exp(risk[time >= time[i]]).sum())
    expected = -total / event.sum()
    loss = cox_partial_nll(torch.tensor(risk), torch.tensor(time), torch.tensor(event), "breslow")
    assert float(loss) == pytest.approx(expected, rel=1e-12)


def test_the_loss_ignores_a_constant_and_a_batch_without_events_gives_zero(tied_data):
    x, time, event = (torch.tensor(v) for v in tied_data)
    assert float(cox_partial_nll(x + 5.0, time, event)) == pytest.approx(float(cox_partial_nll(x, time, event)))
    risk = torch.randn(6, requires_grad=True)
    loss = cox_partial_nll(risk, torch.arange(1.0, 7.0), torch.zeros(6))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.count_nonzero(risk.grad) == 0


def test_mismatched_shapes_and_unknown_ties_are_refused():
    with pytest.raises(InvalidOutcome, match="equal length"):
        cox_partial_nll(torch.zeros(3), torch.ones(4), torch.ones(4))
    with pytest.raises(InvalidInput, match="ties: 'exact' is not valid"):
        cox_partial_nll(torch.zeros(3), torch.ones(3), torch.ones(3), "exact")
