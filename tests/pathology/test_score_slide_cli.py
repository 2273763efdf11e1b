"""`sarcoma-risk score-slide`: the pathology section, tile outputs, pooling, and bad input that changes nothing."""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box

from sarcoma_risk.cli import main
from sarcoma_risk.pathology.geojson import Classification, ObjectType, QuPathObject, read_geojson, write_geojson
from sarcoma_risk.pathology.pipeline import load_models
from sarcoma_risk.pathology.signature import pool_counts
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.records import open_store


def score(capsys, *args) -> tuple[int, dict | None, str]:
    status = main(["score-slide", "--no-progress", "--json", *map(str, args)])
    captured = capsys.readouterr()
    return status, (json.loads(captured.out) if status == 0 else None), captured.err


@pytest.fixture
def scored_case(trained_pathology, slide_cohort, tmp_path, capsys):
    """Case PX-021 scored once with its tumor annotation."""
    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    status, report, err = score(capsys, "--case", "PX-021", "--slide", slide_cohort.slide("PX-021"),
                                "--annotations", slide_cohort.annotation("PX-021"),
                                "--weights", trained_pathology.weights, "--out", out, "--store", store)
    assert status == 0, err
    return store, out, report


def test_the_pathology_section_holds_the_slide_score_and_provenance(scored_case, slide_cohort, trained_pathology):
    store, _, report = scored_case
    with open_store(store, mode="r") as cases:
        record = cases.get("PX-021")
    section = record.pathology
    (slide,) = section["slides"]
    assert slide["slide_sha256"] == sha256_file(slide_cohort.slide("PX-021"))
    assert slide["restricted_to_annotation"] is True and slide["n_tiles"] > 0
    assert slide["mpp"] == 0.5 and slide["mpp_source"] == "slide"
    assert slide["tissue_area_mm2"] > 0.5
    assert section["score"] == pytest.approx(slide["score"])  # one slide: the case score is the slide score
    prov = section["provenance"]
    assert prov["weights_sha256"] == load_models(trained_pathology.weights).model_sha256
    assert prov["inputs"]["slide"]["sha256"] == slide["slide_sha256"]
    assert prov["inputs"]["annotation"]["sha256"] == sha256_file(slide_cohort.annotation("PX-021"))
    assert "slide-21" not in json.dumps(record.to_dict())  # no input file names in the record
    assert report["revision"] == 1 and record.revision("pathology") == 1


def test_the_json_report_says_where_the_time_went_stage_by_stage(scored_case):
    _, _, report = scored_case
    timings = report["timings_s"]
    for stage in ("load_models", "open_slide", "annotation", "fingerprint", "tile_cache_lookup", "tissue_detection",
                  "tiling", "streaming", "model", "waiting_for_patches", "tile_cache_write", "tile_cache_commit",
                  "signature", "tile_csv", "tile_geojson", "heatmap", "case_record"):
        assert isinstance(timings[stage], float) and timings[stage] >= 0, stage
    # The model, the waits for patches and the cache writes happen inside streaming.
    parts = timings["model"] + timings["waiting_for_patches"] + timings["tile_cache_write"]
    assert parts <= timings["streaming"] + 0.01 and timings["model"] > 0


