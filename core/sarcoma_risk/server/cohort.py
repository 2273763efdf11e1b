"""The Kaplan-Meier plot of the coordinator's page, drawn once per server from the weights in use.

Case records hold no follow-up (time to recurrence), so the curves are those of the validation
cohort the fusion model was checked on (``validation-cohort.json`` of the weights folder, the same
plot as the demo report), by the risk groups that model gives; the page sets the department's own
cases per risk group beside them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from sarcoma_risk.fusion.groups import compare_groups
from sarcoma_risk.fusion.plots import plot_kaplan_meier, to_png
from sarcoma_risk.release.validation_cohort import load_validation_cohort


@functools.lru_cache(maxsize=4)
def kaplan_meier_png(weights_dir: Path) -> tuple[bytes, str]:
    """The PNG and a one-line description of the cohort it shows."""
    cohort, _ = load_validation_cohort(weights_dir)
    ticks = list(np.arange(0.0, float(cohort.time_months.max()) + 12.0, 12.0))
    comparison = compare_groups(cohort.time_months, cohort.event, cohort.group)
    title = f"Validation cohort of the fusion model (n = {cohort.time_months.size}) by risk group"
    figure = plot_kaplan_meier(cohort.time_months, cohort.event, cohort.group, comparison, title, ticks)
    return to_png(figure), cohort.description
