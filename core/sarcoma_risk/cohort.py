"""The cohort manifest: one CSV row per case that training and evaluation read.

Columns (paths are relative to the manifest's folder unless absolute; see docs/manifest.md):

==================  ========================================================================
case_id             pseudonymous id (see :data:`sarcoma_risk.records.schema.CASE_ID_PATTERN`)
centre              centre/hospital code (e.g. A, B)
split               ``development`` or ``validation``
time_months         months from surgery to recurrence or last follow-up (> 0)
event               1 = recurrence observed, 0 = censored
<clinical>          the clinical variables of :mod:`sarcoma_risk.clinical.variables` (same names)
mri_t2fs            fat-suppressed T2 MRI: NIfTI/NRRD/MHA file or DICOM series folder (optional)
mri_t1ce            contrast-enhanced T1 MRI (optional; a case may have either sequence or both)
tumor_seg           tumor segmentation: 3D Slicer ``.seg.nrrd`` or labelmap (needed with MRI)
tumor_segment       segment name inside ``tumor_seg`` (optional; default: the first segment)
slides              whole-slide image path(s), several separated by ``|`` (optional)
annotations         QuPath GeoJSON tumor annotation per slide, ``|``-separated, aligned with
                    ``slides``; an empty item means "whole tissue" (optional)
==================  ========================================================================

Reading checks columns and every row and reports every problem at once; file-level checks (the
files open, MRI and mask share geometry, slides have MPP) are in ``sarcoma-risk cohort validate``.
Scoring (``sarcoma-risk score-cohort``) reads with ``require_outcome=False``: a cohort without
follow-up yet may leave out ``centre``, ``split``, ``time_months`` and ``event``, or leave them empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from sarcoma_risk.choices import check_choice
from sarcoma_risk.clinical.variables import VARIABLES, validate_clinical
from sarcoma_risk.errors import InvalidCaseId, InvalidManifest
from sarcoma_risk.records.schema import validate_case_id
from sarcoma_risk.tabular import read_csv_table


class Split(str, Enum):
    DEVELOPMENT = "development"
    VALIDATION = "validation"


OUTCOME_COLUMNS = ("case_id", "centre", "split", "time_months", "event")
#: The columns of OUTCOME_COLUMNS that a manifest read only for scoring may leave out.
DESIGN_COLUMNS = ("centre", "split", "time_months", "event")
PATH_COLUMNS = ("mri_t2fs", "mri_t1ce", "tumor_seg", "slides", "annotations")
OTHER_COLUMNS = ("tumor_segment",)
LIST_SEPARATOR = "|"


@dataclass(frozen=True)
class ManifestProblem:
    row: int  # 1-based data row (the header is row 0)
    column: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column!r}: {self.value!r} -> expected {self.expected}"


@dataclass(frozen=True)
class CohortCase:
    """One manifest row, validated; paths resolved against the manifest's folder.

    ``centre``, ``split``, ``time_months`` and ``event`` are None only in a manifest read with
    ``require_outcome=False`` that leaves them out or empty.
    """

    case_id: str
    centre: str | None
    split: Split | None
    time_months: float | None
    event: bool | None
    clinical: dict[str, Any]
    clinical_problems: tuple[str, ...] = ()
    mri_t2fs: Path | None = None
    mri_t1ce: Path | None = None
    tumor_seg: Path | None = None
    tumor_segment: str | None = None
    slides: tuple[Path, ...] = ()
    annotations: tuple[Path | None, ...] = ()

    @property
    def has_mri(self) -> bool:
        return (self.mri_t2fs is not None or self.mri_t1ce is not None) and self.tumor_seg is not None

    @property
    def mri_sequences(self) -> tuple[str, ...]:
        """The MRI sequences the row gives, in channel order (empty without a tumor segmentation)."""
        if not self.has_mri:
            return ()
        return tuple(name for name, path in (("t2fs", self.mri_t2fs), ("t1ce", self.mri_t1ce)) if path is not None)

    @property
    def has_slides(self) -> bool:
        return bool(self.slides)


@dataclass
class Manifest:
    """A read manifest: its path, folder and cases in file order."""

    path: Path
    cases: list[CohortCase] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.path.parent

    def split(self, split: Split | str) -> list[CohortCase]:
        split = check_choice(split, Split, "split")
        return [c for c in self.cases if c.split is split]

    def by_id(self) -> dict[str, CohortCase]:
        return {c.case_id: c for c in self.cases}

    def case_ids(self, split: Split | str | None = None) -> list[str]:
        return [c.case_id for c in (self.cases if split is None else self.split(split))]


def _resolve(root: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


def read_manifest(path: str | Path, *, require_clinical: bool = False, require_outcome: bool = True) -> Manifest:
    """Read and check a cohort manifest; raise :class:`InvalidManifest` listing every problem.

    Clinical values are validated too. With ``require_clinical=False`` a case with incomplete
    clinical data is kept (imaging models can still train on it) and its problems are kept in
    ``CohortCase.clinical_problems``; with ``True`` they are errors. With ``require_outcome=False``
    (scoring) the columns of :data:`DESIGN_COLUMNS` may be absent or empty (None in the case); a
    value that is given is still checked.
    """

    path = Path(path)
    table = read_csv_table(path, InvalidManifest, what="manifest")
    header = table.header
    needed = OUTCOME_COLUMNS if require_outcome else tuple(c for c in OUTCOME_COLUMNS if c not in DESIGN_COLUMNS)
    missing = [c for c in needed if c not in header]
    if missing:
        raise InvalidManifest(f"{path}: missing required column(s) {', '.join(missing)}; "
                              f"a manifest needs {', '.join(needed)} (see docs/manifest.md)")
    if "annotations" in header and "slides" not in header:
        raise InvalidManifest(f"{path}: has an 'annotations' column but no 'slides' column")
    unknown = [h for h in header if h not in (*OUTCOME_COLUMNS, *PATH_COLUMNS, *OTHER_COLUMNS) and h not in VARIABLES]
    if unknown:
        raise InvalidManifest(f"{path}: unknown column(s) {', '.join(unknown)}; the columns are "
                              f"{', '.join(manifest_columns())} (see docs/manifest.md)")

    root = path.parent
    problems: list[ManifestProblem] = []
    cases: list[CohortCase] = []
    seen: dict[str, int] = {}
    for csv_row in table.rows:
        row_no, row = csv_row.number, csv_row.values
        before = len(problems)

        def bad(column: str, expected: str) -> None:
            problems.append(ManifestProblem(row_no, column, row.get(column), expected))

        if csv_row.extra:
            problems.append(ManifestProblem(row_no, "(beyond the header)", "|".join(csv_row.extra),
                                            f"{len(header)} cells as in the header"))
            continue

        case_id = row.get("case_id", "")
        try:
            validate_case_id(case_id)
        except InvalidCaseId as exc:
            bad("case_id", str(exc).split(": ", 1)[-1])
        else:
            if case_id in seen:
                bad("case_id", f"a unique id (also on row {seen[case_id]})")
            seen.setdefault(case_id, row_no)
        given = {c: row.get(c, "") for c in DESIGN_COLUMNS}
        if require_outcome and not given["centre"]:
            bad("centre", "a centre code such as A")
        split: Split | None = None
        if require_outcome or given["split"]:
            try:
                split = Split(given["split"].lower())
            except ValueError:
                bad("split", "development or validation")
        time: float | None = None
        if require_outcome or given["time_months"]:
            try:
                time = float(given["time_months"])
                if not math.isfinite(time) or time <= 0:
                    raise ValueError
            except ValueError:
                bad("time_months", "a number of months > 0")
        if (require_outcome or given["event"]) and given["event"] not in ("0", "1"):
            bad("event", "1 (recurrence) or 0 (censored)")
        clinical, clinical_problems = validate_clinical(row, row=row_no, case_id=case_id)
        if require_clinical:
            problems.extend(ManifestProblem(row_no, p.column, p.value, p.expected) for p in clinical_problems)

        slides = [s.strip() for s in row.get("slides", "").split(LIST_SEPARATOR)] if row.get("slides") else []
        annotations_text = row.get("annotations", "")
        annotations = [a.strip() for a in annotations_text.split(LIST_SEPARATOR)] if annotations_text else [""] * len(slides)
        if len(annotations) != len(slides):
            bad("annotations", f"{len(slides)} item(s) separated by '|', one per slide (empty for whole tissue)")
        if any(not s for s in slides):
            bad("slides", "paths separated by '|' with no empty item")
        if (row.get("mri_t2fs") or row.get("mri_t1ce")) and not row.get("tumor_seg"):
            bad("tumor_seg", "a tumor segmentation for the MRI")
        if len(problems) > before:
            continue
        opt = lambda column: _resolve(root, row[column]) if row.get(column) else None  # noqa: E731
        cases.append(CohortCase(
            case_id=case_id, centre=given["centre"] or None, split=split, time_months=time,
            event=given["event"] == "1" if given["event"] else None,
            clinical=clinical, clinical_problems=tuple(str(p) for p in clinical_problems),
            mri_t2fs=opt("mri_t2fs"), mri_t1ce=opt("mri_t1ce"), tumor_seg=opt("tumor_seg"),
            tumor_segment=row.get("tumor_segment") or None,
            slides=tuple(_resolve(root, s) for s in slides),
            annotations=tuple(_resolve(root, a) if a else None for a in annotations),
        ))
    if problems:
        raise InvalidManifest(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(str(p) for p in problems), problems)
    if not cases:
        raise InvalidManifest(f"{path}: no cases (the file has a header but no rows)")
    return Manifest(path, cases)


def manifest_columns(clinical: Sequence[str] = tuple(VARIABLES)) -> list[str]:
    """Column order used when writing a manifest."""
    return [*OUTCOME_COLUMNS, *clinical, "mri_t2fs", "mri_t1ce", "tumor_seg", "tumor_segment", "slides", "annotations"]
