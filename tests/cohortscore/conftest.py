"""Fixtures of the cohort-scoring tests: a small manifest cut from the session's tiny phantom cohort.

Four cases, each with an MRI and a slide, scored with the shipped weights: two good ones, one whose
slide is damaged (the first half of a real slide file) and one whose tumor mask lies 500 mm away from
its MRI (a mask saved with another origin). The bad cases must fail for that modality only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from .runs import BAD_MASK, BAD_SLIDE, GOOD, PATH_COLUMNS, Run, score_cohort_cli


@dataclass(frozen=True)
class SmallCohort:
    manifest: Path
    rows: dict[str, dict[str, str]]  # case id -> manifest row (absolute paths)

    @property
    def case_ids(self) -> list[str]:
        return list(self.rows)


@pytest.fixture(scope="session")
def small_cohort(phantom_cohort_tiny, tmp_path_factory) -> SmallCohort:
    import SimpleITK as sitk

    root = tmp_path_factory.mktemp("score-cohort")
    with open(phantom_cohort_tiny.manifest, newline="", encoding="utf-8") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle)}
    chosen = {}
    for case_id in (*GOOD, BAD_SLIDE, BAD_MASK):
        row = dict(rows[case_id])
        for column in PATH_COLUMNS:
            if row[column]:
                row[column] = "|".join(str(phantom_cohort_tiny.root / p) for p in row[column].split("|"))
        chosen[case_id] = row
    slide = Path(chosen[BAD_SLIDE]["slides"])
    data = slide.read_bytes()
    (root / "damaged.svs").write_bytes(data[: len(data) // 2])
    chosen[BAD_SLIDE]["slides"] = str(root / "damaged.svs")
    mask = sitk.ReadImage(str(Path(chosen[BAD_MASK]["mri_t2fs"]).parent / "tumor_label.nii.gz"))
    mask.SetOrigin((mask.GetOrigin()[0] + 500.0, *mask.GetOrigin()[1:]))
    sitk.WriteImage(mask, str(root / "moved-mask.nii.gz"))
    chosen[BAD_MASK]["tumor_seg"] = str(root / "moved-mask.nii.gz")
    chosen[BAD_MASK]["tumor_segment"] = ""
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(next(iter(chosen.values()))))
        writer.writeheader()
        writer.writerows(chosen.values())
    return SmallCohort(manifest, chosen)


@pytest.fixture(scope="session")
def first_run(small_cohort, tmp_path_factory) -> Run:
    """The small cohort scored once, in this process, into a new store."""
    root = tmp_path_factory.mktemp("first-run")
    return score_cohort_cli(small_cohort.manifest, root / "cases.sqlite", root / "out")
