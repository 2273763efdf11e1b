"""Reading slides with OpenSlide: resolution, level choice, patches, and slides that must be refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sarcoma_risk.errors import InvalidSlide
from sarcoma_risk.pathology.slide import open_slide


def test_a_phantom_svs_reports_its_resolution_and_pyramid(slide_cohort):
    with open_slide(slide_cohort.slide("PX-001")) as slide:
        assert slide.vendor == "aperio"
        assert slide.mpp == 0.5 and slide.mpp_source == "slide"
        assert slide.dimensions == (4000, 3000)
        assert slide.level_downsamples == pytest.approx([1.0, 4.0])


@pytest.mark.parametrize(("spacing", "patch_px", "size0", "level", "level_size"), [
    (0.5, 224, 224, 0, 224),  # native spacing: level 0, no resizing
    (1.0, 64, 128, 0, 128),  # between levels: read the finer level and shrink
    (2.0, 64, 256, 1, 64),  # exactly level 1
    (4.0, 32, 256, 1, 64),  # coarser than any level: the coarsest one, then shrink
])
def test_patches_are_read_from_the_best_level_for_the_target_spacing(slide_cohort, spacing, patch_px, size0, level,
                                                                      level_size):
    with open_slide(slide_cohort.slide("PX-001")) as slide:
        geometry = slide.patch_geometry(spacing, patch_px)
        assert (geometry.size0, geometry.level, geometry.level_size) == (size0, level, level_size)
        assert geometry.spacing_um == pytest.approx(spacing)
        patch = slide.read_patch(1024, 1024, geometry)
        assert patch.shape == (patch_px, patch_px, 3) and patch.dtype == np.uint8


def test_a_level_1_patch_matches_the_level_0_region_it_covers(slide_cohort):
    with open_slide(slide_cohort.slide("PX-003")) as slide:
        coarse = slide.read_patch(1536, 1280, slide.patch_geometry(2.0, 64)).astype(float)

        def level0_shrunk(x, y):
            return np.asarray(Image.fromarray(slide.read_rgb((x, y), 0, (256, 256))).reduce(4)).astype(float)

        aligned = np.abs(coarse - level0_shrunk(1536, 1280)).mean()
        shifted = np.abs(coarse - level0_shrunk(1536 + 24, 1280)).mean()
        assert aligned < 10 and aligned < 0.75 * shifted  # same place; only JPEG and filtering differ


@pytest.mark.parametrize("where", ["inside", "over the edge"])
def test_a_patch_is_openslides_region_composited_over_white_then_shrunk_bilinearly(slide_cohort, where):
    import openslide

    path = slide_cohort.slide("PX-002")
    x, y = (1024, 1024) if where == "inside" else (4000 - 60, 512)  # over the edge: partly transparent
    with open_slide(path) as slide:
        geometry = slide.patch_geometry(1.0, 64)  # 128 level-0 pixels read, shrunk to 64
        patch = slide.read_patch(x, y, geometry)
    with openslide.OpenSlide(str(path)) as raw:
        rgba = np.asarray(raw.read_region((x, y), 0, (128, 128))).astype(np.uint16)
    alpha = rgba[..., 3:]
    assert (alpha.min() < 255) == (where == "over the edge")
    white = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(white).resize((64, 64), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(patch, expected)


def test_a_slide_without_mpp_is_refused_unless_the_user_gives_it(odd_slides):
    with pytest.raises(InvalidSlide, match="--mpp") as info:
        open_slide(odd_slides["no_mpp"])
    assert "no-mpp.tif" in str(info.value)
    with open_slide(odd_slides["no_mpp"], mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "user" and slide.vendor == "generic-tiff"
    with pytest.raises(InvalidSlide, match="plausible"):
        open_slide(odd_slides["no_mpp"], mpp=-1)


@pytest.mark.parametrize(("name", "match"), [
    ("truncated", "truncated"),
    ("jpeg", "plain JPEG"),
])
def test_damaged_and_fake_slides_are_clear_errors(odd_slides, name, match):
    with pytest.raises(InvalidSlide, match=match) as info:
        open_slide(odd_slides[name])
    assert odd_slides[name].name in str(info.value)


def test_missing_empty_and_unknown_files_are_clear_errors(tmp_path):
    with pytest.raises(InvalidSlide, match="no such slide"):
        open_slide(tmp_path / "absent.svs")
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(InvalidSlide, match="empty"):
        open_slide(tmp_path / "empty.svs")
    (tmp_path / "notes.ndpi").write_text("not a slide")
    with pytest.raises(InvalidSlide, match="not one OpenSlide reads"):
        open_slide(tmp_path / "notes.ndpi")


def test_the_downsampled_overview_is_read_in_blocks_with_bounded_size(slide_cohort):
    with open_slide(slide_cohort.slide("PX-001")) as slide:
        whole = slide.read_downsampled(16)
        blocked = slide.read_downsampled(16, block=256)  # many small blocks: the same picture
        assert whole.shape == (188, 250, 3)
        assert np.abs(whole.astype(int) - blocked.astype(int)).mean() < 2
        thumb, downsample = slide.thumbnail(500)
        assert max(thumb.shape[:2]) == 500 and downsample == pytest.approx(8.0)


def test_an_mrxs_fingerprint_covers_its_data_folder(tmp_path):
    from sarcoma_risk.pathology.slide import slide_fingerprint

    (tmp_path / "s.mrxs").write_text("[GENERAL]\n")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "Data0000.dat").write_bytes(b"pixels")
    before = slide_fingerprint(tmp_path / "s.mrxs")
    (tmp_path / "s" / "Data0000.dat").write_bytes(b"other pixels")
    after = slide_fingerprint(tmp_path / "s.mrxs")
    assert before["sha256"] != after["sha256"] and after["files"] == 2
