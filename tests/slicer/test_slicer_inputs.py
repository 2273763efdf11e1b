"""Checking and exporting what the radiologist selected, on a real slicer-core MRML scene."""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidCaseId, InvalidImage, InvalidInput
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store


@pytest.fixture
def store_with_a_record(tmp_path):
    """A case store holding STS-0001 with a clinical section (revision 1)."""
    path = tmp_path / "cases.sqlite"
    provenance = Provenance("test", "0", None).to_dict()
    with open_store(path, mode="a") as store:
        store.put_section("STS-0001", "clinical", {"values": {"age": 61}, "provenance": provenance})
    return path


def shifted_segmentation(scene, reference, shift_mm, name="Far away"):
    """A segmentation whose one segment is a box on ``reference``'s grid moved by ``shift_mm`` (RAS)."""
    import slicer
    import vtk

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name} labels")
    image = vtk.vtkImageData()
    image.SetDimensions(reference.GetImageData().GetDimensions())
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    labelmap.SetAndObserveImageData(image)
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    for axis, value in enumerate(shift_mm):
        matrix.SetElement(axis, 3, matrix.GetElement(axis, 3) + value)
    labelmap.SetIJKToRASMatrix(matrix)
    voxels = np.zeros(slicer.util.arrayFromVolume(labelmap).shape, np.uint8)
    voxels[4:12, 30:66, 30:66] = 1
    slicer.util.updateVolumeFromArray(labelmap, voxels)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    return segmentation


def start(scene, inputs, store):
    from SarcomaRiskLib import RadiologyScoring

    run = RadiologyScoring(scene, inputs, store_path=store)
    try:
        return run.start()
    finally:
        run.close()


def refused(scene, inputs, store, error, match, private_tempdir):
    """Starting a run raises ``error`` matching ``match``; scene, store and temp folder are untouched."""
    nodes_before = scene.GetNumberOfNodes()
    existed = store.exists()
    if existed:
        with open_store(store, mode="r") as s:
            before = (s.get("STS-0001").revisions, len(s.history()))
    with pytest.raises(error, match=match):
        start(scene, inputs, store)
    assert scene.GetNumberOfNodes() == nodes_before
    assert list(private_tempdir.iterdir()) == []
    assert store.exists() == existed
    if existed:
        with open_store(store, mode="r") as s:
            assert (s.get("STS-0001").revisions, len(s.history())) == before


# ---- refused inputs ------------------------------------------------------------------------------


def test_no_mri_volume_is_refused_naming_both_volume_controls(scene, loaded_case, segment_id, store_with_a_record,
                                                               private_tempdir):
    from SarcomaRiskLib import ScoringInputs

    _, _, segmentation = loaded_case
    inputs = ScoringInputs("STS-0001", None, segmentation, segment_id(segmentation, "Tumor"))
    refused(scene, inputs, store_with_a_record, InvalidInput,
            r"^T2 volume and T1CE volume: no volume selected; .* select the fat-suppressed T2 as T2 volume, the "
            r"contrast-enhanced T1 as T1CE volume, or both$", private_tempdir)


@pytest.mark.parametrize("case_id", ["", "Jane Doe", "STS/0001", "x" * 40, "-STS"])
def test_an_invalid_case_id_is_refused_before_anything_is_written(scene, loaded_case, segment_id, tmp_path,
                                                                   private_tempdir, case_id):
    from SarcomaRiskLib import ScoringInputs

    t2, _, segmentation = loaded_case
    inputs = ScoringInputs(case_id, t2, segmentation, segment_id(segmentation, "Tumor"))
    refused(scene, inputs, tmp_path / "new.sqlite", InvalidCaseId, "case_id", private_tempdir)


def test_a_segmentation_without_segments_is_refused(scene, loaded_case, store_with_a_record, private_tempdir):
    from SarcomaRiskLib import ScoringInputs

    t2, _, _ = loaded_case
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Nothing drawn")
    inputs = ScoringInputs("STS-0001", t2, empty, "")
    refused(scene, inputs, store_with_a_record, InvalidInput, r"'Nothing drawn' has no segments; draw the tumor",
            private_tempdir)


def test_an_empty_segment_is_refused(scene, loaded_case, store_with_a_record, private_tempdir):
    from SarcomaRiskLib import ScoringInputs

    t2, _, segmentation = loaded_case
    empty_id = segmentation.GetSegmentation().AddEmptySegment("", "Tumor (not drawn yet)")
    inputs = ScoringInputs("STS-0001", t2, segmentation, empty_id)
    refused(scene, inputs, store_with_a_record, InvalidImage, r"'Tumor \(not drawn yet\)' is empty", private_tempdir)


