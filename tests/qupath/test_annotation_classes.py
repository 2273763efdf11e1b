"""The tumor's annotation class in the bridge: --annotation-class, the project's default, the error listing classes.

Annotations are written as QuPath exports them (the ``qupath_export`` fixture) with the class names
of real projects: "Tumour", "Tumor_vital".
"""

from __future__ import annotations

import json
import re

import pytest
from shapely.geometry import box

from qupath_bridge.cli import main
from qupath_bridge.projectsettings import ProjectSettings, annotation_classes, read_settings, settings_path
from qupath_bridge.results import choose_tumor_annotations
from qupath_bridge.scoring import ScoringOptions
from sarcoma_risk.errors import InvalidAnnotation, InvalidInput
from sarcoma_risk.pathology.geojson import Classification, QuPathObject, read_geojson
from sarcoma_risk.records import open_store


@pytest.fixture
def real_export(tmp_path, phantom_slides, qupath_export):
    """The annotated phantom slide's tumor outlined as a real project would: "Tumour" and "Tumor_vital" halves."""
    (outline,) = read_geojson(phantom_slides["annotated"].annotation)
    x0, y0, x1, y1 = (int(v) for v in outline.geometry.bounds)
    mx = (x0 + x1) // 2
    return qupath_export(tmp_path / "export.geojson", [("Tumour", (x0, y0, mx, y1)), ("Tumor_vital", (mx, y0, x1, y1)),
                                                       (None, (0, 0, 50, 50))])


def score_image(tmp_path, phantom_slides, tiny_weights, annotations, *extra):
    return main(["score-image", "--slide", str(phantom_slides["annotated"].slide), "--case", "STS-0001",
                 "--annotations", str(annotations), "--out", str(tmp_path / "out"), "--weights", str(tiny_weights),
                 "--store", str(tmp_path / "cases.sqlite"), "--cache", str(tmp_path / "cache"), "--quiet", "--json",
                 *extra])


def test_score_image_with_other_classes_fails_naming_them_and_writes_nothing(tmp_path, phantom_slides, tiny_weights,
                                                                            real_export, capsys):
    assert score_image(tmp_path, phantom_slides, tiny_weights, real_export) == 1
    err = capsys.readouterr().err
    assert "no annotation of class 'Tumor'" in err and "annotation classes found: 'Tumor_vital', 'Tumour'" in err
    assert "--annotation-class NAME" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cases.sqlite").exists()


def test_score_image_scores_the_named_classes_and_export_gives_them_back(tmp_path, phantom_slides, tiny_weights,
                                                                        real_export, capsys):
    assert score_image(tmp_path, phantom_slides, tiny_weights, real_export,
                       "--annotation-class", "Tumour", "--annotation-class", "Tumor_vital") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["region"] == "Tumour or Tumor_vital annotation (2 regions)" and result["n_tiles"] > 0
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["sarcoma_risk_region"] == result["region"]
    with open_store(tmp_path / "cases.sqlite", mode="r") as handle:
        (slide,) = handle.get("STS-0001").pathology["slides"]
    assert slide["n_annotations"] == 2

    # The bridge kept the annotations it scored with beside the cache: export finds them by the region's sha256.
    export = tmp_path / "back.geojson"
    assert main(["export", "--slide", str(phantom_slides["annotated"].slide), "--cache", str(tmp_path / "cache"),
                 "--out", str(export)]) == 0
    capsys.readouterr()
    back = [o for o in read_geojson(export) if o.object_type.value == "annotation"]
    assert sorted(o.classification.name for o in back) == ["Tumor_vital", "Tumour"]


def test_an_image_with_only_other_classes_fails_and_one_without_classes_is_whole_tissue():
    tumour = QuPathObject(box(0, 0, 10, 10), classification=Classification("Tumour", (1, 2, 3)))
    stroma = QuPathObject(box(0, 0, 10, 10), classification=Classification("Stroma", (1, 2, 3)))
    with pytest.raises(InvalidAnnotation, match="image 7: no annotation of class 'Tumor'.*found: 'Stroma', 'Tumour'"):
        choose_tumor_annotations([tumour, stroma, QuPathObject(box(0, 0, 5, 5))], ["Tumor"], "image 7")
    assert choose_tumor_annotations([tumour, stroma], ["Tumour"], "image 7") == [tumour]
    assert choose_tumor_annotations([QuPathObject(box(0, 0, 5, 5))], ["Tumor"], "image 7") == []  # unclassified


def test_the_projects_default_class_is_set_shown_and_reset(project_layout, capsys):
    assert read_settings(project_layout) == ProjectSettings() and not settings_path(project_layout).exists()
    assert main(["settings", str(project_layout), "--annotation-class", "Tumour",
                 "--annotation-class", "Tumor_vital"]) == 0
    assert "Tumour, Tumor_vital" in capsys.readouterr().out
    assert json.loads(settings_path(project_layout).read_text()) == {"annotation_classes": ["Tumour", "Tumor_vital"]}
    assert settings_path(project_layout).parent.name == "sarcoma-risk"  # the bridge's own folder, not QuPath's
    # The command line wins over the project's default, which wins over Tumor.
    assert annotation_classes(None, project_layout) == ("Tumour", "Tumor_vital")
    assert annotation_classes(["Region*"], project_layout) == ("Region*",)
    assert annotation_classes(None, None) == ("Tumor",)
    assert main(["settings", str(project_layout), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["annotation_classes"] == ["Tumour", "Tumor_vital"]
    assert main(["settings", str(project_layout), "--reset"]) == 0
    assert "Tumor (the default)" in capsys.readouterr().out
    assert annotation_classes(None, project_layout) == ("Tumor",)


def test_score_image_takes_the_default_of_the_project_the_qupath_script_names(tmp_path, project_layout, phantom_slides,
                                                                            tiny_weights, real_export, capsys):
    assert main(["settings", str(project_layout / "project.qpproj"), "--annotation-class", "Tumour"]) == 0
    capsys.readouterr()
    assert score_image(tmp_path, phantom_slides, tiny_weights, real_export,
                       "--project", str(project_layout / "project.qpproj")) == 0
    assert json.loads(capsys.readouterr().out)["region"] == "Tumour annotation (1 region)"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read the project's SarcomaRisk settings"),
    ('{"annotation_class": ["Tumour"]}', "unknown setting(s) 'annotation_class'"),
    ('{"annotation_classes": "Tumour"}', "must be a non-empty list"),
    ('{"annotation_classes": ["Tumor:"]}', "not a QuPath class name"),
])
def test_a_damaged_settings_file_is_a_clear_error(project_layout, content, message):
    path = settings_path(project_layout)
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(InvalidInput, match=re.escape(str(path)) + ".*" + re.escape(message)):
        annotation_classes(None, project_layout)


def test_settings_of_a_folder_that_is_no_project_are_refused(tmp_path, capsys):
    assert main(["settings", str(tmp_path), "--annotation-class", "Tumour"]) == 1
    assert "no QuPath project here" in capsys.readouterr().err and not (tmp_path / "sarcoma-risk").exists()


def test_the_resume_key_changes_with_the_classes_but_not_for_the_default(tmp_path):
    default = ScoringOptions(tmp_path)
    assert default.parameters() == {"mpp": None, "precision": "fp32"}  # as before the option existed
    assert ScoringOptions(tmp_path, annotation_classes=("Tumour",)).parameters()["annotation_classes"] == ["Tumour"]
