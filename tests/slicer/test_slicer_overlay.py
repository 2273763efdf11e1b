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


def test_the_overlay_uses_a_diverging_table_centred_on_zero_with_a_legend(scene, loaded_case, phantom_mri, tmp_path):
    import slicer
    from SarcomaRiskLib import load_gradcam

    t2, _, _ = loaded_case
    values = np.zeros(sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.t2fs))).shape)
    values[5:9, 30:60, 30:60] = np.linspace(-0.6, 0.3, 30)  # a low-risk case: more lowered than raised
    node = load_gradcam(scene, write_cam(tmp_path / "cam.nrrd", phantom_mri.t2fs, values), reference=t2,
                        case_id="STS-0001", sha256="0" * 64)
    display = node.GetDisplayNode()
    # Centred: the window is symmetric about 0, so 0 sits in the middle of the table.
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((-0.6, 0.6))
    table = scene.GetNodeByID(display.GetColorNodeID())
    n = table.GetNumberOfColors()
    rgba = np.array([table.GetLookupTable().GetTableValue(i) for i in range(n)])
    # Diverging: blue at the low end, red at the high end, white and transparent in the middle.
    assert rgba[0, 2] > rgba[0, 0] and rgba[-1, 0] > rgba[-1, 2]
    np.testing.assert_allclose(rgba[n // 2, :3], 1.0, atol=0.02)
    assert rgba[n // 2, 3] == 0 and rgba[0, 3] == 1 and rgba[-1, 3] == 1
    # Symmetric: a value and its opposite are equally far from white, so neither side looks stronger.
    distance = np.abs(rgba[:, :3] - 1.0).sum(axis=1)
    np.testing.assert_allclose(distance / distance.max(), (distance / distance.max())[::-1], atol=0.35)
    assert table.GetColorName(0) == "lowers the risk" and table.GetColorName(n - 1) == "raises the risk"
    # What Slicer draws: a voxel that lowered the risk is blue and opaque, a neutral one transparent.
    display.SetInputImageDataConnection(node.GetImageDataConnection())
    display.UpdateImageDataPipeline()
    producer = display.GetOutputImageDataConnection().GetProducer()
    producer.Update()
    from vtk.util import numpy_support

    drawn = numpy_support.vtk_to_numpy(producer.GetOutputDataObject(0).GetPointData().GetScalars())
    drawn = drawn.reshape(*values.shape, 4)
    assert drawn[5, 30, 30, 3] == 255 and drawn[5, 30, 30, 2] > drawn[5, 30, 30, 0]  # -0.6: blue
    assert drawn[5, 30, 59, 3] == 255 and drawn[5, 30, 59, 0] > drawn[5, 30, 59, 2]  # +0.3: red
    assert drawn[0, 0, 0, 3] == 0  # 0: transparent, the MRI shows through
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(node)
    assert legend is not None and legend.GetVisibility()
    assert "raised the risk" in legend.GetTitleText() and "lowered" in legend.GetTitleText()


def test_a_second_overlay_shares_the_table_and_an_all_zero_map_is_transparent(scene, loaded_case, phantom_mri,
                                                                              tmp_path):
    from SarcomaRiskLib import diverging_color_table, load_gradcam

    t2, _, _ = loaded_case
    shape = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.t2fs))).shape
    tables_before = scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")
    first = load_gradcam(scene, write_cam(tmp_path / "a.nrrd", phantom_mri.t2fs, np.full(shape, 0.2)), reference=t2,
                         case_id="STS-0001", sha256="1" * 64)
    second = load_gradcam(scene, write_cam(tmp_path / "b.nrrd", phantom_mri.t2fs, np.zeros(shape)), reference=t2,
                          case_id="STS-0002", sha256="2" * 64)
    table = diverging_color_table(scene)
    assert first.GetDisplayNode().GetColorNodeID() == second.GetDisplayNode().GetColorNodeID() == table.GetID()
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == tables_before + 1  # one table, shared
    assert (second.GetDisplayNode().GetWindowLevelMin(), second.GetDisplayNode().GetWindowLevelMax()) == (-1.0, 1.0)


def test_without_slice_views_no_layer_is_set(loaded_case):
    from SarcomaRiskLib import show_overlay

    t2, t1ce, _ = loaded_case
    bare = t2.GetScene()
    for i in reversed(range(bare.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))):
        bare.RemoveNode(bare.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode"))
    assert show_overlay(bare, t2, t1ce) == 0
