"""Reading MRI volumes and tumor masks: formats, DICOM series, Slicer segmentations, geometry, bad input."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage
from sarcoma_risk.radiology.io import align_sequence, read_case, read_image, read_mask


def labelmap(case):
    return sitk.ReadImage(str(case.labelmap))


def voxels(mask):
    return int(sitk.GetArrayViewFromImage(mask).sum())


@pytest.mark.parametrize("extension", [".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_every_volume_format_reads_to_the_same_image(tmp_path, tiny_case, extension):
    reference = read_image(tiny_case.t2fs)
    path = tmp_path / f"t2{extension}"
    sitk.WriteImage(sitk.Cast(reference, sitk.sitkInt16), str(path))
    image = read_image(path)
    assert image.GetPixelID() == sitk.sitkFloat32
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(reference))
    for attribute in ("GetOrigin", "GetSpacing", "GetDirection"):
        assert np.allclose(getattr(image, attribute)(), getattr(reference, attribute)(), atol=1e-5)


def test_a_dicom_folder_with_two_series_needs_a_series_uid(tmp_path, dicom_case):
    folder = tmp_path / "study"
    folder.mkdir()
    for source in (dicom_case.t2fs, dicom_case.t1ce):
        for file in source.iterdir():
            shutil.copy(file, folder / f"{source.name}-{file.name}")
    uids = {}
    for name in ("t2fs", "t1ce"):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(next((dicom_case.t2fs.parent / name).iterdir())))
        reader.ReadImageInformation()
        uids[name] = reader.GetMetaData("0020|000e").strip()
    with pytest.raises(InvalidImage, match="2 DICOM series") as error:
        read_image(folder)
    assert uids["t2fs"] in str(error.value) and uids["t1ce"] in str(error.value)
    chosen = read_image(folder, series_uid=uids["t1ce"])
    assert np.array_equal(sitk.GetArrayViewFromImage(chosen), sitk.GetArrayViewFromImage(read_image(dicom_case.t1ce)))
    with pytest.raises(InvalidImage, match="no series with SeriesInstanceUID '1.2.3'"):
        read_image(folder, series_uid="1.2.3")


def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path, dicom_case):
    folder = tmp_path / "gap"
    shutil.copytree(dicom_case.t2fs, folder)
    (folder / "IM0008.dcm").unlink()
    with pytest.raises(InvalidImage, match=r"about 1 slice\(s\) missing .*gap 10\.00 mm.*spacing is 5\.00 mm"):
        read_image(folder)


def test_an_empty_folder_and_a_missing_path_are_refused(tmp_path):
    with pytest.raises(InvalidImage, match="no DICOM series found among its 0 file"):
        read_image(tmp_path)
    with pytest.raises(InvalidImage, match="no such file or folder"):
        read_image(tmp_path / "absent.nii.gz")


def test_a_2d_image_is_refused(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.Image(64, 64, sitk.sitkInt16), str(path))
    with pytest.raises(InvalidImage, match="2D image"):
        read_image(path)
    single = tmp_path / "single.nrrd"
    sitk.WriteImage(sitk.Image(64, 64, 1, sitk.sitkInt16), str(single))
    with pytest.raises(InvalidImage, match="2D image"):
        read_image(single)


def test_nan_and_infinite_voxels_are_refused(tmp_path, tiny_case):
    image = read_image(tiny_case.t2fs)
    array = sitk.GetArrayFromImage(image)
    array[5, 40, 40] = np.nan
    array[6, 41, 41] = np.inf
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(image)
    path = tmp_path / "nan.nrrd"
    sitk.WriteImage(broken, str(path))
    with pytest.raises(InvalidImage, match=r"2 voxel\(s\) are NaN or infinite \(first in slice 5\)"):
        read_image(path)


def test_colour_and_4d_images_are_refused(tmp_path):
    rgb = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.Image([16, 16, 4], sitk.sitkVectorUInt8, 3), str(rgb))
    with pytest.raises(InvalidImage, match="3 values per voxel"):
        read_image(rgb)
    dynamic = tmp_path / "dynamic.nii.gz"
    sitk.WriteImage(sitk.Image([16, 16, 4, 5], sitk.sitkInt16), str(dynamic))
    with pytest.raises(InvalidImage, match="4D image with 5 volumes"):
        read_image(dynamic)


def test_the_cropped_seg_nrrd_and_the_labelmap_give_the_same_mask(tiny_case):
    reference = read_image(tiny_case.t2fs)
    from_seg = read_mask(tiny_case.seg, reference)
    from_label = read_mask(tiny_case.labelmap, reference)
    assert sitk.ReadImage(str(tiny_case.seg)).GetSize() != reference.GetSize()  # Slicer-style cropped file
    assert from_seg.GetSize() == reference.GetSize()
    assert np.allclose(from_seg.GetDirection(), reference.GetDirection())
    assert np.array_equal(sitk.GetArrayViewFromImage(from_seg), sitk.GetArrayViewFromImage(from_label))
    assert voxels(from_seg) > 0


def test_segments_are_chosen_by_name_id_or_case_insensitive_name(tiny_case):
    reference = read_image(tiny_case.t2fs)
    tumor = voxels(read_mask(tiny_case.seg, reference))
    assert voxels(read_mask(tiny_case.seg, reference, "Tumor")) == tumor
    assert voxels(read_mask(tiny_case.seg, reference, "Segment_1")) == tumor
    edema = read_mask(tiny_case.seg, reference, "peritumoral EDEMA")
    assert voxels(edema) > 0
    assert not np.any(sitk.GetArrayViewFromImage(edema) & sitk.GetArrayViewFromImage(read_mask(tiny_case.seg, reference)))
    with pytest.raises(InvalidImage, match="no segment 'Necrosis'; the file holds 'Tumor' \\(ID Segment_1\\), "
                                           "'Peritumoral edema'"):
        read_mask(tiny_case.seg, reference, "Necrosis")


def _reference_for_slicer_files():
    # The slicer_segmentation fixture writes RAS origin (10, 20, 30), spacing (1, 1, 2): LPS (-10, -20, 30).
    image = sitk.Image([20, 20, 10], sitk.sitkFloat32)
    image.SetSpacing((1.0, 1.0, 2.0))
    image.SetOrigin((-10.0, -20.0, 30.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    return image


def test_slicer_written_segments_sharing_a_layer_are_told_apart(tmp_path, slicer_segmentation):
    a = np.zeros((10, 20, 20), np.uint8)
    a[2:5, 3:8, 3:8] = 1
    b = np.zeros((10, 20, 20), np.uint8)
    b[6:9, 10:15, 10:16] = 1
    path = tmp_path / "two.seg.nrrd"
    slicer_segmentation(path, {"Tumor": a, "Edema": b})
    raw = sitk.ReadImage(str(path))
    assert raw.GetNumberOfComponentsPerPixel() == 1 and raw.GetMetaData("Segment1_Layer") == "0"
    reference = _reference_for_slicer_files()
    tumor, edema = read_mask(path, reference), read_mask(path, reference, "Edema")
    assert np.array_equal(sitk.GetArrayViewFromImage(tumor), a)
    assert np.array_equal(sitk.GetArrayViewFromImage(edema), b)


def test_slicer_written_overlapping_segments_in_a_4d_file_are_read_per_layer(tmp_path, slicer_segmentation):
    a = np.zeros((10, 20, 20), np.uint8)
    a[2:6, 3:10, 3:10] = 1
    b = np.zeros((10, 20, 20), np.uint8)
    b[4:8, 6:14, 6:14] = 1  # overlaps a: Slicer needs a second layer
    path = tmp_path / "layers.seg.nrrd"
    slicer_segmentation(path, {"Tumor": a, "Necrosis": b})
    assert sitk.ReadImage(str(path)).GetNumberOfComponentsPerPixel() == 2
    reference = _reference_for_slicer_files()
    assert np.array_equal(sitk.GetArrayViewFromImage(read_mask(path, reference, "Tumor")), a)
    assert np.array_equal(sitk.GetArrayViewFromImage(read_mask(path, reference, "Necrosis")), b)


def test_a_pre_4_11_slicer_file_without_layer_keys_uses_one_layer_per_segment(tmp_path, tiny_case):
    reference = read_image(tiny_case.t2fs)
    tumor = sitk.GetArrayFromImage(read_mask(tiny_case.seg, reference))
    edema = sitk.GetArrayFromImage(read_mask(tiny_case.seg, reference, "Peritumoral edema"))
    legacy = sitk.Compose(sitk.GetImageFromArray(tumor), sitk.GetImageFromArray(edema))
    legacy.CopyInformation(reference)
    for n, (segment_id, name) in enumerate((("Segment_1", "Tumor"), ("Segment_2", "Edema"))):
        legacy.SetMetaData(f"Segment{n}_ID", segment_id)
        legacy.SetMetaData(f"Segment{n}_Name", name)
    path = tmp_path / "legacy.seg.nrrd"
    sitk.WriteImage(legacy, str(path))
    assert np.array_equal(sitk.GetArrayFromImage(read_mask(path, reference, "Edema")), edema)
    assert np.array_equal(sitk.GetArrayFromImage(read_mask(path, reference)), tumor)


def test_a_labelmap_with_several_labels_needs_the_label_value(tmp_path, tiny_case):
    reference = read_image(tiny_case.t2fs)
    tumor = sitk.GetArrayFromImage(read_mask(tiny_case.seg, reference))
    edema = sitk.GetArrayFromImage(read_mask(tiny_case.seg, reference, "Peritumoral edema"))
    labels = sitk.GetImageFromArray((tumor * 3 + edema * 5).astype(np.uint8))
    labels.CopyInformation(reference)
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(labels, str(path))
    with pytest.raises(InvalidImage, match="labels 3, 5; choose the tumor's label with --segment"):
        read_mask(path, reference)
    assert np.array_equal(sitk.GetArrayFromImage(read_mask(path, reference, "3")), tumor)
    with pytest.raises(InvalidImage, match="label 4 is empty or absent; labels present: 3, 5"):
        read_mask(path, reference, "4")


def test_a_mask_on_a_finer_shifted_grid_is_resampled_by_nearest_neighbour(tiny_case):
    reference = read_image(tiny_case.t2fs)
    mask = read_mask(tiny_case.labelmap, reference)
    fine = sitk.Image([s * 2 for s in reference.GetSize()], sitk.sitkUInt8)
    fine.SetSpacing([s / 2 for s in reference.GetSpacing()])
    fine.SetDirection(reference.GetDirection())
    fine.SetOrigin(reference.TransformContinuousIndexToPhysicalPoint((-0.25, -0.25, -0.25)))
    fine = sitk.Resample(mask, fine, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    back = read_mask(_write(fine, tiny_case.labelmap.parent.parent / "fine_label.nrrd"), reference)
    assert back.GetSize() == reference.GetSize() and back.GetOrigin() == reference.GetOrigin()
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(mask))


def _write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def test_an_empty_mask_is_refused(tmp_path, tiny_case):
    reference = read_image(tiny_case.t2fs)
    empty = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(reference)
    with pytest.raises(InvalidImage, match="empty.nrrd: the mask is empty"):
        read_mask(_write(empty, tmp_path / "empty.nrrd"), reference)


def test_a_mask_outside_the_image_is_refused(tmp_path, tiny_case):
    reference = read_image(tiny_case.t2fs)
    moved = sitk.ReadImage(str(tiny_case.labelmap))
    moved.SetOrigin([o + 500.0 for o in moved.GetOrigin()])
    with pytest.raises(InvalidImage, match="lies entirely outside the MRI volume"):
        read_mask(_write(moved, tmp_path / "moved.nrrd"), reference)


def test_a_mask_on_another_grid_without_overlap_is_refused(tmp_path, tiny_case):
    reference = read_image(tiny_case.t2fs)
    other = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    other.SetSpacing((1.0, 1.0, 1.0))
    other.SetOrigin((300.0, 300.0, 300.0))
    other[10:20, 10:20, 10:20] = 1
    with pytest.raises(InvalidImage, match=r"no physical overlap.*size 40x40x40"):
        read_mask(_write(other, tmp_path / "other.nrrd"), reference)


def test_a_mask_partly_outside_is_kept_with_a_warning(tmp_path, tiny_case, caplog):
    reference = read_image(tiny_case.t2fs)
    mask = sitk.ReadImage(str(tiny_case.labelmap))
    shifted = sitk.Image(mask)
    index = np.argwhere(sitk.GetArrayViewFromImage(mask))  # (k, j, i)
    # Move the mask so that its bounding box straddles the image's first slice.
    shift_slices = int(index[:, 0].min()) + 3
    shifted.SetOrigin(mask.TransformContinuousIndexToPhysicalPoint((0, 0, -shift_slices)))
    with caplog.at_level(logging.WARNING):
        out = read_mask(_write(shifted, tmp_path / "partial.nrrd"), reference)
    assert 0 < voxels(out) < voxels(mask)
    assert "lies outside the MRI volume and is ignored" in caplog.text


def test_a_second_sequence_on_another_grid_is_resampled_onto_the_first(tmp_path, tiny_case):
    t2, t1 = read_image(tiny_case.t2fs), read_image(tiny_case.t1ce)
    mask = read_mask(tiny_case.labelmap, t2)
    coarse = sitk.Resample(t1, [48, 48, 16], sitk.Transform(), sitk.sitkLinear, t1.GetOrigin(),
                           [4.0, 4.0, 5.0], t1.GetDirection(), 0.0, sitk.sitkFloat32)
    aligned = align_sequence(coarse, t2, mask, name="T1CE sequence")
    assert aligned.GetSize() == t2.GetSize() and np.allclose(aligned.GetDirection(), t2.GetDirection())
    tumor = sitk.GetArrayViewFromImage(mask) > 0
    original, resampled = sitk.GetArrayViewFromImage(t1)[tumor], sitk.GetArrayViewFromImage(aligned)[tumor]
    assert np.corrcoef(original, resampled)[0, 1] > 0.7
    far = sitk.Image(t1)
    far.SetOrigin([o + 400.0 for o in t1.GetOrigin()])
    with pytest.raises(InvalidImage, match="covers 0% of the tumor"):
        align_sequence(far, t2, mask, name="T1CE sequence")


def test_read_case_fingerprints_inputs_by_content_not_name(dicom_case):
    case = read_case(dicom_case.t2fs, dicom_case.seg, dicom_case.t1ce)
    assert set(case.images) == {"t2fs", "t1ce"}
    assert case.fingerprints["t2fs"]["files"] == 16
    text = repr(case.fingerprints)
    assert str(dicom_case.t2fs.parent) not in text and "IM0001" not in text
    assert case.tumor_volume_ml() == pytest.approx(voxels(case.mask) * 2 * 2 * 5 / 1000)


def test_an_empty_segment_saved_by_slicer_is_refused_by_name(tmp_path, slicer_segmentation):
    tumor = np.zeros((10, 20, 20), np.uint8)
    tumor[2:5, 3:8, 3:8] = 1
    path = tmp_path / "with-empty.seg.nrrd"
    slicer_segmentation(path, {"Tumor": tumor, "Necrosis": np.zeros_like(tumor)})
    reference = _reference_for_slicer_files()
    with pytest.raises(InvalidImage, match="segment 'Necrosis' is empty"):
        read_mask(path, reference, "Necrosis")
    assert np.array_equal(sitk.GetArrayViewFromImage(read_mask(path, reference, "Tumor")), tumor)


def test_the_segment_table_keeps_slicers_extents(tiny_case):
    from sarcoma_risk.radiology.segments import read_segment_table

    raw = sitk.ReadImage(str(tiny_case.seg))
    segments = read_segment_table(raw, tiny_case.seg)
    assert [(s.name, s.label_value, s.layer) for s in segments] == [("Tumor", 1, 0), ("Peritumoral edema", 2, 0)]
    tumor = np.argwhere(sitk.GetArrayViewFromImage(raw) == 1)  # (k, j, i)
    i0, i1, j0, j1, k0, k1 = segments[0].extent
    assert (i0, j0, k0) == tuple(tumor.min(axis=0)[::-1]) and (i1, j1, k1) == tuple(tumor.max(axis=0)[::-1])
    assert not segments[0].recorded_empty
