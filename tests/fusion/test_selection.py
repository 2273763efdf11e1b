"""Penalizer cross-validation: deterministic, sensible, and honest about fits that fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.selection import select_penalizer

GRID = (0.003, 0.03, 0.3, 3.0)


def design(signal: float, n: int = 150, p: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"x{i}" for i in range(p)])
    lp = signal * (x["x0"] + x["x1"]).to_numpy()
    event_time = rng.exponential(30 * np.exp(-lp))
    censor = rng.uniform(10, 80, n)
    return x, np.minimum(event_time, censor), event_time <= censor


@pytest.mark.parametrize("metric", ["partial_likelihood", "c_index"])
def test_strong_signal_gets_less_penalty_than_pure_noise(metric):
    x, time, event = design(signal=1.0)
    strong = select_penalizer(x, time, event, penalizers=GRID, folds=3, metric=metric)
    x0, time0, event0 = design(signal=0.0, seed=1)
    noise = select_penalizer(x0, time0, event0, penalizers=GRID, folds=3, metric=metric)
    assert strong.penalizer < noise.penalizer
    assert strong == select_penalizer(x, time, event, penalizers=GRID, folds=3, metric=metric)  # same seed, same choice
    assert len(strong.scores) == len(GRID) and strong.metric == metric


def test_needs_events_in_at_least_two_folds():
    x, time, event = design(signal=1.0, n=30)
    event[:] = False
    event[0] = True
    with pytest.raises(InvalidInput, match="at least 2 folds with events"):
        select_penalizer(x, time, event, penalizers=GRID)


def test_a_penalizer_that_does_not_converge_is_reported_and_skipped():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60)})
    time = np.argsort(np.argsort(-x["a"].to_numpy())) + 1.0  # complete separation: a orders the times exactly
    result = select_penalizer(x, time, np.ones(60, bool), penalizers=(0.0, 0.1), folds=3)
    assert result.penalizer == 0.1
    assert result.scores[0] is None and "separation" in result.failed["0"]
