"""The phantom MRI renderer: contract, determinism, phenotype signal, centres, DICOM and Slicer files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.synthetic.mri import GRIDS, PhantomSize, centre_profile, write_phantom_mri


def render(tmp_path, name="case", **kwargs):
    arguments = dict(phenotype=0.0, tumor_size_cm=6.0, centre="A", size="tiny", seed=3)
    arguments.update(kwargs)
    return write_phantom_mri(tmp_path / name, **arguments)


def array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_tiny_phantom_has_the_contract_grid_files_and_stats(tmp_path):
    case = render(tmp_path)
    (nx, ny, nz), spacing = GRIDS[PhantomSize.TINY]
    for path in (case.t2fs, case.t1ce, case.labelmap):
        image = sitk.ReadImage(str(path))
        assert image.GetSize() == (nx, ny, nz)
        assert np.allclose(image.GetSpacing(), spacing)
    assert sitk.ReadImage(str(case.t2fs)).GetPixelID() == sitk.sitkInt16
    assert set(np.unique(array(case.labelmap))) == {0, 1}
    assert case.seg.name.endswith(".seg.nrrd")
    voxel_ml = np.prod(spacing) / 1000
    assert case.stats["tumor_volume_ml"] == pytest.approx(array(case.labelmap).sum() * voxel_ml)
    for key in ("necrotic_fraction", "heterogeneity", "infiltration", "edema_volume_ml", "tumor_size_cm_rendered"):
        assert math.isfinite(case.stats[key])


@pytest.mark.parametrize("dicom", [False, True], ids=["nifti", "dicom"])
def test_the_same_arguments_give_the_same_bytes(tmp_path, dicom):
    first, second = render(tmp_path, "a", dicom=dicom, oblique=True), render(tmp_path, "b", dicom=dicom, oblique=True)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert first.stats == second.stats
    other = render(tmp_path, "c", dicom=dicom, oblique=True, seed=4)
    assert array(other.labelmap).tobytes() != array(first.labelmap).tobytes()


def test_rendered_tumor_quantities_rise_with_the_phenotype(tmp_path):
    phenotypes = [-2.0, -1.0, 0.0, 1.0, 2.0]
    cases = [render(tmp_path, f"p{i}", phenotype=p) for i, p in enumerate(phenotypes)]
    for key in ("necrotic_fraction", "heterogeneity", "infiltration", "edema_volume_ml"):
        values = [c.stats[key] for c in cases]
        assert np.all(np.diff(values) > 0), (key, values)
    # In the image itself: necrosis is fluid-bright on T2 and unenhanced on T1CE.
    bright, dark = [], []
    for case in cases:
        tumor = array(case.labelmap) > 0
        t2, t1 = array(case.t2fs)[tumor], array(case.t1ce)[tumor]
        bright.append(np.mean(t2 > 900))
        dark.append(np.mean(t1 < 400))
    assert np.all(np.diff(bright) > 0) and np.all(np.diff(dark) > 0), (bright, dark)
    assert cases[0].stats["tumor_volume_ml"] == pytest.approx(cases[-1].stats["tumor_volume_ml"], rel=0.25)


def test_tumor_size_follows_the_request_until_the_field_of_view_is_full(tmp_path):
    small, large = render(tmp_path, "s", tumor_size_cm=4.0), render(tmp_path, "l", tumor_size_cm=6.0)
    assert small.stats["tumor_size_cm_rendered"] == pytest.approx(4.0)
    assert not small.stats["tumor_size_clamped"]
    assert small.stats["tumor_volume_ml"] < large.stats["tumor_volume_ml"]
    huge = render(tmp_path, "h", tumor_size_cm=40.0)
    assert huge.stats["tumor_size_clamped"] and huge.stats["tumor_size_cm_rendered"] < 40
    label = array(huge.labelmap)
    assert label[0].sum() == 0 and label[-1].sum() == 0  # the tumor stays inside the volume


def test_centre_b_differs_in_scale_and_bias_deterministically(tmp_path):
    a, b = render(tmp_path, "a", centre="A"), render(tmp_path, "b", centre="B")
    assert np.array_equal(array(a.labelmap), array(b.labelmap))  # same anatomy, other scanner
    profile = centre_profile("B")
    assert profile == centre_profile("B") and profile != centre_profile("C")
    assert abs(math.log(profile.scale)) >= 0.3 and profile.bias_amplitude > 0
    assert centre_profile("A").scale == 1 and centre_profile("A").bias_amplitude == 0
    t2a, t2b = array(a.t2fs).astype(float), array(b.t2fs).astype(float)
    muscle = (t2a > 150) & (t2a < 320) & (array(a.labelmap) == 0)
    ratio = np.median(t2b[muscle]) / np.median(t2a[muscle])
    assert ratio == pytest.approx(profile.scale, rel=0.2)
    # The bias field: the ratio B / A drifts across the volume, unlike a pure scale.
    drift = (t2b[muscle] - profile.offset) / t2a[muscle]
    assert np.percentile(drift, 95) / np.percentile(drift, 5) > 1.1


def test_oblique_volume_has_a_rotated_right_handed_direction_shared_by_the_masks(tmp_path):
    case = render(tmp_path, oblique=True)
    direction = np.array(sitk.ReadImage(str(case.t2fs)).GetDirection()).reshape(3, 3)
    assert np.allclose(direction @ direction.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(direction) == pytest.approx(1.0)
    angle = math.degrees(math.acos((np.trace(direction) - 1) / 2))
    assert 10 <= angle <= 20 and angle == pytest.approx(case.stats["oblique_degrees"], abs=1e-4)
    for path in (case.labelmap, case.seg):
        assert np.allclose(sitk.ReadImage(str(path)).GetDirection(), direction.ravel(), atol=1e-6)


def test_dicom_series_carry_the_geometry_tags_and_nothing_identifying(tmp_path):
    case = render(tmp_path, "d", dicom=True, oblique=True)
    nifti = render(tmp_path, "n", oblique=True)
    studies, series = set(), set()
    for folder in (case.t2fs, case.t1ce):
        files = sorted(folder.iterdir())
        assert len(files) == GRIDS[PhantomSize.TINY][0][2]
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(files[0]))
        reader.ReadImageInformation()
        tags = {k: reader.GetMetaData(k).strip() for k in reader.GetMetaDataKeys()}
        for tag in ("0020|000d", "0020|000e", "0020|0032", "0020|0037", "0018|0050", "0028|0030", "0008|0018"):
            assert tags.get(tag), tag
        assert tags["0008|0060"] == "MR"
        assert tags["0010|0010"] == tags["0010|0020"] == "PHANTOM-3"
        for identifying in ("0010|0030", "0010|1040", "0008|0080", "0008|0090", "0010|1000"):
            assert not tags.get(identifying), identifying  # birth date, address, institution, physician
        studies.add(tags["0020|000d"])
        series.add(tags["0020|000e"])
    assert len(studies) == 1 and len(series) == 2
    from sarcoma_risk.radiology.io import read_image

    from_dicom, from_nifti = read_image(case.t2fs), read_image(nifti.t2fs)
    assert np.array_equal(sitk.GetArrayFromImage(from_dicom), sitk.GetArrayFromImage(from_nifti))
    assert np.allclose(from_dicom.GetOrigin(), from_nifti.GetOrigin(), atol=1e-3)
    assert np.allclose(from_dicom.GetDirection(), from_nifti.GetDirection(), atol=1e-5)
    assert np.allclose(from_dicom.GetSpacing(), from_nifti.GetSpacing(), atol=1e-4)


def test_segmentation_loads_in_slicer_core_with_the_tumor_as_first_segment(tmp_path):
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")
    import vtk

    case = render(tmp_path, oblique=True)
    scene = slicer.vtkMRMLScene()
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(case.seg))
    assert storage.ReadData(segmentation)
    content = segmentation.GetSegmentation()
    ids = [content.GetNthSegmentID(i) for i in range(content.GetNumberOfSegments())]
    assert [content.GetSegment(i).GetName() for i in ids] == ["Tumor", "Peritumoral edema"]

    volume = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(volume)
    volume_storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(volume_storage)
    volume_storage.SetFileName(str(case.t2fs))
    assert volume_storage.ReadData(volume)
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmap)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    wanted = vtk.vtkStringArray()
    wanted.InsertNextValue(ids[0])
    assert logic.ExportSegmentsToLabelmapNode(segmentation, wanted, labelmap, volume)
    exported = slicer.util.arrayFromVolume(labelmap)
    assert np.array_equal(exported > 0, array(case.labelmap) > 0)


@pytest.mark.parametrize("arguments, field", [
    ({"size": "huge"}, "size"),
    ({"phenotype": float("nan")}, "phenotype"),
    ({"tumor_size_cm": 0.0}, "tumor_size_cm"),
    ({"centre": ""}, "centre"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_are_refused_naming_the_field(tmp_path, arguments, field):
    with pytest.raises(InvalidInput, match=field):
        render(tmp_path, **arguments)
    assert not (tmp_path / "case").exists()
