"""Loading the Grad-CAM file as an overlay node on a slicer-core scene."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage


def write_cam(path, t2_path, values):
    reference = sitk.ReadImage(str(t2_path))
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


def test_a_gradcam_with_nan_is_refused_and_the_scene_is_left_as_it_was(scene, loaded_case, phantom_mri, tmp_path):
    from SarcomaRiskLib import load_gradcam

    t2, _, _ = loaded_case
    values = np.zeros(sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.t2fs))).shape)
    values[3, 40, 40] = np.nan
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(InvalidImage, match="non-finite values"):
        load_gradcam(scene, write_cam(tmp_path / "cam.nrrd", phantom_mri.t2fs, values), reference=t2,
                     case_id="STS-0001", sha256="0" * 64)
    assert scene.GetNumberOfNodes() == nodes_before


def test_slicers_inferno_table_is_preferred_when_the_application_has_it(scene, loaded_case, phantom_mri, tmp_path):
    import slicer
    from SarcomaRiskLib import choose_colormap, load_gradcam

    assert choose_colormap(scene) == "vtkMRMLPETProceduralColorNodePET-Heat"  # slicer-core ships no colour files
    inferno = slicer.vtkMRMLColorTableNode()
    inferno.SetSingletonTag("FileInferno.txt")  # the id Slicer gives its Inferno.txt table
    scene.AddNode(inferno)
    t2, _, _ = loaded_case
    values = np.zeros(sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.t2fs))).shape)
    values[5:9, 30:60, 30:60] = np.linspace(0, 1, 30)
    node = load_gradcam(scene, write_cam(tmp_path / "cam.nrrd", phantom_mri.t2fs, values), reference=t2,
                        case_id="STS-0001", sha256="0" * 64)
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() == "vtkMRMLColorTableNodeFileInferno.txt"
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.05)
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((0.0, 1.0))


def test_without_slice_views_no_layer_is_set(loaded_case):
    from SarcomaRiskLib import show_overlay

    t2, t1ce, _ = loaded_case
    bare = t2.GetScene()
    for i in reversed(range(bare.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))):
        bare.RemoveNode(bare.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode"))
    assert show_overlay(bare, t2, t1ce) == 0