@pytest.mark.parametrize("reference", ["T2 volume", "T1CE volume"])
def test_a_segment_on_a_grid_that_does_not_overlap_the_mri_is_refused_naming_the_volume_used(
        scene, loaded_case, store_with_a_record, private_tempdir, reference):
    from SarcomaRiskLib import ScoringInputs

    t2, t1ce, _ = loaded_case
    far = shifted_segmentation(scene, t2, (0.0, 0.0, 400.0))
    far_id = far.GetSegmentation().GetNthSegmentID(0)
    if reference == "T2 volume":
        inputs, name = ScoringInputs("STS-0001", t2, far, far_id, t1ce), "T2 FS AX"
    else:
        inputs, name = ScoringInputs("STS-0001", None, far, far_id, t1ce), "T1 FS AX POST GD"
    refused(scene, inputs, store_with_a_record, InvalidImage, rf"does not overlap the {reference} '{name}'",
            private_tempdir)


def test_an_unknown_segment_id_names_the_segments_there_are(scene, loaded_case, store_with_a_record,
                                                            private_tempdir):
    from SarcomaRiskLib import ScoringInputs

    t2, _, segmentation = loaded_case
    inputs = ScoringInputs("STS-0001", t2, segmentation, "Segment_9")
    refused(scene, inputs, store_with_a_record, InvalidInput, r"'Tumor', 'Peritumoral edema'", private_tempdir)


def test_a_labelmap_or_a_single_slice_is_not_an_mri(scene, loaded_case, segment_id, store_with_a_record,
                                                    private_tempdir):
    import slicer
    import vtk
    from SarcomaRiskLib import ScoringInputs

    t2, _, segmentation = loaded_case
    tumor = segment_id(segmentation, "Tumor")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labelmap.SetAndObserveImageData(t2.GetImageData())
    refused(scene, ScoringInputs("STS-0001", labelmap, segmentation, tumor), store_with_a_record, InvalidImage,
            "is a labelmap", private_tempdir)

    flat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "one slice")
    image = vtk.vtkImageData()
    image.SetDimensions(96, 96, 1)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    flat.SetAndObserveImageData(image)
    slicer.util.updateVolumeFromArray(flat, np.ones((1, 96, 96), np.int16))
    refused(scene, ScoringInputs("STS-0001", flat, segmentation, tumor), store_with_a_record, InvalidImage,
            "96 x 96 x 1 voxels, a single slice", private_tempdir)


def test_the_t2_selected_again_as_t1ce_is_refused(scene, loaded_case, segment_id, store_with_a_record,
                                                  private_tempdir):
    from SarcomaRiskLib import ScoringInputs

    t2, _, segmentation = loaded_case
    inputs = ScoringInputs("STS-0001", t2, segmentation, segment_id(segmentation, "Tumor"), t1ce=t2)
    refused(scene, inputs, store_with_a_record, InvalidInput, "same volume is selected as T2", private_tempdir)


# ---- export --------------------------------------------------------------------------------------


def test_export_writes_the_chosen_segment_of_a_shared_layer_on_the_t2_grid(scene, loaded_case, phantom_mri,
                                                                          segment_id, tmp_path):
    from SarcomaRiskLib import ScoringInputs, export_inputs

    t2, t1ce, segmentation = loaded_case
    nodes_before = scene.GetNumberOfNodes()
    exported = export_inputs(scene, ScoringInputs("STS-0001", t2, segmentation, segment_id(segmentation, "Tumor"),
                                                  t1ce), tmp_path)
    assert scene.GetNumberOfNodes() == nodes_before  # temporary nodes are removed again

    truth_t2 = sitk.ReadImage(str(phantom_mri.t2fs))
    truth_mask = sitk.ReadImage(str(phantom_mri.labelmap))  # the tumor only, not the edema of the same layer
    for path, truth in ((exported.t2, truth_t2), (exported.mask, truth_mask),
                        (exported.t1ce, sitk.ReadImage(str(phantom_mri.t1ce)))):
        written = sitk.ReadImage(str(path))
        assert written.GetSize() == truth.GetSize()
        np.testing.assert_allclose(written.GetOrigin(), truth.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetSpacing(), truth.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(written.GetDirection(), truth.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(exported.mask))),
                                  sitk.GetArrayFromImage(truth_mask))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(exported.t2))),
                                  sitk.GetArrayFromImage(truth_t2))
    assert exported.segment_volume_ml == pytest.approx(phantom_mri.stats["tumor_volume_ml"], rel=1e-6)
    assert exported.warnings() == []


def test_export_folds_the_t1ce_registration_into_its_geometry(scene, loaded_case, phantom_mri, segment_id,
                                                              tmp_path):
    import vtk
    from SarcomaRiskLib import ScoringInputs, export_inputs

    t2, t1ce, segmentation = loaded_case
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T1CE to T2 registration")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 12.0)  # 12 mm towards patient right... in RAS, i.e. -12 mm in LPS x
    transform.SetMatrixTransformToParent(matrix)
    t1ce.SetAndObserveTransformNodeID(transform.GetID())
    exported = export_inputs(scene, ScoringInputs("STS-0001", t2, segmentation, segment_id(segmentation, "Tumor"),
                                                  t1ce), tmp_path)
    original = sitk.ReadImage(str(phantom_mri.t1ce))
    moved = sitk.ReadImage(str(exported.t1ce))
    np.testing.assert_allclose(np.subtract(moved.GetOrigin(), original.GetOrigin()), (-12.0, 0.0, 0.0), atol=1e-4)
    np.testing.assert_allclose(moved.GetDirection(), original.GetDirection(), atol=1e-6)


