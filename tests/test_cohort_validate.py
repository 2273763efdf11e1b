"""``sarcoma-risk cohort validate``: a good cohort passes; every kind of bad row or file is reported, all at once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.cli import main
from sarcoma_risk.cli.cohort import validate_cohort


def read_rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def absolute(row: dict[str, str], root: Path) -> dict[str, str]:
    """The row with its paths made absolute, so a manifest elsewhere can point at the shared cohort."""
    out = dict(row)
    for column in ("mri_t2fs", "mri_t1ce", "tumor_seg", "slides", "annotations"):
        if out[column]:
            out[column] = "|".join(str(root / item) if item else "" for item in out[column].split("|"))
    return out


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_phantom_cohort_validates_clean(phantom_cohort_tiny, capsys):
    assert main(["cohort", "validate", str(phantom_cohort_tiny.manifest), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == [] and report["rows"] == 24
    # Per case: T2, T1, mask, T1-covers-tumor, slide, and (for most) the annotation.
    assert report["files_checked"] >= 24 * 5


@pytest.fixture(scope="module")
def broken(phantom_cohort_tiny, tmp_path_factory):
    """A manifest whose row 1 is good and rows 2-11 each have one kind of problem."""
    root = phantom_cohort_tiny.root
    work = tmp_path_factory.mktemp("broken")
    rows = [absolute(r, root) for r in read_rows(phantom_cohort_tiny.manifest)]
    good = next(r for r in rows if r["annotations"] and r["tumor_seg"].endswith(".seg.nrrd"))
    t2 = sitk.ReadImage(good["mri_t2fs"])

    far = sitk.Image([10, 10, 5], sitk.sitkUInt8) + 1
    far.SetOrigin((1e5, 1e5, 1e5))
    sitk.WriteImage(far, str(work / "far_label.nrrd"))
    empty = sitk.Image(t2.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(t2)
    sitk.WriteImage(empty, str(work / "empty_label.nrrd"))
    elsewhere = sitk.Image(t2)
    elsewhere.SetOrigin((5e4, 5e4, 5e4))
    sitk.WriteImage(elsewhere, str(work / "t1_elsewhere.nrrd"))
    (work / "corrupt.svs").write_bytes(b"this is not a slide" * 100)
    import tifffile

    tifffile.imwrite(work / "no_mpp.tif", np.full((512, 512, 3), 230, np.uint8), tile=(256, 256), photometric="rgb")

    def annotation(name: str, xy: list[tuple[int, int]]) -> str:
        feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[*map(list, xy), list(xy[0])]]},
                   "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}}
        (work / name).write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        return str(work / name)

    outside = annotation("outside.geojson", [(10000, 10000), (11000, 10000), (11000, 11000)])
    partly = annotation("partly.geojson", [(3000, 1000), (4500, 1000), (4500, 2000), (3000, 2000)])
    (work / "not_json.geojson").write_text("{ not json")

    def variant(case_id: str, **changes: str) -> dict[str, str]:
        return {**good, "case_id": case_id, **changes}

    manifest_rows = [
        variant("OK-1"),
        variant("MISSING-T2", mri_t2fs=str(work / "nope.nii.gz")),
        variant("FAR-MASK", tumor_seg=str(work / "far_label.nrrd")),
        variant("EMPTY-MASK", tumor_seg=str(work / "empty_label.nrrd")),
        variant("T1-ELSEWHERE", mri_t1ce=str(work / "t1_elsewhere.nrrd")),
        variant("CORRUPT-SLIDE", slides=str(work / "corrupt.svs")),
        variant("NO-MPP", slides=str(work / "no_mpp.tif"), annotations=""),
        variant("OUTSIDE", annotations=outside),
        variant("NOT-JSON", annotations=str(work / "not_json.geojson")),
        variant("BAD-OUTCOME", time_months="-3", event="2"),
        variant("PARTLY", annotations=partly),
    ]
    return write_manifest(work / "manifest.csv", manifest_rows)


def test_every_problem_is_reported_at_once_with_row_case_column_and_file(broken):
    report = validate_cohort(broken)
    assert not report.ok and report.rows == 11
    found = {(p.row, p.column) for p in report.problems}
    expected = {
        (2, "mri_t2fs"), (3, "tumor_seg"), (4, "tumor_seg"), (5, "mri_t1ce"), (6, "slides"), (7, "slides"),
        (8, "annotations"), (9, "annotations"), (10, "time_months"), (10, "event"),
    }
    assert found == expected
    by_row = {p.row: p for p in report.problems}
    assert by_row[2].case_id == "MISSING-T2" and by_row[2].file.endswith("nope.nii.gz")
    messages = {(p.row, p.column): p.message for p in report.problems}
    assert "no such file" in messages[2, "mri_t2fs"]
    assert "outside the MRI volume" in messages[3, "tumor_seg"]
    assert "empty" in messages[4, "tumor_seg"]
    assert "covers 0% of the tumor" in messages[5, "mri_t1ce"]
    assert "cannot be opened as a whole-slide image" in messages[6, "slides"]
    assert "does not record its resolution" in messages[7, "slides"]
    assert "lies outside the slide" in messages[8, "annotations"]
    assert "not valid JSON" in messages[9, "annotations"]
    assert "a number of months > 0" in messages[10, "time_months"]
    # Partly beyond the slide: usable (the pipeline clips it), so a warning, not a problem.
    assert [(w.row, w.column) for w in report.warnings] == [(11, "annotations")]
    assert "beyond the slide" in report.warnings[0].message


def test_the_command_lists_the_problems_and_exits_1(broken, capsys):
    assert main(["cohort", "validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "problem: row 2 (case MISSING-T2), column 'mri_t2fs':" in out
    assert "warning: row 11 (case PARTLY), column 'annotations':" in out
    assert out.strip().endswith("10 problem(s)")


def test_json_report_has_the_file_of_each_problem(broken, capsys):
    assert main(["cohort", "validate", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    files = {(p["row"], p["column"]): p["file"] for p in report["problems"]}
    assert files[6, "slides"].endswith("corrupt.svs")
    assert files[10, "event"] is None


def test_clinical_problems_are_warnings_unless_required(phantom_cohort_tiny, tmp_path):
    rows = [absolute(r, phantom_cohort_tiny.root) for r in read_rows(phantom_cohort_tiny.manifest)[:2]]
    rows[1]["tumor_size_cm"] = "85"  # mm written in a cm column
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    lenient = validate_cohort(manifest)
    assert lenient.ok and [(w.row, w.column) for w in lenient.warnings] == [(2, "tumor_size_cm")]
    strict = validate_cohort(manifest, require_clinical=True)
    assert [(p.row, p.column) for p in strict.problems] == [(2, "tumor_size_cm")]


def test_a_missing_manifest_or_header_is_one_clear_problem(tmp_path, capsys):
    assert main(["cohort", "validate", str(tmp_path / "absent.csv")]) == 1
    assert "no such manifest file" in capsys.readouterr().out
    (tmp_path / "m.csv").write_text("case_id,centre\nX1,A\n")
    report = validate_cohort(tmp_path / "m.csv")
    assert len(report.problems) == 1 and "missing required column(s) split, time_months, event" in report.problems[0].message


def relabelled(annotation: Path, to: Path, name: str) -> Path:
    """A copy of a QuPath GeoJSON whose annotations are of class ``name``."""
    data = json.loads(annotation.read_text(encoding="utf-8"))
    for feature in data["features"]:
        feature["properties"]["classification"]["name"] = name
    to.write_text(json.dumps(data), encoding="utf-8")
    return to


def test_a_manifest_for_score_cohort_is_checked_without_outcome_and_with_its_annotation_class(
        phantom_cohort_tiny, tmp_path, capsys):
    row = next(absolute(r, phantom_cohort_tiny.root) for r in read_rows(phantom_cohort_tiny.manifest)
               if r["annotations"] and "|" not in r["slides"])
    row["annotations"] = str(relabelled(Path(row["annotations"]), tmp_path / "neoplastic.geojson", "Neoplastic"))
    imaging = {k: row[k] for k in ("case_id", "mri_t2fs", "mri_t1ce", "tumor_seg", "tumor_segment", "slides",
                                   "annotations")}
    manifest = write_manifest(tmp_path / "manifest.csv", [imaging])
    report = validate_cohort(manifest)
    assert [p.message for p in report.problems] == [report.problems[0].message]
    assert "missing required column(s) centre, split, time_months, event" in report.problems[0].message

    report = validate_cohort(manifest, require_outcome=False)
    assert [(p.row, p.column) for p in report.problems] == [(1, "annotations")]
    assert "Neoplastic" in report.problems[0].message and "--annotation-class" in report.problems[0].message
    assert main(["cohort", "validate", str(manifest), "--without-outcome", "--annotation-class", "Neoplastic"]) == 0
    assert ": ok" in capsys.readouterr().out
