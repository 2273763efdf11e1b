"""Differential-privacy clipping and Gaussian noise on a centre's model update, before it leaves the centre.

A centre's update is the difference between the weights it trained this round and the weights the
server sent. :func:`privatise` scales the whole update (every floating-point array together) so that
its L2 norm is at most ``clip``, then adds independent Gaussian noise of standard deviation
``noise * clip`` to every coordinate: the Gaussian mechanism of DP-FedAvg (McMahan et al. 2018)
applied at the centre ("local" noise), so the server never sees the exact update.

What it protects: how much any single case can move what a centre sends is bounded by ``clip``, and
the noise masks that movement. No formal (epsilon, delta) is claimed: the privacy accountant that
would turn ``noise``, the number of rounds and the sampling into an epsilon is not implemented, and
a few large centres with small noise give little protection. Integer buffers (BatchNorm's batch
counters) are counts of steps, not of cases, and pass unchanged.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sarcoma_risk.errors import InvalidInput


def check_dp(clip: float | None, noise: float) -> None:
    """Refuse settings that do not make sense: noise without a clip, a clip or noise that is not positive."""
    if clip is None:
        if noise:
            raise InvalidInput(f"--dp-noise {noise:g} needs --dp-clip: the noise is scaled by the clipping norm")
        return
    if not clip > 0:
        raise InvalidInput(f"--dp-clip: {clip:g} must be > 0 (the largest L2 norm of a centre's update)")
    if not noise >= 0:
        raise InvalidInput(f"--dp-noise: {noise:g} must be >= 0 (noise SD as a multiple of --dp-clip)")


def update_norm(update: Mapping[str, np.ndarray]) -> float:
    """L2 norm of the floating-point arrays of an update taken together."""
    return float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64)))
                             for a in update.values() if np.issubdtype(a.dtype, np.floating))))


def privatise(update: Mapping[str, np.ndarray], clip: float, noise: float,
              rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """The update clipped to L2 norm ``clip`` with N(0, (noise * clip)^2) added to every float coordinate.

    ``rng`` only for tests: by default the noise comes from the operating system's entropy, since
    noise that anyone can regenerate from a seed protects nothing.
    """
    check_dp(clip, noise)
    rng = rng if rng is not None else np.random.default_rng()
    scale = min(1.0, clip / max(update_norm(update), 1e-300))
    out = {}
    for name, array in update.items():
        if not np.issubdtype(array.dtype, np.floating):
            out[name] = array
            continue
        clipped = array.astype(np.float64) * scale
        if noise:
            clipped = clipped + rng.normal(0.0, noise * clip, size=array.shape)
        out[name] = clipped.astype(array.dtype)
    return out
