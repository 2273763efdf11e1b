"""Fusion tables of a planned phantom cohort, without rendering any image.

For fast tests and benchmarks of the fusion (federated or pooled): the clinical data and outcomes
of :func:`~sarcoma_risk.synthetic.cohort.plan_cohort`, and imaging scores simulated as the latent
MRI / pathology phenotype plus Gaussian noise (what a trained imaging model would estimate, more or
less well). Real imaging scores come from the imaging models (``train radiology|pathology``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.fusion.table import DURATION, EVENT
from sarcoma_risk.survival.scores import score_column
from sarcoma_risk.synthetic.cohort import SplitRule, plan_cohort


def phantom_fusion_table(n_cases: int, centres: Sequence[str] = ("A", "B", "C"), seed: int = 0, *,
                         score_noise: float = 0.5):
    """One row per case (index ``case_id``): centre, outcome, clinical variables, simulated scores.

    ``score_noise`` is the SD of the noise added to each latent phenotype (which has SD 1).
    """
    plans = plan_cohort(n_cases, centres, seed, split=SplitRule.RANDOM, validation_fraction=0.0)
    rng = np.random.default_rng(seed)
    rows = []
    for plan in plans:
        sample = plan.sample
        row = {"case_id": plan.case_id, "centre": plan.centre, DURATION: sample.time_months, EVENT: int(sample.event)}
        row.update({name: sample.clinical.get(name) for name in VARIABLES})
        row[score_column("radiology")] = sample.z_r + score_noise * rng.standard_normal()
        row[score_column("pathology")] = sample.z_p + score_noise * rng.standard_normal()
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("case_id")
    for name in VARIABLES:
        frame[name] = frame[name].astype(object)
    return frame
