"""The accuracy guard of reduced-precision scoring: compare with fp32 on a fixed probe batch first.

bf16 and fp16 autocast make scoring faster on hardware built for them, but how far the outputs move
depends on the weights: the same network can be harmless in bf16 with one set of weights and shift
probabilities by several points with another. So before a model scores anything in reduced
precision, :func:`guard_precision` runs it on a fixed probe batch (seeded synthetic input of the
model's shape, built by the model's module) in fp32 and in the requested precision, with the loaded
weights, and compares:

- patch model: the largest difference of a patch probability must not exceed
  :data:`PATCH_PROBABILITY_TOLERANCE` (0.02, two percentage points);
- radiology model: the largest difference of a score (a log relative hazard) must not exceed
  :data:`RADIOLOGY_SCORE_TOLERANCE` (0.02, a relative hazard within 2%).

When it does, scoring falls back to fp32 with a warning instead of failing: the user asked for
speed, fp32 gives the same answer more slowly, and a batch run keeps going. The precision that was
used (and the check's figures) is what gets recorded, so a fallback is never hidden. With the
shipped phantom weights on a CPU, bf16 moves the patch probabilities by about 0.04 (the patch model
falls back to fp32) and the radiology scores by about 0.004 (kept); fp16 stays within 0.01 for both.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from sarcoma_risk.choices import check_choice
from sarcoma_risk.device import Precision

log = logging.getLogger(__name__)

#: Largest tolerated change of a patch probability (0-1) in reduced precision.
PATCH_PROBABILITY_TOLERANCE = 0.02
#: Largest tolerated change of a radiology score (log relative hazard) in reduced precision.
RADIOLOGY_SCORE_TOLERANCE = 0.02


@dataclass(frozen=True)
class PrecisionCheck:
    """What the guard compared and decided.

    ``requested`` is the precision asked for, ``used`` the one scoring runs in (fp32 after a
    fallback); ``max_abs_difference`` and ``probe_size`` are None when fp32 was asked for (nothing
    was compared), and the difference is None too when the reduced precision gave NaN or infinity.
    """

    model: str
    requested: str
    used: str
    quantity: str
    tolerance: float
    max_abs_difference: float | None
    probe_size: int | None

    @property
    def fell_back(self) -> bool:
        return self.requested != self.used

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guard_precision(run: Callable[[Precision], np.ndarray], requested: str | Precision, *, model: str,
                    quantity: str, tolerance: float) -> PrecisionCheck:
    """Decide the precision to score in: ``requested`` if it stays within ``tolerance`` of fp32, else fp32.

    Parameters
    ----------
    run : callable
        ``run(precision)`` returns the model's outputs (one per probe item) on the probe batch in
        that precision; it is not called for fp32.
    requested : {"fp32", "bf16", "fp16"}
    model, quantity : str
        Names for the record and the warning ("pathology-patch", "patch probability").
    tolerance : float
        Largest tolerated absolute difference of an output.
    """
    chosen = check_choice(requested, Precision, "precision")
    if chosen is Precision.FP32:
        return PrecisionCheck(model, chosen.value, chosen.value, quantity, tolerance, None, None)
    reference = np.asarray(run(Precision.FP32), dtype=np.float64)
    reduced = np.asarray(run(chosen), dtype=np.float64)
    probe_size = len(reference)
    difference = float(np.max(np.abs(reduced - reference))) if reference.size else 0.0
    if not math.isfinite(difference) or difference > tolerance:
        log.warning("%s in %s: a %s moves by up to %.4f from fp32 on the probe batch (tolerance %.4f); scoring in "
                    "fp32 instead", model, chosen.value, quantity, difference, tolerance)
        return PrecisionCheck(model, chosen.value, Precision.FP32.value, quantity, tolerance,
                              difference if math.isfinite(difference) else None, probe_size)
    log.info("%s in %s: a %s moves by at most %.4f from fp32 on the probe batch (tolerance %.4f)", model,
             chosen.value, quantity, difference, tolerance)
    return PrecisionCheck(model, chosen.value, chosen.value, quantity, tolerance, difference, probe_size)
