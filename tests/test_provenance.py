"""Provenance blocks: content fingerprints (never names), JSON round trip, refusal of paths and NaN."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.provenance import PROVENANCE_FIELDS, Provenance, fingerprint, sha256_file, utc_now


def test_a_file_fingerprint_is_its_sha256_and_size(tmp_path):
    path = tmp_path / "Doe_Jane_T2.nii.gz"
    path.write_bytes(b"voxels" * 1000)
    assert fingerprint(path) == {"sha256": hashlib.sha256(b"voxels" * 1000).hexdigest(), "bytes": 6000, "files": 1}
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_folder_fingerprint_changes_with_content_but_not_with_its_own_name(tmp_path):
    series_a, series_b = tmp_path / "Patient_A_series", tmp_path / "anon"
    for folder in (series_a, series_b):
        (folder / "sub").mkdir(parents=True)
        (folder / "1.dcm").write_bytes(b"slice one")
        (folder / "sub" / "2.dcm").write_bytes(b"slice two")
    first = fingerprint(series_a)
    assert first == fingerprint(series_b) and first["files"] == 2 and first["bytes"] == 18
    (series_b / "sub" / "2.dcm").write_bytes(b"slice 2!!")
    assert fingerprint(series_b)["sha256"] != first["sha256"]
    (series_b / "sub" / "2.dcm").rename(series_b / "sub" / "3.dcm")
    assert fingerprint(series_b)["sha256"] != first["sha256"]  # a renamed slice is a different series


def test_fingerprint_of_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="no such file or folder to fingerprint"):
        fingerprint(tmp_path / "absent.nrrd")


def test_a_provenance_block_holds_every_field_and_no_input_file_name(tmp_path):
    slide = tmp_path / "Doe_Jane_1970-01-01.svs"
    slide.write_bytes(b"tiff bytes")
    block = Provenance.for_inputs("pathology-patch", "1.2.0", "ab" * 32, {"slide": slide},
                                  parameters={"tile_px": 224, "mpp": np.float64(0.5)}).to_dict()
    assert tuple(block) == PROVENANCE_FIELDS
    assert block["inputs"]["slide"]["sha256"] == hashlib.sha256(b"tiff bytes").hexdigest()
    assert block["parameters"] == {"tile_px": 224, "mpp": 0.5}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", block["timestamp_utc"])
    assert block["user"] and block["host"] and block["software_version"]
    assert "Doe_Jane" not in json.dumps(block)


def test_a_provenance_block_round_trips_through_json():
    block = Provenance("fusion", "1.0", None, inputs={"scores": {"sha256": "c" * 64, "bytes": 1, "files": 1}},
                       parameters={"penalizer": 0.1, "subset": ["clinical", "radiology"]})
    again = Provenance.from_dict(json.loads(json.dumps(block.to_dict())))
    assert again.to_dict() == block.to_dict()


def test_a_file_path_in_the_parameters_is_refused():
    with pytest.raises(InvalidInput, match="is a file path; records hold no file names"):
        Provenance("m", "1", None, parameters={"mask": Path("/data/Doe_Jane/mask.nrrd")}).to_dict()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameters_are_refused(value):
    with pytest.raises(InvalidInput, match="NaN/inf cannot be stored"):
        Provenance("m", "1", None, parameters={"threshold": value}).to_dict()


def test_an_incomplete_block_names_the_missing_fields():
    with pytest.raises(InvalidInput, match="missing field.*weights_sha256.*host"):
        Provenance.from_dict({k: "x" for k in PROVENANCE_FIELDS if k not in ("weights_sha256", "host")})


def test_utc_now_is_iso_8601_with_a_z():
    assert utc_now().endswith("Z") and "T" in utc_now()
