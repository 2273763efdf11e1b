"""The cross-fitting loop: every case scored by the model of its fold, which never saw it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.cox import fit_cox
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.survival.crossfit import cross_fit
from sarcoma_risk.survival.folds import event_strata, stratified_folds


def test_each_case_is_scored_by_the_model_of_its_fold_which_never_saw_it():
    assignment = np.array([0, 1, 2, 0, 1, 2, 0])
    result = cross_fit(assignment, 3, lambda fold: (fold.number, set(fold.train.tolist())),
                       lambda model, fold: [(model[0], int(i) in model[1]) for i in fold.test])
    assert [fold for fold, _ in result.scores] == assignment.tolist()
    assert not any(seen for _, seen in result.scores)
    assert [model[1] for model in result.models] == [{1, 2, 4, 5}, {0, 2, 3, 5, 6}, {0, 1, 3, 4, 6}]


def test_out_of_fold_cox_scores_rank_a_real_signal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    lp = 1.2 * x[:, 0]
    event_time = rng.exponential(30 * np.exp(-lp))
    censor = rng.uniform(10, 80, 120)
    time, event = np.minimum(event_time, censor), event_time <= censor
    frame = pd.DataFrame(x, columns=["a", "b"])
    assignment = stratified_folds(event_strata(event), 4, 0)
    result = cross_fit(assignment, 4,
                       lambda fold: fit_cox(frame.iloc[fold.train], time[fold.train], event[fold.train], 0.01)[0],
                       lambda params, fold: params.risk(x[fold.test]))
    assert harrell_c(time, event, np.asarray(result.scores, dtype=float)) > 0.7


def test_a_fold_that_scores_another_number_of_cases_is_refused():
    with pytest.raises(InvalidInput, match=r"fold 1/2: 1 score\(s\) for 2 case\(s\)"):
        cross_fit([0, 1, 0, 1], 2, lambda fold: None, lambda model, fold: [0.0])


def test_an_assignment_outside_the_folds_is_refused():
    with pytest.raises(InvalidInput, match=r"assignment: expected one fold number in 0\.\.1 per case"):
        cross_fit([0, 2, 1], 2, lambda fold: None, lambda model, fold: [0.0] * fold.test.size)


def test_each_fold_is_announced_on_the_callers_logger_and_nowhere_without_one(caplog):
    import logging

    caller = logging.getLogger("sarcoma_risk.radiology.cohort")
    with caplog.at_level(logging.INFO):
        cross_fit([0, 1, 1], 2, lambda fold: None, lambda model, fold: [0.0] * fold.test.size, log=caller)
        cross_fit([0, 1, 1], 2, lambda fold: None, lambda model, fold: [0.0] * fold.test.size)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("sarcoma_risk.radiology.cohort", "fold 1/2: training on 2 cases, scoring 1"),
        ("sarcoma_risk.radiology.cohort", "fold 2/2: training on 1 cases, scoring 2")]
