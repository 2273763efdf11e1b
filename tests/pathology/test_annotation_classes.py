"""Which annotation classes make the tumor region: QuPath's class names, --annotation-class, the error listing them.

The annotation files are written here as QuPath exports them (see the ``qupath_export`` fixture),
with the class names real projects use: "Tumour", "Tumor_vital", a derived "Tumour: Necrosis".
"""

from __future__ import annotations

import json

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.errors import InvalidAnnotation, InvalidInput
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES, check_class_names, matches
from sarcoma_risk.pathology.geojson import read_geojson
from sarcoma_risk.pathology.regions import read_tumor_region, region_sha256
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.records import open_store

SLIDE = (4000, 3000)


@pytest.mark.parametrize("wanted, name, expected", [
    (["Tumor"], "Tumor", True),
    (["Tumor"], "Tumor: Positive", True),  # derived from Tumor, as QuPath's isDerivedFrom says
    (["Tumor"], "Tumor:Positive", True),  # QuPath strips the parts when it parses a name
    (["Tumor"], "Tumor: Positive: 2+", True),
    (["Tumor"], "tumor", False),  # another class in QuPath
    (["Tumor"], "Tumour", False),
    (["Tumor"], "Tumor_vital", False),
    (["Tumor"], "Tumors", False),
    (["Tumor"], "Stroma: Tumor", False),  # derived from Stroma
    (["Tumor"], None, False),
    (["Tumor: Positive"], "Tumor", False),  # a derived name does not take its parent
    (["Tumor: Positive"], "Tumor: Positive: 3+", True),
    (["Tumour", "Tumor_vital"], "Tumor_vital", True),
    (["Region*"], "Region*", True),
])
def test_class_names_match_as_qupath_derives_them(wanted, name, expected):
    assert matches(name, wanted) is expected


def test_class_names_are_checked_deduplicated_and_default_to_tumor():
    assert check_class_names(None) == DEFAULT_TUMOR_CLASSES == ("Tumor",)
    assert check_class_names([]) == ("Tumor",)
    assert check_class_names(["Tumour", "Tumor_vital", "Tumour"]) == ("Tumour", "Tumor_vital")
    assert check_class_names(["Tumor :Positive"]) == ("Tumor: Positive",)  # QuPath's own spelling
    for bad in ["", "  ", "Tumor:", ": Positive"]:
        with pytest.raises(InvalidInput, match=f"--annotation-class {bad!r}: not a QuPath class name"):
            check_class_names(["Tumor", bad])


def test_an_export_with_other_classes_is_refused_with_the_classes_it_holds(tmp_path, qupath_export):
    path = qupath_export(tmp_path / "slide.geojson", [("Tumour", (100, 100, 900, 700)),
                                                       ("Tumor_vital", (300, 300, 500, 500)),
                                                       ("Stroma", (1000, 100, 1500, 400))])
    with pytest.raises(InvalidAnnotation) as info:
        read_tumor_region(path, SLIDE)
    message = str(info.value)
    assert "no annotation of class 'Tumor'" in message
    assert "annotation classes found: 'Stroma', 'Tumor_vital', 'Tumour'" in message
    assert "--annotation-class NAME" in message and str(path) in message


def test_the_named_classes_make_the_region(tmp_path, qupath_export):
    path = qupath_export(tmp_path / "slide.geojson", [("Tumour", (100, 100, 900, 700)),
                                                       ("Tumour: Necrosis", (2000, 2000, 2100, 2100)),
                                                       ("Tumor_vital", (3000, 300, 3500, 500)),
                                                       ("Stroma", (1000, 100, 1500, 400))])
    tumour = read_tumor_region(path, SLIDE, classes=["Tumour"])
    assert tumour.n_annotations == 2 and tumour.classes == ("Tumour",)  # with its derived class
    assert tumour.geometry.area == 800 * 600 + 100 * 100
    both = read_tumor_region(path, SLIDE, classes=["Tumour", "Tumor_vital"])
    assert both.n_annotations == 3 and both.geometry.area == tumour.geometry.area + 500 * 200
    vital = read_tumor_region(path, SLIDE, classes=["Tumor_vital"])
    assert vital.geometry.bounds == (3000, 300, 3500, 500)
    # One file, three regions: each has its own sha256 (tile caches and the record tell them apart).
    assert len({tumour.sha256, both.sha256, vital.sha256, sha256_file(path)}) == 4
    assert region_sha256(sha256_file(path), ["Tumor"]) == sha256_file(path)  # the default: the file's own


def test_score_slide_takes_the_annotation_classes_and_records_them(tmp_path, capsys, qupath_export, slide_cohort,
                                                                  trained_pathology):
    (outline,) = read_geojson(slide_cohort.annotation("PX-021"))  # where this phantom slide has tumor tissue
    x0, y0, x1, y1 = (int(v) for v in outline.geometry.bounds)
    mx, my = (x0 + x1) // 2, (y0 + y1) // 2
    path = qupath_export(tmp_path / "real-project-export.geojson", [("Tumour", (x0, y0, mx, y1)),
                                                                     ("Tumor_vital", (mx, y0, x1, my))])
    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    common = ["score-slide", "--no-progress", "--json", "--case", "PX-021", "--slide", str(slide_cohort.slide("PX-021")),
              "--annotations", str(path), "--weights", str(trained_pathology.weights), "--out", str(out),
              "--store", str(store)]

    assert main(common) == 1  # default class Tumor: none in this export
    err = capsys.readouterr().err
    assert "annotation classes found: 'Tumor_vital', 'Tumour'" in err and not store.exists()

    assert main([*common, "--annotation-class", "Tumour"]) == 0
    tumour = json.loads(capsys.readouterr().out)["slide"]
    assert main([*common, "--annotation-class", "Tumour", "--annotation-class", "Tumor_vital"]) == 0
    both = json.loads(capsys.readouterr().out)["slide"]
    assert tumour["n_annotations"] == 1 and both["n_annotations"] == 2
    assert 0 < tumour["n_tiles"] < both["n_tiles"]  # not served from the first run's tile cache
    with open_store(store, mode="r") as cases:
        annotation = cases.get("PX-021").pathology["provenance"]["inputs"]["annotation"]
    assert annotation["classes"] == ["Tumour", "Tumor_vital"] and annotation["sha256"] == sha256_file(path)


def test_an_annotation_class_without_an_annotation_file_is_refused(tmp_path, capsys, slide_cohort, trained_pathology):
    status = main(["score-slide", "--no-progress", "--case", "PX-021", "--slide", str(slide_cohort.slide("PX-021")),
                   "--annotation-class", "Tumour", "--weights", str(trained_pathology.weights),
                   "--out", str(tmp_path / "out"), "--store", str(tmp_path / "cases.sqlite")])
    assert status == 1 and "--annotation-class names the tumor's class in --annotations" in capsys.readouterr().err
    assert not (tmp_path / "cases.sqlite").exists()
