"""Stratified folds and stratified splits of cases, reproducible from a seed.

Both functions take one stratum label per case and visit the strata in the sorted order of their
labels, shuffling each with the same generator in turn; the order of the labels is therefore the
dealing order, and a caller chooses it through the labels it passes. :func:`event_strata` gives
labels that deal the events first, then the censored cases.

``rng`` is a :class:`numpy.random.Generator` (used, and advanced, as it is) or a seed for
:func:`numpy.random.default_rng`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput

Seed = np.random.Generator | int | Sequence[int]


def event_strata(event: Any) -> np.ndarray:
    """Stratum labels by event status that deal the events first: 0 for an event, 1 for a censored case."""
    return np.where(np.asarray(event, dtype=bool), 0, 1)


def _strata(strata: Any) -> tuple[int, np.ndarray]:
    values = np.asarray(strata)
    if values.ndim != 1:
        raise InvalidInput(f"strata: expected one label per case, got shape {values.shape}")
    labels, index = np.unique(values, return_inverse=True)
    return labels.size, index.ravel()


def stratified_folds(strata: Any, folds: int, rng: Seed) -> np.ndarray:
    """Fold number (0..folds-1) of each case, every stratum spread evenly over the folds.

    Each stratum, in sorted label order, is shuffled and dealt round-robin, the next stratum
    continuing where the previous one stopped, so fold sizes differ by at most one.

    Parameters
    ----------
    strata : array-like, shape (n,)
        A label per case (e.g. :func:`event_strata`).
    folds : int
        Number of folds (>= 1).
    rng : Generator or seed
        The shuffles' source (module docstring).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 1:
        raise InvalidInput(f"folds: {folds!r}; expected a whole number >= 1")
    n_strata, index = _strata(strata)
    generator = np.random.default_rng(rng)
    out = np.empty(index.size, dtype=np.int64)
    offset = 0
    for k in range(n_strata):
        members = generator.permutation(np.flatnonzero(index == k))
        out[members] = (np.arange(members.size) + offset) % folds
        offset += members.size
    return out


def stratified_split(strata: Any, fraction: float, rng: Seed, *, every_stratum: bool = False) -> np.ndarray:
    """Boolean mask choosing about ``fraction`` of each stratum (rounded half to even).

    Parameters
    ----------
    strata : array-like, shape (n,)
        A label per case (e.g. :func:`event_strata`).
    fraction : float
        Share of each stratum to choose, in [0, 1].
    rng : Generator or seed
        The shuffles' source (module docstring).
    every_stratum : bool
        Choose at least one case of every stratum of two or more, and never a whole stratum (a
        stratum of one is left unchosen), so both sides of the split see every stratum.
    """
    if not 0 <= fraction <= 1:
        raise InvalidInput(f"fraction: {fraction!r}; expected a share between 0 and 1")
    n_strata, index = _strata(strata)
    generator = np.random.default_rng(rng)
    chosen = np.zeros(index.size, dtype=bool)
    for k in range(n_strata):
        members = np.flatnonzero(index == k)
        take = int(round(fraction * members.size))
        if every_stratum:
            if members.size < 2:
                continue
            take = min(members.size - 1, max(1, take))
        chosen[generator.permutation(members)[:take]] = True
    return chosen