def test_the_tile_table_has_wsinfer_columns(scored_case):
    _, _, report = scored_case
    with open(report["outputs"]["tiles_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["minx", "miny", "width", "height", "prob_recurrence"]
    assert len(rows) == report["slide"]["n_tiles"]
    assert all(0 <= float(r["prob_recurrence"]) <= 1 and r["width"] == r["height"] == "256" for r in rows)


def test_the_qupath_tiles_obey_qupaths_rules(scored_case):
    _, _, report = scored_case
    path = report["outputs"]["tiles_geojson"]
    data = json.loads(Path(path).read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert data["type"] == "FeatureCollection" and len(data["features"]) == report["slide"]["n_tiles"]
    for feature in data["features"]:
        props = feature["properties"]
        assert props["objectType"] == "tile" and props["isLocked"] is True
        assert "classification" not in props
        assert set(props["measurements"]) == {"recurrence_probability"}
        assert 0 <= props["measurements"]["recurrence_probability"] <= 1
        uuid.UUID(feature["id"])
        ring = feature["geometry"]["coordinates"][0]
        assert feature["geometry"]["type"] == "Polygon" and ring[0] == ring[-1]
    objects = read_geojson(path)
    assert {o.object_type for o in objects} == {ObjectType.TILE}


def test_the_heatmap_is_a_png_over_the_thumbnail(scored_case):
    _, _, report = scored_case
    with Image.open(report["outputs"]["heatmap_png"]) as image:
        assert image.format == "PNG" and image.size[0] > 500
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # not a blank canvas


def test_a_second_slide_is_pooled_and_rescoring_replaces_it(scored_case, slide_cohort, trained_pathology, capsys):
    store, out, first = scored_case
    other = slide_cohort.slide("PX-022")
    status, second, err = score(capsys, "--case", "PX-021", "--slide", other, "--weights",
                                trained_pathology.weights, "--out", out, "--store", store)
    assert status == 0, err
    assert second["n_slides"] == 2 and second["slide"]["restricted_to_annotation"] is False
    with open_store(store, mode="r") as cases:
        section = cases.get("PX-021").pathology
    models = load_models(trained_pathology.weights)
    expected = models.signature.predict([pool_counts([s["counts"] for s in section["slides"]])])[0]
    assert section["score"] == pytest.approx(expected)
    assert len(section["pooled_slides"]) == 2 and section["not_pooled"] == []
    status, again, _ = score(capsys, "--case", "PX-021", "--slide", other, "--weights", trained_pathology.weights,
                             "--out", out, "--store", store)
    assert again["n_slides"] == 2 and again["revision"] == 3
    assert again["slide"]["score"] == second["slide"]["score"]  # same weights, same tiles (from the cache)


def test_a_slide_without_mpp_needs_the_mpp_option(odd_slides, trained_pathology, tmp_path, capsys):
    args = ["--case", "PX-900", "--slide", odd_slides["no_mpp"], "--weights", trained_pathology.weights,
            "--out", tmp_path / "out", "--store", tmp_path / "s.sqlite"]
    status, _, err = score(capsys, *args)
    assert status == 1 and "--mpp" in err and "no-mpp.tif" in err
    status, report, err = score(capsys, *args, "--mpp", "0.5")
    assert status == 0, err
    assert report["slide"]["mpp_source"] == "user"


def record_state(store, case_id):
    with open_store(store, mode="r") as cases:
        return cases.get(case_id).to_dict(), len(cases.history(case_id))


@pytest.mark.parametrize(("problem", "match"), [
    ("truncated", "truncated"),
    ("jpeg", "plain JPEG"),
    ("blank", "no tissue"),
    ("outside", "outside the slide"),
    ("malformed", "not valid JSON"),
    ("tampered", "does not match"),
])
def test_bad_input_is_a_clear_error_and_leaves_the_record_untouched(scored_case, odd_slides, slide_cohort,
                                                                    trained_pathology, tmp_path, capsys, problem, match):
    store, out, _ = scored_case
    before = record_state(store, "PX-021")
    weights = trained_pathology.weights
    slide, annotations = slide_cohort.slide("PX-023"), None
    if problem in odd_slides:
        slide = odd_slides[problem]
    elif problem == "outside":
        annotations = write_geojson(tmp_path / "elsewhere.geojson", [QuPathObject(
            box(60_000, 60_000, 61_000, 60_800), classification=Classification("Tumor", (200, 0, 0)))])
    elif problem == "malformed":
        annotations = tmp_path / "broken.geojson"
        annotations.write_text('{"type": "FeatureCollection", "features": [')
    elif problem == "tampered":
        weights = tmp_path / "weights"
        shutil.copytree(trained_pathology.weights, weights, ignore=shutil.ignore_patterns("tile-cache"))
        data = bytearray((weights / "pathology-patch.pt").read_bytes())
        data[-100] ^= 0xFF
        (weights / "pathology-patch.pt").write_bytes(bytes(data))
    extra = ["--annotations", annotations] if annotations else []
    status, _, err = score(capsys, "--case", "PX-021", "--slide", slide, *extra, "--weights", weights,
                           "--out", out, "--store", store)
    assert status == 1
    assert err.startswith("error: ") and match in err
    assert record_state(store, "PX-021") == before


def test_an_invalid_case_id_is_refused_before_any_work(trained_pathology, slide_cohort, tmp_path, capsys):
    status, _, err = score(capsys, "--case", "Jane Doe 1950", "--slide", slide_cohort.slide("PX-021"),
                           "--weights", trained_pathology.weights, "--out", tmp_path, "--store", tmp_path / "s.sqlite")
    assert status == 1 and "case_id" in err
    assert not (tmp_path / "s.sqlite").exists()