def test_a_transform_shared_by_t2_and_segmentation_leaves_the_mask_on_the_t2_voxels(scene, loaded_case,
                                                                                   phantom_mri, segment_id, tmp_path):
    import vtk
    from SarcomaRiskLib import ScoringInputs, export_inputs

    t2, _, segmentation = loaded_case
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Patient position")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(1, 3, -30.0)
    transform.SetMatrixTransformToParent(matrix)
    t2.SetAndObserveTransformNodeID(transform.GetID())
    segmentation.SetAndObserveTransformNodeID(transform.GetID())
    exported = export_inputs(scene, ScoringInputs("STS-0001", t2, segmentation, segment_id(segmentation, "Tumor")),
                             tmp_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(exported.mask))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.labelmap))))


@pytest.mark.parametrize("reference", ["T2 volume", "T1CE volume"])
def test_a_segment_partly_outside_the_mri_is_exported_with_a_warning_naming_the_volume_used(scene, loaded_case,
                                                                                           tmp_path, reference):
    import vtk
    from SarcomaRiskLib import ScoringInputs, export_inputs

    t2, t1ce, _ = loaded_case
    # A box over slices 4-11, moved 9 slices along the slice axis: slices 13-15 of 16 stay inside.
    # The phantom's T1CE lies on the T2's grid, so the same share is outside either.
    matrix = vtk.vtkMatrix4x4()
    t2.GetIJKToRASMatrix(matrix)
    slice_step = [matrix.GetElement(row, 2) for row in range(3)]
    half_out = shifted_segmentation(scene, t2, [9 * v for v in slice_step], name="Half out")
    volumes = (t2, None) if reference == "T2 volume" else (None, t1ce)
    exported = export_inputs(scene, ScoringInputs("STS-0001", volumes[0], half_out,
                                                  half_out.GetSegmentation().GetNthSegmentID(0), volumes[1]), tmp_path)
    assert exported.outside_fraction == pytest.approx(5 / 8, abs=0.02)
    assert re.fullmatch(rf"6[23]% of the tumor segment lies outside the {reference} and is left out of the score",
                        exported.warnings()[0])


def test_a_t1ce_alone_is_exported_in_its_own_frame_with_the_mask_on_its_grid_and_no_t2_file(
        scene, loaded_case, phantom_mri, segment_id, tmp_path):
    """The T1CE sits under a registration shift of 3 columns, so its grid is not where the T2's is.

    The mask must then be the tumor (which stays where the segmentation puts it) seen from the
    T1CE's own voxels: the phantom's labelmap moved back by those 3 columns.
    """
    import vtk
    from SarcomaRiskLib import ScoringInputs, export_inputs

    _, t1ce, segmentation = loaded_case
    columns = 3
    ijk_to_ras = vtk.vtkMatrix4x4()
    t1ce.GetIJKToRASMatrix(ijk_to_ras)
    shift = vtk.vtkMatrix4x4()
    for row in range(3):
        shift.SetElement(row, 3, columns * ijk_to_ras.GetElement(row, 0))  # along the voxel columns (I)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T1CE registration")
    transform.SetMatrixTransformToParent(shift)
    t1ce.SetAndObserveTransformNodeID(transform.GetID())

    folder = tmp_path / "export"
    folder.mkdir()
    nodes_before = scene.GetNumberOfNodes()
    exported = export_inputs(scene, ScoringInputs("STS-0001", None, segmentation, segment_id(segmentation, "Tumor"),
                                                  t1ce), folder)
    assert scene.GetNumberOfNodes() == nodes_before
    assert exported.t2 is None and exported.reference_role == "T1CE volume"
    assert sorted(path.name for path in folder.iterdir()) == ["mask.nrrd", "t1ce.nrrd"]

    truth_t1ce = sitk.ReadImage(str(phantom_mri.t1ce))
    for path in (exported.t1ce, exported.mask):  # both on the T1CE's own grid, its transform left out
        written = sitk.ReadImage(str(path))
        assert written.GetSize() == truth_t1ce.GetSize()
        np.testing.assert_allclose(written.GetOrigin(), truth_t1ce.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(written.GetSpacing(), truth_t1ce.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(written.GetDirection(), truth_t1ce.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(exported.t1ce))),
                                  sitk.GetArrayFromImage(truth_t1ce))
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.labelmap)))
    assert tumor[:, :, :columns].sum() == 0  # nothing falls off the grid
    expected = np.zeros_like(tumor)
    expected[:, :, :-columns] = tumor[:, :, columns:]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(exported.mask))), expected)
    assert exported.segment_volume_ml == pytest.approx(phantom_mri.stats["tumor_volume_ml"], rel=1e-6)
    assert exported.warnings() == []
