"""Scoring images as a batch, with real phantom slides, a real tiny model and a real case store.

The image sources here are files (:class:`FileImage`, what ``score-image`` and the QuPath script
use); the QuPath project source shares every step but the paquo calls (see test_project_qupath.py).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from shapely.geometry import box

from qupath_bridge.results import MEASUREMENT, TILE_NAME, split_objects
from qupath_bridge.runstate import RunMetadata, RunState
from qupath_bridge.scoring import FileImage, RecordWriter, ScoringOptions, SlideScorer, run_batch
from sarcoma_risk.errors import OutputError
from sarcoma_risk.pathology.geojson import Classification, QuPathObject, read_geojson, write_geojson
from sarcoma_risk.records import open_store

TUMOR = Classification("Tumor", (200, 0, 0))


@pytest.fixture
def scorer(tiny_weights, tmp_path):
    return SlideScorer(ScoringOptions(tiny_weights, progress=False), cache_dir=tmp_path / "cache")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "cases.sqlite", mode="a") as handle:
        yield handle


def record_state(store, case_id):
    """What a test compares to prove a record was not touched: revisions and the pathology section."""
    try:
        record = store.get(case_id)
    except KeyError:
        return None
    return record.revisions, record.pathology


def test_a_batch_scores_good_images_and_reports_bad_ones_by_name_leaving_them_untouched(
        tmp_path, phantom_slides, scorer, store):
    annotated, plain = phantom_slides["annotated"], phantom_slides["plain"]
    outside = write_geojson(tmp_path / "outside.geojson",
                            [QuPathObject(box(90_000, 90_000, 95_000, 95_000), classification=TUMOR)])
    malformed = tmp_path / "malformed.geojson"
    malformed.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    stroma_only = write_geojson(tmp_path / "stroma.geojson",
                                [QuPathObject(box(0, 0, 500, 500), classification=Classification("Stroma", (0, 255, 0)))])
    store.put_section("STS-0003", "clinical", {"values": {"age": 60}, "provenance": {
        k: None for k in ("model_name", "model_version", "weights_sha256", "inputs", "parameters",
                          "software_version", "timestamp_utc", "user", "host")}})
    before = record_state(store, "STS-0003")
    sources = [
        (FileImage(annotated.slide, tmp_path / "out1", annotations=annotated.annotation), "STS-0001"),
        (FileImage(plain.slide, tmp_path / "out2"), "STS-0002"),
        (FileImage(tmp_path / "moved.svs", tmp_path / "out3"), "STS-0003"),
        (FileImage(annotated.slide, tmp_path / "out4", annotations=outside), "STS-0003"),
        (FileImage(annotated.slide, tmp_path / "out5", annotations=malformed), "STS-0003"),
        (FileImage(annotated.slide, tmp_path / "out6", annotations=stroma_only), "STS-0003"),
    ]
    run = RunMetadata(tmp_path / "run.json", "test", {})
    seen = []
    report = run_batch(sources, scorer, RecordWriter(store, scorer), run=run, notify=seen.append)

    assert [i.status for i in report.items] == ["scored", "scored", "failed", "failed", "failed", "failed"]
    assert seen == report.items and not report.complete
    failed = report.items[2:]
    assert "moved.svs: no such slide file" in failed[0].message
    assert "lies outside the slide" in failed[1].message and "annotated.svs" in failed[1].message
    assert "malformed.geojson" in failed[2].message and "no geometry" in failed[2].message
    assert "no annotation of class 'Tumor'" in failed[3].message and "classes found: 'Stroma'" in failed[3].message
    for n in (3, 4, 5, 6):
        assert not (tmp_path / f"out{n}").exists()  # nothing half-written
    assert record_state(store, "STS-0003") == before  # the case record untouched

    first, second = report.items[:2]
    assert first.region == "Tumor annotation (1 region)" and second.region == "whole tissue (no Tumor annotation)"
    tiles = read_geojson(tmp_path / "out1" / "tiles.geojson")
    ours, others = split_objects(tiles)
    assert len(ours) == first.n_tiles > 0 and others == []
    assert all(t.name == TILE_NAME and 0 <= t.measurements[MEASUREMENT] <= 1 for t in ours)
    region = read_geojson(annotated.annotation)[0].geometry
    centres = [t.geometry.centroid for t in ours]
    assert all(region.contains(c) for c in centres)  # tiling restricted to the Tumor annotation
    metadata = json.loads((tmp_path / "out1" / "metadata.json").read_text())
    assert metadata["sarcoma_risk_score"] == f"{first.score:.3f}"
    assert metadata["sarcoma_risk_tiles"] == str(first.n_tiles)
    assert metadata["case_id"] == "STS-0001"
    assert json.loads((tmp_path / "out2" / "metadata.json").read_text())["sarcoma_risk_region"] == (
        "whole tissue (no Tumor annotation)")

    section = store.get("STS-0001").pathology
    (slide,) = section["slides"]
    assert slide["restricted_to_annotation"] is True and slide["n_tiles"] == first.n_tiles
    assert slide["score"] == pytest.approx(first.score) == pytest.approx(section["score"])
    assert slide["annotation_sha256"] and slide["patch_model_sha256"] == scorer.models.model_sha256
    assert slide["n_annotations"] == 1 and section["pooled_slides"] == [slide["slide_sha256"]]
    assert section["provenance"]["inputs"]["slide"]["sha256"] == slide["slide_sha256"]
    assert section["provenance"]["parameters"]["written_by"] == "sarcoma-qupath"
    assert "annotated" not in json.dumps(section)  # no file names in the record
    assert store.get("STS-0002").pathology["slides"][0]["restricted_to_annotation"] is False

    data = json.loads((tmp_path / "run.json").read_text())
    assert [i["status"] for i in data["images"]] == ["scored", "scored", "failed", "failed", "failed", "failed"]


def test_a_finished_image_is_skipped_on_resume_and_scored_again_when_its_annotation_changes(
        tmp_path, phantom_slides, scorer, store):
    annotated = phantom_slides["annotated"]
    annotation = tmp_path / "tumor.geojson"
    shutil.copy(annotated.annotation, annotation)
    state = RunState(tmp_path / "state.json")
    source = FileImage(annotated.slide, tmp_path / "out", annotations=annotation)
    write = RecordWriter(store, scorer)
    first = run_batch([(source, "STS-0001")], scorer, write, state=state).items[0]
    revision = store.get("STS-0001").revision("pathology")
    again = run_batch([(source, "STS-0001")], scorer, write, state=RunState(tmp_path / "state.json")).items[0]
    assert (first.status, again.status) == ("scored", "skipped")
    assert "--rescore" in again.message
    assert store.get("STS-0001").revision("pathology") == revision  # skipping writes nothing

    (tumor,) = read_geojson(annotation)
    smaller = QuPathObject(tumor.geometry.buffer(-150), classification=TUMOR)
    write_geojson(annotation, [smaller])
    changed = run_batch([(source, "STS-0001")], scorer, write, state=RunState(tmp_path / "state.json")).items[0]
    assert changed.status == "scored" and changed.n_tiles < first.n_tiles
    forced = run_batch([(source, "STS-0001")], scorer, write, state=RunState(tmp_path / "state.json"),
                       rescore=True).items[0]
    assert forced.status == "scored" and forced.score == changed.score  # deterministic (from the tile cache)
    assert store.get("STS-0001").revision("pathology") == revision + 2


def test_slides_of_one_case_are_pooled_and_a_rescored_slide_replaces_its_entry(tmp_path, phantom_slides, scorer, store):
    from sarcoma_risk.pathology.signature import pool_counts

    annotated, plain = phantom_slides["annotated"], phantom_slides["plain"]
    write = RecordWriter(store, scorer)
    items = run_batch([(FileImage(annotated.slide, tmp_path / "a", annotations=annotated.annotation), "STS-0009"),
                       (FileImage(plain.slide, tmp_path / "b"), "STS-0009"),
                       (FileImage(plain.slide, tmp_path / "c"), "STS-0009")], scorer, write).items
    assert [i.status for i in items] == ["scored"] * 3
    section = store.get("STS-0009").pathology
    assert len(section["slides"]) == 2  # the plain slide once, though scored twice
    expected = scorer.models.signature.predict([pool_counts([s["counts"] for s in section["slides"]])])[0]
    assert section["score"] == pytest.approx(expected)
    assert section["pooled_slides"] == [s["slide_sha256"] for s in section["slides"]]
    assert [s["score"] for s in section["slides"]] == pytest.approx([items[0].score, items[2].score])


def test_a_failed_write_rolls_the_record_back_and_a_failed_backup_writes_nothing(tmp_path, phantom_slides, scorer,
                                                                                  store):
    plain = phantom_slides["plain"]
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    item = run_batch([(FileImage(plain.slide, blocked), "STS-0004")], scorer, RecordWriter(store, scorer)).items[0]
    assert item.status == "failed" and "cannot write the results there" in item.message
    assert record_state(store, "STS-0004") is None

    calls = []

    def failing_backup():
        calls.append(1)
        raise OutputError("backup folder full; nothing was written to the project")

    write = RecordWriter(store, scorer, before_first_write=failing_backup)
    item = run_batch([(FileImage(plain.slide, tmp_path / "out"), "STS-0004")], scorer, write).items[0]
    assert item.status == "failed" and "backup" in item.message and calls == [1]
    assert record_state(store, "STS-0004") is None and not (tmp_path / "out").exists()

    backups = []
    write = RecordWriter(store, scorer, before_first_write=lambda: backups.append("made"))
    items = run_batch([(FileImage(plain.slide, tmp_path / f"ok{n}"), "STS-0004") for n in range(2)], scorer,
                      write).items
    assert [i.status for i in items] == ["scored", "scored"] and backups == ["made"]  # once, before the first write


def test_tile_probabilities_match_the_tile_cache_and_the_export_keeps_the_annotation(tmp_path, phantom_slides,
                                                                                     scorer, store):
    from qupath_bridge.exporting import export_slide
    from sarcoma_risk.pathology.cache import read_tile_cache

    annotated = phantom_slides["annotated"]
    run_batch([(FileImage(annotated.slide, tmp_path / "out", annotations=annotated.annotation), "STS-0005")],
              scorer, RecordWriter(store, scorer))
    (cache,) = (tmp_path / "cache").glob("tiles-*.h5")
    cached = read_tile_cache(cache)
    tiles = read_geojson(tmp_path / "out" / "tiles.geojson")
    assert np.allclose([t.measurements[MEASUREMENT] for t in tiles], cached.probabilities, atol=1e-6)

    exported = export_slide(tmp_path / "export.geojson", caches=[tmp_path / "cache"], case_id="STS-0005",
                            store=store.path)
    objects = read_geojson(tmp_path / "export.geojson")
    ours, annotations = split_objects(objects)
    assert exported.n_tiles == len(ours) == len(tiles) and exported.n_annotations == len(annotations) == 1
    assert annotations[0].classification.name == "Tumor"
    assert annotations[0].geometry.equals(read_geojson(annotated.annotation)[0].geometry)


def test_a_project_run_maps_cases_backs_up_once_records_the_run_and_resumes(tmp_path, project_layout, phantom_slides,
                                                                             scorer, store):
    from qupath_bridge.casemap import ImageRef, read_case_map
    from qupath_bridge.scoring import score_project

    annotated, plain = phantom_slides["annotated"], phantom_slides["plain"]

    def image(entry_id, slide, metadata, annotations=None):
        source = FileImage(slide, tmp_path / f"out{entry_id}", annotations=annotations)
        source.ref = ImageRef(entry_id, slide.name if entry_id != "5" else "other.svs", metadata)  # as a project lists it
        return source

    images = [image("1", annotated.slide, {"case_id": "STS-0001"}, annotated.annotation),
              image("2", plain.slide, {}),  # its case id comes from the case map
              image("3", tmp_path / "moved.svs", {"case_id": "STS-0003"}),
              image("4", plain.slide, {}),  # unmapped
              image("5", plain.slide, {"case_id": "STS-0005"})]  # the case map disagrees
    images[3].ref = ImageRef("4", "unmapped.svs", {})
    case_map_file = tmp_path / "map.csv"
    case_map_file.write_text("image,case_id\nplain.svs,STS-0002\nother.svs,STS-0006\n")
    lines = []
    report, run = score_project(project_layout, images, scorer, store, case_map=read_case_map(case_map_file),
                                arguments={"project": "p"}, say=lines.append)

    assert [(i.ref.entry_id, i.status) for i in report.items] == [
        ("4", "unmapped"), ("5", "failed"), ("1", "scored"), ("2", "scored"), ("3", "failed")]
    assert "differs from 'STS-0006'" in report.items[1].message
    assert any("close the project in QuPath" in line for line in lines)
    assert any(line.startswith("[3/3]") and "moved.svs" in line for line in lines)
    assert json.loads((tmp_path / "out2" / "metadata.json").read_text())["case_id"] == "STS-0002"
    assert store.get("STS-0002").pathology["slides"][0]["restricted_to_annotation"] is False
    backups = list((project_layout / "sarcoma-risk" / "backups").iterdir())
    assert len(backups) == 1 and run.backup == str(backups[0])
    assert (backups[0] / "data" / "1" / "data.qpdata").is_file() and (backups[0] / "data" / "2" / "data.qpdata").is_file()
    data = json.loads(run.path.read_text())
    assert data["counts"] == {"unmapped": 1, "failed": 2, "scored": 2} and data["finished_utc"]
    assert data["weights"]["pathology-patch"]["sha256"] == scorer.models.model_sha256

    again, second = score_project(project_layout, images, scorer, store, case_map=read_case_map(case_map_file),
                                  say=lines.append)
    assert [i.status for i in again.items] == ["unmapped", "failed", "skipped", "skipped", "failed"]
    assert second.backup is None  # nothing written, so no backup either
    assert len(list((project_layout / "sarcoma-risk" / "backups").iterdir())) == 1
    assert any(line.startswith("WARNING:") and "was written" in line for line in lines[-8:])  # files just written
