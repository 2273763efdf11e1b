"""The commands: ``score-mri`` (the 3D Slicer module's interface) and ``train radiology``."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.cli import main
from sarcoma_risk.provenance import Provenance, sha256_file
from sarcoma_risk.records import open_store

CASE = "STS-0042"


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def score(capsys, case, weights, store, *extra, image=None, mask=None):
    return run(capsys, "score-mri", "--case", CASE, "--image", image or case.t2fs, "--image2", case.t1ce,
               "--mask", mask or case.seg, "--weights", weights, "--store", store, *extra)


def snapshot(store):
    with open_store(store, mode="r") as cases:
        return cases.get(CASE).to_dict(), cases.case_ids(), len(cases.history())


@pytest.fixture()
def scored_store(tmp_path, capsys, trained, high_risk_case):
    """A store where the case has clinical data and a first radiology result."""
    store = tmp_path / "cases.sqlite"
    with open_store(store, mode="a") as cases:
        cases.put_section(CASE, "clinical", {"values": {"age": 61},
                                             "provenance": Provenance("clinical-entry", "1", None).to_dict()})
    status, _, err = score(capsys, high_risk_case, trained[1], store, "--gradcam", tmp_path / "first.nrrd")
    assert status == 0, err
    return store


def test_score_mri_writes_the_radiology_section_and_the_gradcam(tmp_path, capsys, trained, high_risk_case):
    store, cam_path = tmp_path / "cases.sqlite", tmp_path / "cam.nrrd"
    status, out, err = score(capsys, high_risk_case, trained[1], store, "--gradcam", cam_path, "--json")
    assert status == 0, err
    printed = json.loads(out)  # stdout holds the JSON alone (the Slicer module parses it)
    section = printed["radiology"]
    assert printed["case_id"] == CASE and printed["revision"] == 1 and printed["gradcam_note"] is None
    assert section["sequences"] == ["t2fs", "t1ce"] and 0 <= section["percentile"] <= 100
    assert section["model"] == "radiology-t2fs+t1ce" and printed["sequence_set"] == "t2fs+t1ce"
    assert section["gradcam_sha256"] == sha256_file(cam_path)
    assert section["tumor_volume_ml"] == pytest.approx(high_risk_case.stats["tumor_volume_ml"])
    provenance = section["provenance"]
    assert provenance["model_name"] == "radiology-t2fs+t1ce" and provenance["weights_sha256"]
    assert set(provenance["inputs"]) == {"t2fs", "t1ce", "mask"}
    assert provenance["inputs"]["t2fs"]["sha256"] == sha256_file(high_risk_case.t2fs)
    assert str(high_risk_case.t2fs.parent) not in json.dumps(section)  # no input paths in the record
    with open_store(store, mode="r") as cases:
        assert cases.get(CASE).radiology == section
    cam, image = sitk.ReadImage(str(cam_path)), sitk.ReadImage(str(high_risk_case.t2fs))
    assert cam.GetSize() == image.GetSize()
    assert np.allclose(cam.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(cam.GetDirection(), image.GetDirection(), atol=1e-6)


def test_score_mri_reads_dicom_series_and_prints_a_summary(tmp_path, capsys, trained, dicom_case):
    status, out, err = score(capsys, dicom_case, trained[1], tmp_path / "cases.sqlite")
    assert status == 0, err
    assert f"case {CASE}: radiology score" in out and "percentile" in out
    with open_store(tmp_path / "cases.sqlite", mode="r") as cases:
        assert cases.get(CASE).radiology["gradcam_sha256"] is None  # no --gradcam asked


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def _bad_inputs(case, tmp_path):
    """name -> (arguments that replace the good ones, expected message)."""
    image = sitk.ReadImage(str(case.t2fs))
    label = sitk.ReadImage(str(case.labelmap))
    empty = sitk.Image(label.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(label)
    moved = sitk.Image(label)
    moved.SetOrigin([o + 500 for o in label.GetOrigin()])
    other = sitk.Image([30, 30, 30], sitk.sitkUInt8)
    other.SetOrigin((400.0, 400.0, 400.0))
    other[5:10, 5:10, 5:10] = 1
    nan = sitk.Cast(image, sitk.sitkFloat32)
    nan[40, 40, 8] = float("nan")
    flat = sitk.Image(96, 96, sitk.sitkInt16)
    return {
        "empty mask": ({"mask": _write(empty, tmp_path / "empty.nrrd")}, "the mask is empty"),
        "mask outside the image": ({"mask": _write(moved, tmp_path / "moved.nrrd")}, "entirely outside the MRI"),
        "other grid, no overlap": ({"mask": _write(other, tmp_path / "other.nrrd")}, "no physical overlap"),
        "NaN voxels": ({"image": _write(nan, tmp_path / "nan.nrrd")}, "NaN or infinite"),
        "2D image": ({"image": _write(flat, tmp_path / "flat.nii.gz")}, "a 2D image"),
        "unknown segment": ({"extra": ["--segment", "Necrosis"]}, "no segment 'Necrosis'"),
        "bad case id": ({"case": "John Smith"}, "case_id: 'John Smith' contains ' '"),
        "gradcam format": ({"gradcam": tmp_path / "cam.png"}, "cannot tell the volume format"),
        "T1CE alone, no model for it": ({"no_image": True}, r"no radiology model for the sequence\(s\) given "
                                                            r"\(t1ce\): the weights in .* have models for "
                                                            r"T2FS \+ T1CE, T2FS only"),
        "no MRI": ({"no_image": True, "no_image2": True}, "no MRI given: pass --t2fs"),
    }


BAD_INPUTS = ["empty mask", "mask outside the image", "other grid, no overlap", "NaN voxels", "2D image",
              "unknown segment", "bad case id", "gradcam format", "T1CE alone, no model for it", "no MRI"]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_a_clear_error_and_leaves_the_record_untouched(tmp_path, capsys, trained, high_risk_case,
                                                                     scored_store, name):
    change, message = _bad_inputs(high_risk_case, tmp_path)[name]
    before = snapshot(scored_store)
    gradcam = change.get("gradcam", tmp_path / "new.nrrd")
    argv = ["score-mri", "--case", change.get("case", CASE), "--mask", change.get("mask", high_risk_case.seg),
            "--weights", trained[1], "--store", scored_store, "--gradcam", gradcam, *change.get("extra", [])]
    if not change.get("no_image"):
        argv += ["--image", change.get("image", high_risk_case.t2fs)]
    if not change.get("no_image2"):
        argv += ["--image2", high_risk_case.t1ce]
    status, out, err = run(capsys, *argv)
    assert status == 1 and out == ""
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert snapshot(scored_store) == before
    assert not gradcam.exists()


def test_a_dicom_series_with_a_missing_slice_is_refused_and_changes_nothing(tmp_path, capsys, trained, dicom_case,
                                                                           scored_store):
    gap = tmp_path / "gap"
    shutil.copytree(dicom_case.t2fs, gap)
    (gap / "IM0005.dcm").unlink()
    before = snapshot(scored_store)
    status, _, err = score(capsys, dicom_case, trained[1], scored_store, "--gradcam", tmp_path / "new.nrrd", image=gap)
    assert status == 1 and "slice(s) missing" in err
    assert snapshot(scored_store) == before and not (tmp_path / "new.nrrd").exists()


def test_tampered_weights_are_refused_and_change_nothing(tmp_path, capsys, trained, high_risk_case, scored_store):
    weights = tmp_path / "weights"
    shutil.copytree(trained[1], weights)
    data = bytearray((weights / "radiology-t2fs+t1ce.pt").read_bytes())
    data[-100] ^= 0x01
    (weights / "radiology-t2fs+t1ce.pt").write_bytes(bytes(data))
    before = snapshot(scored_store)
    status, _, err = score(capsys, high_risk_case, weights, scored_store, "--gradcam", tmp_path / "new.nrrd")
    assert status == 1 and "does not match" in err and "Restore it or retrain" in err
    assert snapshot(scored_store) == before and not (tmp_path / "new.nrrd").exists()


def test_without_a_radiology_model_the_error_says_how_to_train_one(tmp_path, capsys, high_risk_case):
    status, _, err = score(capsys, high_risk_case, tmp_path, tmp_path / "cases.sqlite")
    assert status == 1
    assert "holds no radiology model per sequence set" in err and "sarcoma-risk train radiology --manifest" in err
    assert not (tmp_path / "cases.sqlite").exists()


def _manifest(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case_id", "centre", "split", "time_months", "event", "mri_t2fs",
                                                    "mri_t1ce", "tumor_seg"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_radiology_cross_fits_each_sequence_set_and_reports_a_broken_case(tmp_path, capsys, phantom_set):
    rows = []
    for i in range(16):
        case = phantom_set.cases[i]
        rows.append({"case_id": f"STS-{i:04d}", "centre": "AB"[i % 2], "split": "development" if i < 12 else "validation",
                     "time_months": f"{phantom_set.time[i]:.3f}", "event": int(phantom_set.event[i]),
                     "mri_t2fs": case.t2fs, "mri_t1ce": case.t1ce, "tumor_seg": case.seg})
    rows[3]["tumor_seg"] = tmp_path / "missing.seg.nrrd"
    rows[5]["mri_t2fs"] = ""  # a development case with the T1CE alone
    manifest = _manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "weights"
    status, printed, err = run(capsys, "train", "radiology", "--manifest", manifest, "--out", out, "--preset", "tiny",
                               "--folds", "2", "--epochs", "2", "--json")
    assert status == 0, err
    summary = json.loads(printed)
    assert sorted(summary["models"]) == ["t1ce", "t2fs", "t2fs+t1ce"] and summary["skipped"] == {}
    counts = {name: (m["cases"]["development"], m["cases"]["validation"]) for name, m in summary["models"].items()}
    assert counts == {"t2fs+t1ce": (10, 4), "t2fs": (10, 4), "t1ce": (11, 4)}
    for name, run_ in summary["models"].items():
        assert [f["case_id"] for f in run_["cases"]["failed"]] == ["STS-0003"]
        assert "<tumor_seg>" in run_["cases"]["failed"][0]["error"]
        assert len(run_["validation"]["members"]) == 2 and run_["training_data"]["sequences"] == name.split("+")
    assert summary["models"]["t2fs"]["cases"]["without_sequences"] == ["STS-0005"]
    run_text = (out / "radiology_training.json").read_text()
    assert str(tmp_path) not in run_text and str(phantom_set.cases[0].t2fs.parent) not in run_text
    with open(out / "radiology_scores.csv", newline="") as handle:
        scores = list(csv.DictReader(handle))
    assert list(scores[0]) == ["case_id", "split", "sequences", "radiology_score", "source"]
    sources = {(r["sequences"], r["split"], r["source"]) for r in scores}
    assert sources == {(s, split, source) for s in ("t2fs+t1ce", "t2fs", "t1ce")
                       for split, source in (("development", "out_of_fold"), ("validation", "final_model"))}
    assert len(scores) == 14 + 14 + 15 and "STS-0003" not in {r["case_id"] for r in scores}
    assert all(np.isfinite(float(r["radiology_score"])) for r in scores)
    manifest_models = json.loads((out / "manifest.json").read_text())["models"]
    for name in ("t2fs+t1ce", "t2fs", "t1ce"):
        entry = manifest_models[f"radiology-{name}"]
        assert entry["kind"] == "radiology-cbam3d" and entry["sha256"] == sha256_file(out / f"radiology-{name}.pt")
        assert len(entry["training_data"]["data_sha256"]) == 64 and len(entry["config"]["member_seeds"]) == 2
        assert entry["config"]["reference_scores"] == "out_of_fold"
    # The deployed model is the mean of the fold models; validation scores are its scores.
    from sarcoma_risk.radiology.checkpoint import load_model

    ensemble, _ = load_model(out, "t2fs")
    assert len(ensemble.members) == 2 and ensemble.reference_scores.size == 10


def test_train_radiology_can_train_one_sequence_set_and_says_why_it_cannot(tmp_path, capsys, phantom_set):
    rows = [{"case_id": f"STS-{i:04d}", "centre": "A", "split": "development", "time_months": f"{phantom_set.time[i]:.3f}",
             "event": int(phantom_set.event[i]), "mri_t2fs": phantom_set.cases[i].t2fs, "mri_t1ce": "",
             "tumor_seg": phantom_set.cases[i].seg} for i in range(10)]
    manifest = _manifest(tmp_path / "manifest.csv", rows)
    status, printed, err = run(capsys, "train", "radiology", "--manifest", manifest, "--out", tmp_path / "w",
                               "--preset", "tiny", "--folds", "2", "--epochs", "1")
    assert status == 0, err
    assert "T2FS only" in printed and "T1CE only    not trained: 0 usable development case(s) with t1ce" in printed
    assert sorted(p.name for p in (tmp_path / "w").glob("*.pt")) == ["radiology-t2fs.pt"]
    status, _, err = run(capsys, "train", "radiology", "--manifest", manifest, "--out", tmp_path / "w2",
                         "--preset", "tiny", "--folds", "2", "--epochs", "1", "--sequence-sets", "t2fs,t1ce")
    assert status == 1 and "sequence set t1ce: 0 usable development case(s) with t1ce" in err
    status, _, err = run(capsys, "train", "radiology", "--manifest", manifest, "--out", tmp_path / "w3",
                         "--sequence-sets", "t2,t1")
    assert status == 1 and "sequence set 't2'; expected one of t2fs+t1ce, t2fs, t1ce" in err


def test_train_radiology_runs_on_the_shared_phantom_cohort(tmp_path, capsys, phantom_cohort_tiny):
    out = tmp_path / "weights"
    status, printed, err = run(capsys, "train", "radiology", "--manifest", phantom_cohort_tiny.manifest, "--out", out,
                               "--preset", "tiny", "--folds", "2", "--epochs", "2")
    assert status == 0, err
    assert "radiology model" in printed and "registered in" in printed
    with open(out / "radiology_scores.csv", newline="") as handle:
        scores = list(csv.DictReader(handle))
    with open(phantom_cohort_tiny.manifest, newline="") as handle:
        with_mri = [r for r in csv.DictReader(handle) if r.get("mri_t2fs")]
    assert {r["case_id"] for r in scores} == {r["case_id"] for r in with_mri}
    store = tmp_path / "cases.sqlite"
    row = with_mri[0]
    root = phantom_cohort_tiny.manifest.parent
    status, _, err = run(capsys, "score-mri", "--case", row["case_id"], "--image", root / row["mri_t2fs"],
                         "--image2", root / row["mri_t1ce"], "--mask", root / row["tumor_seg"], "--weights", out,
                         "--store", store, *(["--segment", row["tumor_segment"]] if row.get("tumor_segment") else []))
    assert status == 0, err


def test_bad_input_creates_no_store_and_an_unusable_store_writes_no_gradcam(tmp_path, capsys, trained,
                                                                           high_risk_case):
    fresh = tmp_path / "fresh.sqlite"
    status, _, err = score(capsys, high_risk_case, trained[1], fresh, "--segment", "Necrosis")
    assert status == 1 and not fresh.exists()
    folder_store = tmp_path / "a-folder"
    folder_store.mkdir()
    status, _, err = score(capsys, high_risk_case, trained[1], folder_store, "--gradcam", tmp_path / "cam.nrrd")
    assert status == 1 and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]  # no Grad-CAM, no temporary file
