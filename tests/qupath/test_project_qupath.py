"""The QuPath project workflow through paquo: runs wherever QuPath is installed, skips elsewhere.

A project is made with paquo (as QuPath would), phantom slides are added with Tumor annotations and
case ids, ``sarcoma-qupath score`` runs on it, and the project is reopened to find the tiles, their
measurement and the metadata, next to the pathologist's own objects, which must be untouched.
paquo finds QuPath through PAQUO_QUPATH_DIR or a .paquo.toml (see the README).
"""

from __future__ import annotations

import json
import shutil

import pytest
from shapely.geometry import box

from qupath_bridge.cli import main
from qupath_bridge.project import find_qupath
from qupath_bridge.results import MEASUREMENT, TILE_NAME
from sarcoma_risk.errors import MissingDependency
from sarcoma_risk.pathology.geojson import read_geojson
from sarcoma_risk.records import open_store


def _missing_qupath() -> str | None:
    try:
        find_qupath()
    except MissingDependency as exc:
        return f"needs QuPath, which paquo did not find here: {exc}"
    return None


pytestmark = [pytest.mark.qupath, pytest.mark.skipif(_missing_qupath() is not None, reason=str(_missing_qupath()))]


@pytest.fixture
def project(tmp_path, phantom_slides):
    """A QuPath project: annotated slide (case STS-0001), plain slide (STS-0002), a moved slide, an unmapped one."""
    from paquo.classes import QuPathPathClass
    from paquo.images import QuPathImageType
    from paquo.projects import QuPathProject

    moved = tmp_path / "moved.svs"
    unmapped = tmp_path / "unmapped.svs"
    shutil.copy(phantom_slides["plain"].slide, moved)
    shutil.copy(phantom_slides["plain"].slide, unmapped)
    folder = tmp_path / "project"
    tumor = QuPathPathClass("Tumor", color=(200, 0, 0))
    with QuPathProject(folder, mode="x") as qp:
        qp.path_classes = [tumor]
        annotated = qp.add_image(phantom_slides["annotated"].slide, image_type=QuPathImageType.BRIGHTFIELD_H_E)
        annotated.metadata["case_id"] = "STS-0001"
        (region,) = read_geojson(phantom_slides["annotated"].annotation)
        annotated.hierarchy.add_annotation(region.geometry, path_class=tumor)
        annotated.hierarchy.add_annotation(box(10, 10, 200, 200))  # the pathologist's note: unclassified
        annotated.hierarchy.add_tile(box(0, 0, 224, 224), measurements={"prob_tumor": 0.9})  # another tool's tile
        plain = qp.add_image(phantom_slides["plain"].slide, image_type=QuPathImageType.BRIGHTFIELD_H_E)
        plain.metadata["case_id"] = "STS-0002"
        gone = qp.add_image(moved, image_type=QuPathImageType.BRIGHTFIELD_H_E)
        gone.metadata["case_id"] = "STS-0003"
        qp.add_image(unmapped, image_type=QuPathImageType.BRIGHTFIELD_H_E)
    moved.unlink()
    return folder


def images_by_name(folder):
    from paquo.projects import QuPathProject

    qp = QuPathProject(folder, mode="r")
    return qp, {image.image_name: image for image in qp.images}


def test_scoring_a_project_writes_tiles_metadata_and_records_and_leaves_the_rest(tmp_path, project, tiny_weights,
                                                                                capsys):
    store = tmp_path / "cases.sqlite"
    args = ["score", str(project), "--weights", str(tiny_weights), "--store", str(store), "--quiet", "--json"]
    assert main(args) == 1  # one slide moved, one image without a case id: incomplete, said so
    result = json.loads(capsys.readouterr().out)
    status = {i["image"]: i["status"] for i in result["images"]}
    assert status == {"annotated.svs": "scored", "plain.svs": "scored", "moved.svs": "failed",
                      "unmapped.svs": "unmapped"}
    moved = next(i for i in result["images"] if i["image"] == "moved.svs")
    assert "missing" in moved["message"] and "Check project URIs" in moved["message"]
    assert result["backup"] and (project / "sarcoma-risk" / "backups").is_dir()

    qp, images = images_by_name(project)
    annotated = images["annotated.svs"]
    tiles = [t for t in annotated.hierarchy.tiles if t.name == TILE_NAME]
    scored = next(i for i in result["images"] if i["image"] == "annotated.svs")
    assert len(tiles) > 0 and all(0 <= t.measurements[MEASUREMENT] <= 1 and t.locked for t in tiles)
    assert any("prob_tumor" in t.measurements for t in annotated.hierarchy.tiles)  # the other tool's tile stays
    assert len(annotated.hierarchy.annotations) == 2  # Tumor outline and the note stay
    assert annotated.metadata["sarcoma_risk_score"] == f"{scored['score']:.3f}"
    assert annotated.metadata["sarcoma_risk_region"] == "Tumor annotation (1 region)"
    assert images["plain.svs"].metadata["sarcoma_risk_region"] == "whole tissue (no Tumor annotation)"
    assert "sarcoma_risk_score" not in images["moved.svs"].metadata
    assert len(images["moved.svs"].hierarchy.tiles) == 0
    with open_store(store, mode="r") as handle:
        assert handle.get("STS-0001").pathology["slides"][0]["n_tiles"] == len(tiles)
        assert [r.case_id for r in handle.records()] == ["STS-0001", "STS-0002"]  # nothing for the failures

    assert main(args) == 1
    again = {i["image"]: i["status"] for i in json.loads(capsys.readouterr().out)["images"]}
    assert again["annotated.svs"] == "skipped" and again["plain.svs"] == "skipped"
    assert main(args + ["--rescore", "--images", "annotated.svs"]) == 0
    capsys.readouterr()
    qp, images = images_by_name(project)
    assert len([t for t in images["annotated.svs"].hierarchy.tiles if t.name == TILE_NAME]) == len(tiles)  # replaced
