"""Repeated, seeded cross-validation of the penalizer: reproducible, and each repeat is a plain K-fold CV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.repeated_cv import repeated_penalizer_cv
from sarcoma_risk.fusion.selection import select_penalizer

GRID = (0.01, 0.1, 1.0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 120
    x = pd.DataFrame({"a": rng.standard_normal(n), "b": rng.standard_normal(n), "noise": rng.standard_normal(n)})
    time = rng.exponential(np.exp(-(0.8 * x["a"] + 0.4 * x["b"])).to_numpy()) * 24 + 0.1
    event = rng.random(n) < 0.7
    return x, time, event


def test_the_same_seed_gives_the_same_choices_and_scores(data):
    x, time, event = data
    first = repeated_penalizer_cv(x, time, event, penalizers=GRID, repeats=3, folds=4, seed=5)
    again = repeated_penalizer_cv(x, time, event, penalizers=GRID, repeats=3, folds=4, seed=5)
    assert first == again
    assert first["seeds"] == [5, 6, 7] and len(first["chosen"]) == 3
    assert sum(first["counts"].values()) == 3


def test_each_repeat_is_the_k_fold_cross_validation_of_its_seed(data):
    x, time, event = data
    out = repeated_penalizer_cv(x, time, event, penalizers=GRID, repeats=3, folds=4, seed=5)
    singles = [select_penalizer(x, time, event, penalizers=GRID, folds=4, seed=s) for s in (5, 6, 7)]
    assert out["chosen"] == [s.penalizer for s in singles]
    expected_mean = np.mean([s.scores for s in singles], axis=0)
    assert out["mean_scores"] == pytest.approx(expected_mean.tolist())
    assert out["most_chosen"] in out["chosen"]


def test_zero_repeats_are_refused(data):
    x, time, event = data
    with pytest.raises(InvalidInput, match="repeats"):
        repeated_penalizer_cv(x, time, event, penalizers=GRID, repeats=0)
