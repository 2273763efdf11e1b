"""One phantom case for the demo: MRI, slide, tumor annotation and its clinical table.

The case is planned and rendered by the phantom generator (:mod:`sarcoma_risk.synthetic`) from a
seed of its own, at centre B (the centre the shipped weights were validated on), so it is new to
the models. Its outcome is never written anywhere the demo reads: the demo knows what a clinic would.
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.synthetic import plan_cohort
from sarcoma_risk.synthetic.cohort import Size, render_case

#: The demo case's seed: not the seed of the shipped weights' cohort nor of the benchmark's.
DEMO_SEED = 9_2026
DEMO_CASE_ID = "DEMO-PHANTOM"
DEMO_CENTRE = "B"


@dataclass(frozen=True)
class DemoCase:
    """The files of the demo case (paths) and its clinical values."""

    case_id: str
    t2fs: Path
    t1ce: Path
    segmentation: Path
    slide: Path
    annotation: Path | None
    clinical_csv: Path
    clinical: dict[str, Any]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def write_clinical_csv(path: Path, case_id: str, clinical: dict[str, Any]) -> Path:
    """The case's clinical table as a coordinator would export it: case_id and the clinical variables."""

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", *VARIABLES])
        writer.writerow([case_id, *(_cell(clinical.get(name)) for name in VARIABLES)])
    return path


def make_demo_case(folder: str | Path, seed: int = DEMO_SEED) -> DemoCase:
    """Render the demo case into ``folder`` (replacing an earlier one there) and write its clinical CSV."""

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (plan,) = plan_cohort(1, DEMO_CENTRE, seed, size=Size.TINY)
    # Every demo case has an MRI and one annotated slide, whatever the seed's draws of file variants.
    plan = dataclasses.replace(plan, case_id=DEMO_CASE_ID, use_labelmap=False, dicom=False,
                               slides=(dataclasses.replace(plan.slides[0], annotate=True),))
    rendered = render_case(plan, folder, Size.TINY)
    mri, slide = rendered["mri"], rendered["slides"][0]
    clinical = dict(plan.sample.clinical)
    return DemoCase(case_id=DEMO_CASE_ID, t2fs=folder / mri["t2fs"], t1ce=folder / mri["t1ce"],
                    segmentation=folder / mri["seg"], slide=folder / slide["slide"],
                    annotation=folder / slide["annotation"] if slide["annotation"] else None,
                    clinical_csv=write_clinical_csv(folder / "clinical.csv", DEMO_CASE_ID, clinical),
                    clinical=clinical)
