"""One radiology model per MRI sequence set: a case is scored by the model of the sequences it has.

The MR volumes here are written by SimpleITK in the test (a body of soft tissue with a heterogeneous
tumor, not the phantom renderer), as a user's own NIfTI files would be.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.cli import main
from sarcoma_risk.errors import InvalidImage
from sarcoma_risk.records import open_store

CASE = "STS-0007"


def _volume(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.8, 1.8, 4.5))
    image.SetOrigin((-65.0, -70.0, 20.0))
    return image


@pytest.fixture(scope="module")
def own_mr(tmp_path_factory):
    """A T2FS-like and a T1CE-like volume of one case and its tumor labelmap, written with SimpleITK."""
    root = tmp_path_factory.mktemp("own_mr")
    rng = np.random.default_rng(4)
    z, y, x = np.mgrid[0:20, 0:72, 0:72].astype(float)
    body = ((x - 36) / 31) ** 2 + ((y - 36) / 27) ** 2 <= 1
    tumor = ((x - 40) / 9) ** 2 + ((y - 33) / 8) ** 2 + ((z - 10) / 3.2) ** 2 <= 1
    paths = {}
    for name, (tissue, lesion) in {"t2fs": (170.0, 430.0), "t1ce": (240.0, 520.0)}.items():
        values = np.where(body, tissue, 4.0) + rng.normal(0.0, 7.0, body.shape)
        values[tumor] = lesion + 70.0 * rng.standard_normal(int(tumor.sum()))  # a heterogeneous tumor
        paths[name] = root / f"{name}.nii.gz"
        sitk.WriteImage(_volume(np.clip(values, 0, None).astype(np.float32)), str(paths[name]))
    paths["mask"] = root / "tumor.nrrd"
    sitk.WriteImage(_volume(tumor.astype(np.uint8)), str(paths["mask"]))
    return paths


def score(capsys, weights, store, *sequences, own_mr, extra=()):
    argv = ["score-mri", "--case", CASE, "--mask", own_mr["mask"], "--weights", weights, "--store", store,
            *[a for name in sequences for a in (f"--{name}", own_mr[name])], *extra]
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_t2fs_alone_is_scored_by_the_t2fs_model_and_the_record_says_so(tmp_path, capsys, trained, own_mr):
    store, cam = tmp_path / "cases.sqlite", tmp_path / "cam.nrrd"
    status, out, err = score(capsys, trained[1], store, "t2fs", own_mr=own_mr, extra=["--gradcam", cam, "--json"])
    assert status == 0, err
    printed = json.loads(out)
    section = printed["radiology"]
    assert printed["sequence_set"] == "t2fs"
    assert section["model"] == "radiology-t2fs" and section["sequences"] == ["t2fs"]
    assert section["provenance"]["model_name"] == "radiology-t2fs"
    assert set(section["provenance"]["inputs"]) == {"t2fs", "mask"}
    with open_store(store, mode="r") as cases:
        assert cases.get(CASE).radiology == section
    image, mapped = sitk.ReadImage(str(own_mr["t2fs"])), sitk.ReadImage(str(cam))
    assert mapped.GetSize() == image.GetSize() and np.allclose(mapped.GetOrigin(), image.GetOrigin())
    # The T2FS-only model is another model than the one that reads both sequences: another score.
    status, out, err = score(capsys, trained[1], tmp_path / "both.sqlite", "t2fs", "t1ce", own_mr=own_mr,
                             extra=["--json"])
    assert status == 0, err
    both = json.loads(out)["radiology"]
    assert both["model"] == "radiology-t2fs+t1ce" and both["sequences"] == ["t2fs", "t1ce"]
    assert both["score"] != pytest.approx(section["score"], abs=1e-6)


def test_the_summary_line_names_the_model_that_scored(tmp_path, capsys, trained, own_mr):
    status, out, err = score(capsys, trained[1], tmp_path / "cases.sqlite", "t2fs", own_mr=own_mr)
    assert status == 0, err
    assert "from the T2FS only model (radiology-t2fs)" in out
    status, out, err = score(capsys, trained[1], tmp_path / "cases.sqlite", "t2fs", "t1ce", own_mr=own_mr)
    assert status == 0, err
    assert "from the T2FS + T1CE model (radiology-t2fs+t1ce)" in out and "record revision 2" in out


def test_both_sequences_without_a_model_for_both_use_the_t2fs_model_and_say_so(tmp_path, capsys, trained, own_mr):
    weights = tmp_path / "weights"
    shutil.copytree(trained[1], weights)
    manifest = json.loads((weights / "manifest.json").read_text())
    del manifest["models"]["radiology-t2fs+t1ce"]
    (weights / "manifest.json").write_text(json.dumps(manifest))
    status, out, err = score(capsys, weights, tmp_path / "cases.sqlite", "t2fs", "t1ce", own_mr=own_mr,
                             extra=["--json"])
    assert status == 0, err
    assert json.loads(out)["radiology"]["model"] == "radiology-t2fs"
    assert "note: --t1ce was not used: the weights have no radiology model for t2fs and t1ce together" in err


def test_a_t1ce_alone_is_read_on_its_own_grid(own_mr):
    from sarcoma_risk.radiology.io import read_case

    case = read_case(None, own_mr["mask"], own_mr["t1ce"])
    assert case.sequences == ("t1ce",) and set(case.fingerprints) == {"t1ce", "mask"}
    assert case.reference.GetSize() == sitk.ReadImage(str(own_mr["t1ce"])).GetSize()
    with pytest.raises(InvalidImage, match="no MRI given"):
        read_case(None, own_mr["mask"], None)


def test_a_sequence_sets_channels_equal_preparing_the_set_alone(own_mr):
    from dataclasses import replace

    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.preprocess import prepare_case

    pre = preset("tiny")[0]
    both = prepare_case(read_case(own_mr["t2fs"], own_mr["mask"], own_mr["t1ce"]), pre).array
    t2 = prepare_case(read_case(own_mr["t2fs"], own_mr["mask"]), replace(pre, sequences=("t2fs",))).array
    t1 = prepare_case(read_case(None, own_mr["mask"], own_mr["t1ce"]), replace(pre, sequences=("t1ce",))).array
    assert np.array_equal(both[[0, 2]], t2)
    assert np.allclose(both[[1, 2]], t1, atol=1e-5)
