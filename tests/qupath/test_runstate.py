"""Resume keys and state, and the run-metadata JSON of a batch run."""

from __future__ import annotations

import json
import os

import pytest

from qupath_bridge.runstate import RUN_FORMAT, RunMetadata, RunState, job_key
from sarcoma_risk.errors import InvalidInput


def key(slide, **change):
    parts = dict(case_id="STS-0001", weights={"pathology-patch": "a" * 64}, annotations_sha256="b" * 64,
                 slide_path=slide, parameters={"mpp": None, "precision": "fp32"})
    return job_key(**{**parts, **change})


def test_the_job_key_changes_with_every_input_that_changes_a_result(tmp_path):
    slide = tmp_path / "s.svs"
    slide.write_bytes(b"slide bytes")
    base = key(slide)
    assert key(slide) == base
    variants = [key(slide, case_id="STS-0002"), key(slide, weights={"pathology-patch": "c" * 64}),
                key(slide, annotations_sha256=None), key(slide, parameters={"mpp": 0.25, "precision": "fp32"})]
    os.utime(slide, ns=(0, slide.stat().st_mtime_ns + 1_000_000_000))
    variants.append(key(slide))  # the slide file was replaced or touched
    assert len({base, *variants}) == 1 + len(variants)


def test_the_state_remembers_finished_images_across_runs_and_retries_failures(tmp_path):
    path = tmp_path / "sarcoma-risk" / "state.json"
    state = RunState(path)
    state.mark_done("1", "k1", "STS-0001")
    state.mark_done("2", "k2", "STS-0002")
    state.mark_failed("2", "slide file missing")
    again = RunState(path)
    assert again.is_done("1", "k1")
    assert not again.is_done("1", "other key")  # inputs changed: score again
    assert not again.is_done("2", "k2")  # failed last time: retried
    assert again.images["2"]["message"] == "slide file missing"
    assert not again.is_done("3", "k3")


@pytest.mark.parametrize("content", ["{not json", '{"format": "other", "images": {}}', "[]"])
def test_a_damaged_state_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match="delete it to score every image again"):
        RunState(path)


def test_run_metadata_hold_versions_arguments_weights_and_each_image(tmp_path):
    run = RunMetadata(tmp_path / "runs" / "r.json", "sarcoma-qupath score",
                      {"project": "p", "images": None}, weights={"pathology-patch": {"sha256": "a" * 64}})
    run.add("1", "scored", case_id="STS-0001", score=0.5, n_tiles=10)
    run.add("2", "failed", case_id="STS-0002", message="bad annotation")
    data = json.loads((tmp_path / "runs" / "r.json").read_text())
    assert data["finished_utc"] is None  # written after each image: an interrupted run still tells what it did
    run.finish()
    data = json.loads((tmp_path / "runs" / "r.json").read_text())
    assert data["format"] == RUN_FORMAT and data["finished_utc"]
    assert data["counts"] == {"scored": 1, "failed": 1}
    assert data["weights"]["pathology-patch"]["sha256"] == "a" * 64
    assert data["versions"]["sarcoma-risk"] and data["versions"]["torch"] and data["versions"]["python"]
    assert data["images"][1] == {"entry_id": "2", "case_id": "STS-0002", "status": "failed",
                                 "message": "bad annotation"}
