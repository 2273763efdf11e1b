"""The sarcoma-qupath command, called as main([...]): exit codes, outputs, and nothing half-written on errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shapely.geometry import box

from qupath_bridge.casemap import CASE_ID_KEY
from qupath_bridge.cli import build_parser, main
from qupath_bridge.project import find_qupath
from qupath_bridge.results import MEASUREMENT, TILE_NAME, TUMOR_CLASS, split_objects
from sarcoma_risk.errors import MissingDependency
from sarcoma_risk.pathology.geojson import Classification, QuPathObject, read_geojson, write_geojson
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.records import open_store

SCRIPT = Path(__file__).resolve().parents[2] / "qupath_bridge" / "scripts" / "score_current_image.groovy"


def qupath_found() -> bool:
    try:
        find_qupath()
    except MissingDependency:
        return False
    return True


def tree_hashes(folder: Path) -> dict[Path, str]:
    return {p: sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_score_image_writes_tiles_metadata_and_the_record(tmp_path, phantom_slides, tiny_weights, capsys):
    annotated = phantom_slides["annotated"]
    store = tmp_path / "cases.sqlite"
    status = main(["score-image", "--slide", str(annotated.slide), "--case", "STS-0001", "--annotations",
                   str(annotated.annotation), "--out", str(tmp_path / "out"), "--weights", str(tiny_weights),
                   "--store", str(store), "--cache", str(tmp_path / "cache"), "--quiet", "--json"])
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads(out)  # with --json, stdout is exactly one JSON object
    assert result["case_id"] == "STS-0001" and result["region"] == "Tumor annotation (1 region)"
    tiles, others = split_objects(read_geojson(tmp_path / "out" / "tiles.geojson"))
    assert len(tiles) == result["n_tiles"] > 0 and others == []
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["sarcoma_risk_score"] == f"{result['score']:.3f}"
    with open_store(store, mode="r") as handle:
        assert handle.get("STS-0001").pathology["score"] == pytest.approx(result["score"])

    export = tmp_path / "export.geojson"
    assert main(["export", "--slide", str(annotated.slide), "--cache", str(tmp_path / "cache"),
                 "--out", str(export)]) == 0
    assert "File > Import objects" in capsys.readouterr().out
    ours, annotations = split_objects(read_geojson(export))
    assert len(ours) == len(tiles) and [a.classification.name for a in annotations] == [TUMOR_CLASS]


@pytest.mark.parametrize(("case_id", "annotations", "message"), [
    ("Jane Doe", None, "case_id: 'Jane Doe' contains"),
    ("STS-0002", "outside", "lies outside the slide"),
    ("STS-0002", "stroma", "no annotation of class 'Tumor' (or a class derived from it) with an area; annotation "
                           "classes found: 'Stroma'"),
])
def test_score_image_errors_write_nothing(tmp_path, phantom_slides, tiny_weights, capsys, case_id, annotations,
                                          message):
    files = {"outside": [QuPathObject(box(50_000, 50_000, 60_000, 60_000), classification=Classification(
        "Tumor", (200, 0, 0)))], "stroma": [QuPathObject(box(0, 0, 900, 900), classification=Classification(
            "Stroma", (0, 200, 0)))]}
    args = ["score-image", "--slide", str(phantom_slides["annotated"].slide), "--case", case_id, "--out",
            str(tmp_path / "out"), "--weights", str(tiny_weights), "--store", str(tmp_path / "cases.sqlite"), "--quiet"]
    if annotations:
        args += ["--annotations", str(write_geojson(tmp_path / f"{annotations}.geojson", files[annotations]))]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "out").exists()
    if annotations != "outside":  # found before any scoring: not even a store file is made
        assert not (tmp_path / "cases.sqlite").exists()
    if (tmp_path / "cases.sqlite").exists():
        with open_store(tmp_path / "cases.sqlite", mode="r") as handle:
            assert list(handle.records()) == []


def test_score_needs_a_project_and_a_readable_case_map_before_anything_starts(tmp_path, project_layout, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["score", str(tmp_path / "empty")]) == 1
    assert "no QuPath project here" in capsys.readouterr().err
    bad_map = tmp_path / "map.csv"
    bad_map.write_text("image,case_id\nx.svs,Jane Doe\n")
    before = tree_hashes(project_layout)
    assert main(["score", str(project_layout), "--case-map", str(bad_map)]) == 1
    assert "map.csv" in capsys.readouterr().err
    assert tree_hashes(project_layout) == before


@pytest.mark.skipif(qupath_found(), reason="QuPath is installed here; this checks what users without it are told")
def test_score_without_qupath_says_how_to_install_it_and_touches_nothing(tmp_path, project_layout, tiny_weights,
                                                                         capsys):
    before = tree_hashes(project_layout)
    store = tmp_path / "cases.sqlite"
    assert main(["score", str(project_layout), "--weights", str(tiny_weights), "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: QuPath was not found")
    assert "https://qupath.github.io" in err and "PAQUO_QUPATH_DIR" in err
    assert tree_hashes(project_layout) == before and not store.exists()


def test_without_paquo_the_message_says_how_to_install_it(tmp_path, project_layout, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "paquo", None)  # as on a machine where paquo is not installed
    before = tree_hashes(project_layout)
    assert main(["score", str(project_layout)]) == 1
    err = capsys.readouterr().err
    assert "paquo is not installed" in err and "sarcoma-risk[qupath]" in err and "PAQUO_QUPATH_DIR" in err
    assert tree_hashes(project_layout) == before


def test_import_checks_qupath_annotations_against_the_slide(tmp_path, phantom_slides, capsys):
    annotated = phantom_slides["annotated"]
    legacy = tmp_path / "qupath03.geojson"  # as QuPath 0.3 exported it: object_type, list of measurements
    (tumor,) = read_geojson(annotated.annotation)
    legacy.write_text(json.dumps([{"type": "Feature", "id": "PathAnnotationObject",
                                   "geometry": tumor.geometry.__geo_interface__,
                                   "properties": {"object_type": "annotation", "isLocked": False,
                                                  "classification": {"name": "Tumor", "colorRGB": -3670016},
                                                  "measurements": [{"name": "Area", "value": 1.0}]}}],
                                 default=list))
    out = tmp_path / "checked.geojson"
    assert main(["import", str(legacy), "--slide", str(annotated.slide), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tumor_annotations"] == 1 and summary["area_mm2"] == pytest.approx(
        tumor.geometry.area * 0.25e-6, abs=1e-4)
    (written,) = read_geojson(out)
    assert written.geometry.equals(tumor.geometry)
    assert '"objectType": "annotation"' in out.read_text()  # rewritten in the current spelling

    outside = write_geojson(tmp_path / "outside.geojson", [QuPathObject(box(9e4, 9e4, 9.5e4, 9.5e4),
                                                                         classification=Classification("Tumor", (1, 2, 3)))])
    assert main(["import", str(outside), "--slide", str(annotated.slide), "--out", str(tmp_path / "o.geojson")]) == 1
    assert "lies outside the slide" in capsys.readouterr().err and not (tmp_path / "o.geojson").exists()
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}')
    assert main(["import", str(broken), "--slide", str(annotated.slide)]) == 1
    assert "broken.geojson" in capsys.readouterr().err


def test_export_without_a_scored_slide_says_what_to_do(tmp_path, phantom_slides, capsys):
    (tmp_path / "cache").mkdir()
    assert main(["export", "--slide", str(phantom_slides["plain"].slide), "--cache", str(tmp_path / "cache"),
                 "--out", str(tmp_path / "x.geojson")]) == 1
    assert "no tile cache of this slide" in capsys.readouterr().err and not (tmp_path / "x.geojson").exists()


# ---- the QuPath script -------------------------------------------------------------------------

def test_the_qupath_script_uses_the_bridges_names_and_a_valid_score_image_command():
    text = SCRIPT.read_text()
    constants = dict(re.findall(r'def (TILE_NAME|MEASUREMENT|CASE_ID_KEY) = "([^"]*)"', text))
    assert constants == {"TILE_NAME": TILE_NAME, "MEASUREMENT": MEASUREMENT, "CASE_ID_KEY": CASE_ID_KEY}
    assert re.search(r"^def ANNOTATION_CLASSES = \[\]$", text, re.M)  # empty: the project's default, else Tumor
    assert 'command += ["--annotation-class", it.toString()]' in text
    (command,) = re.findall(r"def command = \[SARCOMA_QUPATH, (.*?)\]\n", text, re.S)
    words = [w.strip().strip('"') for w in command.replace("\n", " ").split(",")]
    values = {"slide.getAbsolutePath()": "s.svs", "caseId.trim()": "STS-0001", "work.getAbsolutePath()": "out",
              "getProject().getPath().toString()": "/data/project/project.qpproj"}
    args = build_parser().parse_args([values.get(w, w) for w in words] + ["--annotation-class", "Tumour",
                                                                          "--annotations", "a.geojson"])
    assert (args.command, args.case_id, args.quiet) == ("score-image", "STS-0001", True)
    assert args.project == Path("/data/project/project.qpproj") and args.annotation_classes == ["Tumour"]


@pytest.mark.skipif(shutil.which("groovy") is None, reason="groovy is not installed (apt-get install groovy) to "
                                                           "check the script's syntax")
def test_the_qupath_script_is_valid_groovy(tmp_path):
    checker = tmp_path / "ParseOnly.groovy"
    checker.write_text("import org.codehaus.groovy.control.*\n"
                       "def unit = new CompilationUnit()\nunit.addSource(new File(args[0]))\n"
                       "unit.compile(Phases.CONVERSION)\n")  # syntax only: QuPath's classes are not needed
    env = dict(os.environ)
    if not Path(env.get("JAVA_HOME", "/nonexistent")).is_dir():
        java = shutil.which("java")
        if java:
            env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    done = subprocess.run(["groovy", str(checker), str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_slides_scored_by_score_slide_and_by_the_bridge_pool_into_one_case_score(tmp_path, phantom_slides,
                                                                                  tiny_weights, capsys):
    from sarcoma_risk.cli import main as sarcoma_risk

    annotated, plain = phantom_slides["annotated"], phantom_slides["plain"]
    store = tmp_path / "cases.sqlite"
    common = ["--weights", str(tiny_weights), "--store", str(store)]
    assert sarcoma_risk(["score-slide", "--case", "STS-0007", "--slide", str(annotated.slide), "--annotations",
                         str(annotated.annotation), "--out", str(tmp_path / "score-slide"), "--no-progress",
                         *common]) == 0
    assert main(["score-image", "--slide", str(plain.slide), "--case", "STS-0007", "--out", str(tmp_path / "b"),
                 "--quiet", *common]) == 0
    with open_store(store, mode="r") as handle:
        section = handle.get("STS-0007").pathology
    assert len(section["slides"]) == 2 and section["not_pooled"] == []
    assert section["pooled_slides"] == [s["slide_sha256"] for s in section["slides"]]

    out = tmp_path / "from-score-slide.geojson"
    cache = tmp_path / "score-slide" / "tile-cache"
    assert main(["export", "--slide", str(annotated.slide), "--cache", str(cache), "--out", str(out)]) == 1
    assert "give the file it was scored with as --annotations" in capsys.readouterr().err
    assert main(["export", "--slide", str(annotated.slide), "--cache", str(cache), "--annotations",
                 str(annotated.annotation), "--out", str(out)]) == 0
    ours, regions = split_objects(read_geojson(out))
    assert len(ours) == section["slides"][0]["n_tiles"] and len(regions) == 1


def test_score_image_takes_the_device_and_records_the_precision_it_used(tmp_path, phantom_slides, tiny_weights,
                                                                        capsys):
    import torch

    from sarcoma_risk.pathology.pipeline import load_models

    args = ["score-image", "--slide", str(phantom_slides["plain"].slide), "--case", "STS-0003", "--out",
            str(tmp_path / "out"), "--weights", str(tiny_weights), "--store", str(tmp_path / "cases.sqlite"), "--quiet"]
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda"]) == 1
        assert "device 'cuda':" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main([*args, "--device", "cpu", "--precision", "fp16"]) == 0
    used = load_models(tiny_weights, precision="fp16", device="cpu").precision  # fp16, or fp32 after the check
    with open_store(tmp_path / "cases.sqlite", mode="r") as handle:
        assert handle.get("STS-0003").pathology["provenance"]["parameters"]["precision"] == used
