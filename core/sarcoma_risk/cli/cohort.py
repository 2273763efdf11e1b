"""``sarcoma-risk cohort validate``: check a cohort manifest and every file it names, all at once.

Row checks are those of :func:`sarcoma_risk.cohort.read_manifest`. File checks use the readers the
pipelines use, so a manifest that validates is one that training can read:

- MRI: :func:`sarcoma_risk.radiology.io.read_image` (exists, readable, one finite 3D volume),
  :func:`~sarcoma_risk.radiology.io.read_mask` (segment found, mask not empty, same grid as the T2
  or physically overlapping it) and :func:`~sarcoma_risk.radiology.io.align_sequence` (the T1CE
  covers the tumor);
- slides: :func:`sarcoma_risk.pathology.slide.open_slide` (OpenSlide opens it, resolution recorded);
- annotations: :func:`sarcoma_risk.pathology.regions.read_tumor_region` (valid QuPath GeoJSON with a
  tumor annotation, of the ``--annotation-class`` classes, overlapping the slide); an annotation
  reaching beyond the slide's level-0 bounds is reported as a warning (the pipeline ignores the part
  outside).

A row with problems in some columns still has its files checked, so one run lists everything.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sarcoma_risk.cli.common import add_annotation_class_option, add_json_option, print_json
from sarcoma_risk.cohort import LIST_SEPARATOR
from sarcoma_risk.errors import InvalidManifest, SarcomaRiskError
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortProblem:
    """One problem (or warning): where it is (row, case, column, file as written) and what is wrong."""

    message: str
    row: int | None = None  # 1-based data row; None for the manifest as a whole
    column: str | None = None
    case_id: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = "manifest" if self.row is None else f"row {self.row}"
        if self.case_id:
            where += f" (case {self.case_id})"
        if self.column:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


@dataclass
class CohortReport:
    """The result of :func:`validate_cohort`."""

    manifest: Path
    rows: int = 0
    files_checked: int = 0
    problems: list[CohortProblem] = field(default_factory=list)
    warnings: list[CohortProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": str(self.manifest), "ok": self.ok, "rows": self.rows, "files_checked": self.files_checked,
                "problems": [asdict(p) for p in self.problems], "warnings": [asdict(w) for w in self.warnings]}


def register(commands: argparse._SubParsersAction) -> None:
    cohort = commands.add_parser("cohort", help="check a cohort manifest and its files")
    sub = cohort.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser(
        "validate", help="check every row and file of a manifest; list every problem at once",
        description="Check a cohort manifest (docs/manifest.md): every row (ids, splits, times, events, "
                    "clinical values) and every file it names (MRI volumes and segmentations readable and "
                    "overlapping, slides open with a resolution, annotations inside their slides). Every "
                    "problem is listed with its row, case, column and file; exit status 1 when there is any.")
    p.add_argument("manifest", type=Path)
    p.add_argument("--require-clinical", action="store_true",
                   help="treat missing or invalid clinical values as problems (default: warnings)")
    p.add_argument("--without-outcome", action="store_true",
                   help="check a manifest for score-cohort: centre, split, time_months and event may be left out "
                        "or empty (values that are given are still checked)")
    add_annotation_class_option(p, "the manifest's annotation files, as score-cohort is given it")
    add_json_option(p)
    p.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from sarcoma_risk.pathology.classes import check_class_names

    report = validate_cohort(args.manifest, require_clinical=args.require_clinical,
                             require_outcome=not args.without_outcome,
                             annotation_classes=check_class_names(args.annotation_classes))
    if args.json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    for warning in report.warnings:
        print(f"warning: {warning}")
    for problem in report.problems:
        print(f"problem: {problem}")
    verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{report.manifest}: {report.rows} row(s), {report.files_checked} file(s) checked, "
          f"{len(report.warnings)} warning(s): {verdict}")
    return 0 if report.ok else 1


def validate_cohort(path: str | Path, *, require_clinical: bool = False, require_outcome: bool = True,
                    annotation_classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> CohortReport:
    """Check a manifest's rows and files; every problem is collected, nothing raises for bad data.

    ``require_outcome=False`` checks a manifest for scoring (:func:`~sarcoma_risk.cohort.read_manifest`);
    ``annotation_classes`` are the QuPath classes that make each annotation file's tumor region.
    """
    from sarcoma_risk.clinical.variables import validate_clinical
    from sarcoma_risk.cohort import read_manifest
    from sarcoma_risk.tabular import read_csv_table

    path = Path(path)
    report = CohortReport(path)
    try:
        read_manifest(path, require_clinical=require_clinical, require_outcome=require_outcome)
        row_problems = []
    except InvalidManifest as exc:
        if not exc.problems:  # the file or its header cannot be used: nothing more to check
            report.problems.append(CohortProblem(str(exc)))
            return report
        row_problems = exc.problems
    table = read_csv_table(path, InvalidManifest, what="manifest")
    report.rows = len(table.rows)
    ids = {row.number: row.values.get("case_id") or None for row in table.rows}
    report.problems.extend(CohortProblem(f"{p.value!r} -> expected {p.expected}", p.row, p.column, ids.get(p.row))
                           for p in row_problems)
    for row in table.rows:
        case_id = ids[row.number]
        if not require_clinical:
            _, clinical = validate_clinical(row.values, row=row.number, case_id=case_id)
            report.warnings.extend(CohortProblem(f"{p.value!r} -> expected {p.expected}", row.number, p.column, case_id)
                                   for p in clinical)
        _check_files(row.number, case_id, row.values, path.parent, report, annotation_classes)
    return report


class _RowChecker:
    """Runs one reader on one file of a row and turns its error into a problem of that cell."""

    def __init__(self, row: int, case_id: str | None, root: Path, report: CohortReport) -> None:
        self.row, self.case_id, self.root, self.report = row, case_id, root, report

    def resolve(self, text: str) -> Path:
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    def run(self, column: str, text: str, reader: Callable[[], Any]) -> Any:
        """``reader()``'s result, or None after recording why it failed."""
        self.report.files_checked += 1
        try:
            return reader()
        except (SarcomaRiskError, OSError) as exc:
            if isinstance(exc, SarcomaRiskError) and isinstance(exc, ImportError):
                raise  # a missing library is not a problem of this file
            self.report.problems.append(CohortProblem(str(exc), self.row, column, self.case_id, text))
            return None

    def exists(self, column: str, text: str, what: str) -> None:
        self.report.files_checked += 1
        if not self.resolve(text).exists():
            self.report.problems.append(CohortProblem(f"{self.resolve(text)}: no such file or folder (the {what})",
                                                      self.row, column, self.case_id, text))

    def warn(self, column: str, text: str, message: str) -> None:
        self.report.warnings.append(CohortProblem(message, self.row, column, self.case_id, text))


