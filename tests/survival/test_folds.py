"""Stratified folds and splits: strata dealt in sorted label order, reproducible, evenly spread."""

from __future__ import annotations

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.folds import event_strata, stratified_folds, stratified_split


def test_folds_are_stratified_by_event_and_reproducible():
    event = np.r_[np.ones(30, bool), np.zeros(70, bool)]
    folds = stratified_folds(event_strata(event), 5, 1)
    assert [int(event[folds == f].sum()) for f in range(5)] == [6] * 5
    assert [int((folds == f).sum()) for f in range(5)] == [20] * 5
    np.testing.assert_array_equal(folds, stratified_folds(event_strata(event), 5, 1))


def test_event_strata_put_the_events_first():
    assert event_strata([True, False, 1, 0]).tolist() == [0, 1, 0, 1]


def test_strata_are_shuffled_and_dealt_round_robin_in_sorted_label_order():
    strata = ["b", "a", "b", "a", "a"]
    rng = np.random.default_rng(3)
    a_cases = rng.permutation([1, 3, 4])  # "a" sorts first: shuffled first, dealt folds 0, 1, 0
    b_cases = rng.permutation([0, 2])  # "b" continues where "a" stopped: folds 1, 0
    expected = np.empty(5, dtype=np.int64)
    expected[a_cases] = [0, 1, 0]
    expected[b_cases] = [1, 0]
    np.testing.assert_array_equal(stratified_folds(strata, 2, np.random.default_rng(3)), expected)


def test_fold_sizes_differ_by_at_most_one_whatever_the_strata():
    strata = np.random.default_rng(0).choice(["positive", "negative", "censored"], size=47)
    sizes = np.bincount(stratified_folds(strata, 5, 2), minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 47


def test_a_generator_is_used_as_it_is_and_advanced():
    rng = np.random.default_rng(5)
    stratified_folds(["x", "y", "x", "y"], 2, rng)
    reference = np.random.default_rng(5)
    reference.permutation(2)
    reference.permutation(2)
    assert rng.random() == reference.random()


def test_a_split_takes_the_rounded_share_of_each_stratum():
    strata = event_strata(np.r_[np.ones(10, bool), np.zeros(5, bool)])
    chosen = stratified_split(strata, 0.3, 0)
    assert int(chosen[:10].sum()) == 3 and int(chosen[10:].sum()) == 2  # round(1.5) = 2 (half to even)
    assert not stratified_split(strata, 0.0, 0).any() and stratified_split(strata, 1.0, 0).all()


def test_every_stratum_keeps_at_least_one_case_on_each_side():
    strata = ["censored", "0", "0", "1", "1", "1", "1", "1", "1", "1"]
    chosen = stratified_split(strata, 0.05, 1, every_stratum=True)
    assert not chosen[0]  # a stratum of one is never chosen
    assert int(chosen[1:3].sum()) == 1 and int(chosen[3:].sum()) == 1
    assert int(stratified_split(strata, 0.99, 1, every_stratum=True)[3:].sum()) == 6


@pytest.mark.parametrize("call, match", [
    (lambda: stratified_folds([0, 1, 0], 0, 1), "folds: 0; expected a whole number >= 1"),
    (lambda: stratified_folds([0, 1, 0], 2.5, 1), "folds: 2.5; expected a whole number >= 1"),
    (lambda: stratified_folds([[0, 1], [1, 0]], 2, 1), r"strata: expected one label per case, got shape \(2, 2\)"),
    (lambda: stratified_split([0, 1, 0], 1.5, 1), "fraction: 1.5; expected a share between 0 and 1"),
])
def test_bad_arguments_are_refused_with_what_is_expected(call, match):
    with pytest.raises(InvalidInput, match=match):
        call()
