"""What the module's panel shows: which volumes it preselects, which controls can be used, and how
the last result reads.

Pure decisions over the parameter node's values and the scene's volume names. The widget asks them
whenever a parameter or the running state changes, also before the core package is installed (a
source checkout, before the first Compute), so this module imports nothing from ``sarcoma_risk``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

#: What a label shows when there is nothing to show.
NO_VALUE = "-"
#: Words of a series name that say a T1 was taken after contrast ("T1 FS AX POST GD", "T1CE").
CONTRAST_WORDS = re.compile(r"ce|post|gd|gad|contrast|\+c")


def guess_volumes(volumes: Sequence[Any]) -> tuple[Any, Any]:
    """The volumes to preselect as (T2, T1CE) among a scene's MRI volumes, from their names; None where none fits.

    The T2 is the first volume whose name mentions T2. Only in a study without one is a T1CE
    preselected: the first volume named T1 with a contrast word (post, Gd, CE, contrast), so that a
    T1CE is not offered as the T2. Failing both, the first volume not named T1 is taken as the T2.
    """
    named = [(volume, volume.GetName().lower()) for volume in volumes]
    t2 = next((volume for volume, name in named if "t2" in name), None)
    if t2 is not None:
        return t2, None
    t1ce = next((volume for volume, name in named if "t1" in name and CONTRAST_WORDS.search(name)), None)
    if t1ce is not None:
        return None, t1ce
    return next((volume for volume, name in named if "t1" not in name), None), None


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


def panel_controls(*, case_id: str, t2: Any, segmentation: Any, segment_id: str, running: bool,
                   t1ce: Any = None) -> Controls:
    """Compute needs a case id, a T2 or a T1CE volume (or both) and the tumor segment, and no run in progress.

    While a run is in progress only Cancel is usable: the inputs stay as the run exported them.
    The values are not checked here (a case id with a space is refused when Compute is pressed,
    with a message that says why).
    """
    volume = t2 is not None or t1ce is not None
    ready = bool(case_id) and volume and segmentation is not None and bool(segment_id)
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
