"""cohort.read_manifest: a good manifest read in full, and every kind of bad row reported in one go."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidInput, InvalidManifest

CLINICAL_HEADER = ("age_years,sex,tumor_size_cm,depth,site,subtype,fnclcc_grade,margin,radiotherapy,"
                   "chemotherapy,presentation")
CLINICAL = "63,male,11.5,deep,lower_extremity,UPS,3,R1,preoperative,no,primary"
HEADER = f"case_id,centre,split,time_months,event,{CLINICAL_HEADER},mri_t2fs,mri_t1ce,tumor_seg,tumor_segment,slides,annotations"


def write(folder: Path, rows: list[str], header: str = HEADER, encoding: str = "utf-8") -> Path:
    path = folder / "manifest.csv"
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def test_a_good_manifest_gives_cases_with_resolved_paths(tmp_path):
    rows = [
        f"STS-0001,A,development,24.5,1,{CLINICAL},mri/1_t2.nii.gz,mri/1_t1.nii.gz,mri/1.seg.nrrd,Tumor,"
        f"wsi/1a.svs|{tmp_path}/abs/1b.svs,wsi/1a.geojson|",
        f"STS-0002,B,Validation,60,0,{CLINICAL.replace('R1', '')},,,,,,",
    ]
    manifest = read_manifest(write(tmp_path, rows))
    first, second = manifest.cases
    assert first.case_id == "STS-0001" and first.centre == "A" and first.split is Split.DEVELOPMENT
    assert first.time_months == 24.5 and first.event is True
    assert first.mri_t2fs == tmp_path / "mri/1_t2.nii.gz" and first.tumor_seg == tmp_path / "mri/1.seg.nrrd"
    assert first.tumor_segment == "Tumor" and first.has_mri and first.has_slides
    assert first.slides == (tmp_path / "wsi/1a.svs", tmp_path / "abs/1b.svs")
    assert first.annotations == (tmp_path / "wsi/1a.geojson", None)  # an empty item means whole tissue
    assert first.clinical["fnclcc_grade"] == 3 and first.clinical_problems == ()
    assert second.split is Split.VALIDATION and second.event is False
    assert not second.has_mri and not second.has_slides and second.slides == ()
    assert second.clinical_problems and "margin" in second.clinical_problems[0]  # kept, not fatal
    assert manifest.case_ids("validation") == ["STS-0002"] and manifest.root == tmp_path
    assert set(manifest.by_id()) == {"STS-0001", "STS-0002"}


def test_a_semicolon_separated_manifest_is_read(tmp_path):
    rows = [f"STS-0001,A,development,24.5,1,{CLINICAL},,,,,,"]
    text = [line.replace(",", ";") for line in [HEADER, *rows]]
    manifest = read_manifest(write(tmp_path, text[1:], header=text[0]))
    assert manifest.case_ids() == ["STS-0001"]


def test_every_kind_of_bad_row_is_reported_at_once(tmp_path):
    ok = f"A,development,12,1,{CLINICAL}"
    rows = [
        f"STS 1,{ok},,,,,,",                                                    # 1 invalid id
        f"STS-0002,{ok},,,,,,",                                                 # 2 fine
        f"STS-0002,{ok},,,,,,",                                                 # 3 repeated id
        f"STS-0004,,development,12,1,{CLINICAL},,,,,,",                         # 4 no centre
        f"STS-0005,A,training,12,1,{CLINICAL},,,,,,",                           # 5 bad split
        f"STS-0006,A,development,0,1,{CLINICAL},,,,,,",                         # 6 time not > 0
        f"STS-0007,A,development,twelve,1,{CLINICAL},,,,,,",                    # 7 time not a number
        f"STS-0008,A,development,12,yes,{CLINICAL},,,,,,",                      # 8 bad event
        f"STS-0009,{ok},,,,,a.svs|b.svs,a.geojson",                             # 9 annotations misaligned
        f"STS-0010,{ok},,,,,a.svs||b.svs,",                                     # 10 empty slide item
        f"STS-0011,{ok},t2.nii,,,,,",                                           # 11 MRI without segmentation
        f"STS-0012,{ok},,t1.nii,seg.nrrd,,,",                                   # 12 fine: a T1CE-only case
        f"STS-0013,{ok},,,,,,,surplus",                                         # 13 a cell beyond the header
        f"STS-0014,A,development,12,1,{CLINICAL.replace('lower_extremity', 'leg-ish')},,,,,,",  # 14 clinical
    ]
    with pytest.raises(InvalidManifest) as info:
        read_manifest(write(tmp_path, rows), require_clinical=True)
    found = {(p.row, p.column) for p in info.value.problems}
    assert found == {(1, "case_id"), (3, "case_id"), (4, "centre"), (5, "split"), (6, "time_months"),
                     (7, "time_months"), (8, "event"), (9, "annotations"), (10, "slides"), (11, "tumor_seg"),
                     (13, "(beyond the header)"), (14, "site")}
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'manifest.csv'}: 12 problem(s):")
    assert "row 3, column 'case_id': 'STS-0002' -> expected a unique id (also on row 2)" in message
    assert "row 5, column 'split': 'training' -> expected development or validation" in message
    assert "row 9, column 'annotations': 'a.geojson' -> expected 2 item(s) separated by '|'" in message


def test_clinical_problems_are_kept_per_case_unless_clinical_data_is_required(tmp_path):
    rows = [f"STS-0001,A,development,12,1,{CLINICAL.replace('R1', 'R7')},,,,,,"]
    path = write(tmp_path, rows)
    case = read_manifest(path).cases[0]
    assert "margin" in case.clinical_problems[0] and "margin" not in case.clinical
    with pytest.raises(InvalidManifest, match="column 'margin': 'R7'"):
        read_manifest(path, require_clinical=True)


@pytest.mark.parametrize("header, match", [
    (HEADER.replace("time_months,event,", ""), "missing required column.*time_months, event"),
    (HEADER + ",patient_name", "unknown column.*patient_name"),
    (HEADER.replace(",slides,annotations", ",annotations"), "'annotations' column but no 'slides' column"),
])
def test_manifests_with_wrong_columns_are_refused_as_a_whole(tmp_path, header, match):
    with pytest.raises(InvalidManifest, match=match):
        read_manifest(write(tmp_path, [], header=header))


def test_a_non_utf8_manifest_is_refused(tmp_path):
    path = write(tmp_path, [f"STS-0001,Créteil,development,12,1,{CLINICAL},,,,,,"], encoding="latin-1")
    with pytest.raises(InvalidManifest, match="not UTF-8 text"):
        read_manifest(path)


def test_a_manifest_without_rows_or_file_is_refused(tmp_path):
    with pytest.raises(InvalidManifest, match="no cases"):
        read_manifest(write(tmp_path, []))
    with pytest.raises(InvalidManifest, match="no such manifest file"):
        read_manifest(tmp_path / "absent.csv")


def test_asking_for_an_unknown_split_suggests_the_right_one(tmp_path):
    manifest = read_manifest(write(tmp_path, [f"STS-0001,A,development,12,1,{CLINICAL},,,,,,"]))
    with pytest.raises(InvalidInput, match="Did you mean 'validation'"):
        manifest.split("validaton")


def test_a_manifest_for_scoring_may_leave_out_the_outcome_and_design_but_not_get_them_wrong(tmp_path):
    imaging = "mri_t2fs,tumor_seg,slides"
    path = write(tmp_path, ["STS-0001,mri/1_t2.nii.gz,mri/1.seg.nrrd,wsi/1.svs"], header=f"case_id,{imaging}")
    with pytest.raises(InvalidManifest, match="missing required column.*centre, split, time_months, event"):
        read_manifest(path)
    (case,) = read_manifest(path, require_outcome=False).cases
    assert (case.centre, case.split, case.time_months, case.event) == (None, None, None, None)
    assert case.has_mri and case.slides == (tmp_path / "wsi/1.svs",)

    rows = ["STS-0001,,,,,,,", "STS-0002,B,validation,,,,,", "STS-0003,A,training,-3,yes,,,"]
    path = write(tmp_path, rows, header=f"case_id,centre,split,time_months,event,{imaging}")
    with pytest.raises(InvalidManifest) as caught:  # a value that is given is checked, empty cells are not
        read_manifest(path, require_outcome=False)
    assert [(p.row, p.column) for p in caught.value.problems] == [(3, "split"), (3, "time_months"), (3, "event")]
    first, second = read_manifest(write(tmp_path, rows[:2], header=f"case_id,centre,split,time_months,event,{imaging}"),
                                  require_outcome=False).cases
    assert first.centre is None and first.split is None and first.event is None
    assert second.centre == "B" and second.split is Split.VALIDATION and second.time_months is None
    with pytest.raises(InvalidManifest, match="missing required column.*case_id"):
        read_manifest(write(tmp_path, ["A"], header="centre"), require_outcome=False)