def _check_files(row: int, case_id: str | None, values: dict[str, str], root: Path, report: CohortReport,
                 annotation_classes: Sequence[str]) -> None:
    check = _RowChecker(row, case_id, root, report)
    _check_mri(check, values)
    _check_slides(check, values, annotation_classes)


def _check_mri(check: _RowChecker, values: dict[str, str]) -> None:
    from sarcoma_risk.radiology import io

    t2, t1, seg = values.get("mri_t2fs", ""), values.get("mri_t1ce", ""), values.get("tumor_seg", "")
    segment = values.get("tumor_segment") or None
    t2_image = check.run("mri_t2fs", t2, lambda: io.read_image(check.resolve(t2))) if t2 else None
    t1_image = check.run("mri_t1ce", t1, lambda: io.read_image(check.resolve(t1))) if t1 else None
    # The mask lies on the first sequence's grid (the T2's, or the T1CE's when the case has no T2).
    reference = t2_image if t2 else t1_image
    mask = None
    if seg and reference is not None:
        mask = check.run("tumor_seg", seg, lambda: io.read_mask(check.resolve(seg), reference, segment))
    elif seg:  # without a readable MRI there is no grid to check the mask against; it must exist at least
        check.exists("tumor_seg", seg, "tumor segmentation")
    if t2_image is not None and t1_image is not None and mask is not None:
        check.run("mri_t1ce", t1, lambda: io.align_sequence(t1_image, t2_image, mask, name="T1CE sequence",
                                                            path=check.resolve(t1)))


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(LIST_SEPARATOR)] if text else []


def _check_slides(check: _RowChecker, values: dict[str, str], annotation_classes: Sequence[str]) -> None:
    from sarcoma_risk.pathology.geojson import read_geojson
    from sarcoma_risk.pathology.regions import read_tumor_region
    from sarcoma_risk.pathology.slide import open_slide

    slides, annotations = _split(values.get("slides", "")), _split(values.get("annotations", ""))
    for k, slide_text in enumerate(slides):
        if not slide_text:
            continue  # an empty item is a row problem, already reported
        dimensions = check.run("slides", slide_text, lambda: _slide_dimensions(open_slide, check.resolve(slide_text)))
        annotation = annotations[k] if k < len(annotations) else ""
        if not annotation:
            continue
        if dimensions is None:  # no slide bounds to compare with: check that the GeoJSON reads
            check.run("annotations", annotation, lambda: read_geojson(check.resolve(annotation)))
            continue
        region = check.run("annotations", annotation,
                           lambda: read_tumor_region(check.resolve(annotation), dimensions,
                                                     classes=annotation_classes))
        if region is not None:
            _warn_beyond_bounds(check, annotation, dimensions)


def _slide_dimensions(open_slide: Callable[[Path], Any], path: Path) -> tuple[int, int]:
    with open_slide(path) as slide:
        return tuple(slide.dimensions)


def _warn_beyond_bounds(check: _RowChecker, text: str, dimensions: tuple[int, int]) -> None:
    """A warning when annotation objects reach beyond the slide's level-0 bounds."""
    from sarcoma_risk.pathology.geojson import ObjectType, read_geojson

    width, height = dimensions
    for obj in read_geojson(check.resolve(text)):
        if obj.object_type is not ObjectType.ANNOTATION:
            continue
        minx, miny, maxx, maxy = obj.geometry.bounds
        if minx < 0 or miny < 0 or maxx > width or maxy > height:
            check.warn("annotations", text,
                       f"an annotation spans ({minx:.0f},{miny:.0f})-({maxx:.0f},{maxy:.0f}), beyond the slide "
                       f"(0,0)-({width},{height}) in level-0 pixels; the part outside is ignored")
            return
