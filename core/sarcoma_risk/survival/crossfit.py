"""The cross-fitting loop: every case scored by a model fitted without it.

Given a fold per case (e.g. from :func:`~sarcoma_risk.survival.folds.stratified_folds`),
:func:`cross_fit` fits one model per fold on the other folds' cases and lets it score the fold's
own cases. The collected out-of-fold scores are honest inputs for a model stacked on them (the
slide signature, the fusion Cox model): no score comes from a model that saw its case's outcome.

The folds run in order, one after the other; what a model is and what it scores (a number, a
record of counts) is the caller's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

from sarcoma_risk.errors import InvalidInput

Model = TypeVar("Model")


@dataclass(frozen=True)
class Fold:
    """One fold: positions (into the caller's cases) of the cases fitted on and of those scored."""

    number: int  # 0-based
    count: int  # folds in all
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class OutOfFold(Generic[Model]):
    """The loop's result: one score per case (in the caller's order) and the model of each fold."""

    scores: list[Any]
    models: list[Model]


def cross_fit(assignment: Any, folds: int, fit: Callable[[Fold], Model],
              score: Callable[[Model, Fold], Sequence[Any]], *, log: logging.Logger | None = None) -> OutOfFold[Model]:
    """Fit on the other folds, score the held-out fold, for each fold in turn.

    Parameters
    ----------
    assignment : array-like of int, shape (n,)
        The fold (0..folds-1) of each case.
    folds : int
        Number of folds.
    fit : callable(Fold) -> model
        Fits a model on the cases ``fold.train``.
    score : callable(model, Fold) -> sequence
        That model's scores of the cases ``fold.test``, one per case, in that order.
    log : logging.Logger, optional
        Where to say (INFO) which fold starts and its sizes: the caller's logger, so a long
        training's log names the pipeline it belongs to. None: quiet.

    Returns
    -------
    OutOfFold
        ``scores[i]`` is case i's score from the model of its fold; ``models[k]`` is fold k's model.
    """
    assignment = np.asarray(assignment)
    if assignment.ndim != 1 or (assignment.size and (assignment.min() < 0 or assignment.max() >= folds)):
        raise InvalidInput(f"assignment: expected one fold number in 0..{folds - 1} per case")
    scores: list[Any] = [None] * assignment.size
    models: list[Model] = []
    for number in range(folds):
        fold = Fold(number, folds, np.flatnonzero(assignment != number), np.flatnonzero(assignment == number))
        if log is not None:
            log.info("fold %d/%d: training on %d cases, scoring %d", number + 1, folds, fold.train.size,
                     fold.test.size)
        model = fit(fold)
        values = list(score(model, fold))
        if len(values) != fold.test.size:
            raise InvalidInput(f"fold {number + 1}/{folds}: {len(values)} score(s) for {fold.test.size} case(s)")
        for position, value in zip(fold.test, values):
            scores[position] = value
        models.append(model)
    return OutOfFold(scores, models)
