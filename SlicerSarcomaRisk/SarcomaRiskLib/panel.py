"""What the module's panel shows: which controls can be used, and how the last result reads.

Pure decisions over the parameter node's values. The widget asks them whenever a parameter or the
running state changes, also before the core package is installed (a source checkout, before the
first Compute), so this module imports nothing from ``sarcoma_risk``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: What a label shows when there is nothing to show.
NO_VALUE = "-"


@dataclass(frozen=True)
class Controls:
    """Which controls the user can use now.

    ``ready`` says that everything Compute needs is selected; the widget's tooltip on the Compute
    button says what to do when it is not.
    """

    ready: bool
    compute_enabled: bool
    cancel_enabled: bool
    inputs_enabled: bool


def panel_controls(*, case_id: str, t2: Any, segmentation: Any, segment_id: str, running: bool) -> Controls:
    """Compute needs a case id, the T2 volume and the tumor segment, and no run in progress.

    While a run is in progress only Cancel is usable: the inputs stay as the run exported them.
    The values are not checked here (a case id with a space is refused when Compute is pressed,
    with a message that says why).
    """
    ready = bool(case_id) and t2 is not None and segmentation is not None and bool(segment_id)
    return Controls(ready=ready, compute_enabled=ready and not running, cancel_enabled=running,
                    inputs_enabled=not running)


@dataclass(frozen=True)
class ResultLabels:
    """The texts of the result labels: score, percentile and tumor volume."""

    score: str
    percentile: str
    tumor_volume: str


def result_labels(*, gradcam_sha256: str, score: float, percentile: float, tumor_volume_ml: float) -> ResultLabels:
    """The last result as the panel shows it; dashes when there is none.

    A result exists once its Grad-CAM is saved (``gradcam_sha256`` set). The percentile is NaN when
    the weights carry no reference cohort to place the score in; it then shows as a dash.
    """
    if not gradcam_sha256:
        return ResultLabels(NO_VALUE, NO_VALUE, NO_VALUE)
    return ResultLabels(score=f"{score:.3f}",
                        percentile=NO_VALUE if math.isnan(percentile) else f"{percentile:.0f}",
                        tumor_volume=f"{tumor_volume_ml:.1f} ml")
