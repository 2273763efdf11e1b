"""What the panel shows: which controls are usable (with real nodes of a slicer-core scene) and the result labels."""

from __future__ import annotations

import math

import pytest


@pytest.fixture
def selection(loaded_case, segment_id):
    """Everything Compute needs, as the parameter node holds it."""
    t2, _, segmentation = loaded_case
    return {"case_id": "STS-0042", "t2": t2, "segmentation": segmentation,
            "segment_id": segment_id(segmentation, "Tumor")}


def test_compute_is_usable_once_the_case_the_t2_and_the_tumor_segment_are_selected(selection):
    from SarcomaRiskLib import Controls, panel_controls

    assert panel_controls(**selection, running=False) == Controls(ready=True, compute_enabled=True,
                                                                  cancel_enabled=False, inputs_enabled=True)
    for missing, empty in (("case_id", ""), ("t2", None), ("segmentation", None), ("segment_id", "")):
        controls = panel_controls(**{**selection, missing: empty}, running=False)
        assert not controls.ready and not controls.compute_enabled, missing
        assert controls.inputs_enabled and not controls.cancel_enabled, missing


def test_a_t1ce_alone_or_beside_the_t2_is_enough_and_without_either_compute_is_not_usable(selection, loaded_case):
    from SarcomaRiskLib import panel_controls

    t2, t1ce, _ = loaded_case
    for volumes in ({"t2": None, "t1ce": t1ce}, {"t2": t2, "t1ce": t1ce}):
        controls = panel_controls(**{**selection, **volumes}, running=False)
        assert controls.ready and controls.compute_enabled, volumes
    controls = panel_controls(**{**selection, "t2": None, "t1ce": None}, running=False)
    assert not controls.ready and not controls.compute_enabled


def test_the_volumes_preselected_are_the_t2_else_a_contrast_enhanced_t1_never_offered_as_the_t2(scene, loaded_case):
    from SarcomaRiskLib import guess_volumes

    t2, t1ce, _ = loaded_case  # named "T2 FS AX" and "T1 FS AX POST GD", as the scanner names the series
    assert guess_volumes([t1ce, t2]) == (t2, None)
    assert guess_volumes([t1ce]) == (None, t1ce)
    t1ce.SetName("T1 AX")  # a T1 without a contrast word: not taken for a T1CE, nor for the T2
    assert guess_volumes([t1ce]) == (None, None)
    t1ce.SetName("Series 5")  # nothing in the name: taken for the T2, as before
    assert guess_volumes([t1ce]) == (t1ce, None)
    assert guess_volumes([]) == (None, None)


def test_while_a_run_is_in_progress_only_cancel_is_usable(selection):
    from SarcomaRiskLib import Controls, panel_controls

    assert panel_controls(**selection, running=True) == Controls(ready=True, compute_enabled=False,
                                                                 cancel_enabled=True, inputs_enabled=False)
    assert panel_controls(**{**selection, "t2": None}, running=True).cancel_enabled


def test_the_result_labels_show_dashes_until_a_result_exists_and_for_a_percentile_without_reference():
    from SarcomaRiskLib import ResultLabels, result_labels

    assert result_labels(gradcam_sha256="", score=0.0, percentile=0.0, tumor_volume_ml=0.0) == \
        ResultLabels("-", "-", "-")
    assert result_labels(gradcam_sha256="ab12", score=0.41234, percentile=73.6, tumor_volume_ml=75.24) == \
        ResultLabels("0.412", "74", "75.2 ml")
    assert result_labels(gradcam_sha256="ab12", score=-1.5, percentile=math.nan, tumor_volume_ml=0.0) == \
        ResultLabels("-1.500", "-", "0.0 ml")
