"""Tissue detection, tumor regions and the patch grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely import contains_xy
from shapely.geometry import Polygon, box

from sarcoma_risk.errors import InvalidAnnotation, InvalidSlide
from sarcoma_risk.pathology.cache import CacheWriter, read_tile_cache
from sarcoma_risk.pathology.geojson import Classification, QuPathObject, read_geojson, write_geojson
from sarcoma_risk.pathology.outputs import write_tile_csv, write_tile_geojson
from sarcoma_risk.pathology.regions import read_tumor_region
from sarcoma_risk.pathology.slide import open_slide
from sarcoma_risk.pathology.tiling import plan_patches
from sarcoma_risk.pathology.tissue import detect_tissue, tissue_mask


def drawn_overview() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 200 x 200 overview at 8 um/px: a pink tissue disc crossed by blue and green pen, black dots, a speck."""
    yy, xx = np.mgrid[0:200, 0:200]
    rgb = np.full((200, 200, 3), 240, np.uint8)
    parts = {
        "tissue": (yy - 100) ** 2 + (xx - 100) ** 2 < 70 ** 2,
        "blue": (np.abs(xx - yy) < 6) & (yy > 20) & (yy < 180),
        "green": (np.abs(yy - 40) < 5) & (xx > 10) & (xx < 190),
        "black": (yy - 170) ** 2 + (xx - 170) ** 2 < 8 ** 2,
        "speck": (yy - 20) ** 2 + (xx - 180) ** 2 < 3 ** 2,  # a 50-um floater: under 200 x 200 um
    }
    rgb[parts["tissue"]] = (225, 120, 200)
    rgb[parts["tissue"] & (xx % 6 == 0) & (yy % 6 == 0)] = (110, 60, 150)  # nuclei
    rgb[parts["speck"]] = (225, 120, 200)
    rgb[parts["blue"]] = (40, 80, 200)
    rgb[parts["green"]] = (30, 150, 70)
    rgb[parts["black"]] = (35, 35, 40)
    return rgb, parts


def test_tissue_is_kept_and_glass_pen_ink_and_specks_are_not():
    rgb, parts = drawn_overview()
    mask = detect_tissue(rgb, spacing_um=8.0)
    ink = parts["blue"] | parts["green"] | parts["black"]
    assert not (mask & ink).any()
    assert not mask[parts["speck"]].any()
    assert not mask[~parts["tissue"]].any()
    clean_tissue = parts["tissue"] & ~np.pad(ink, 3)[3:-3, 3:-3]
    assert mask[clean_tissue].mean() > 0.9


def test_the_phantom_tissue_mask_matches_the_rendered_tissue(slide_cohort):
    case = "PX-001"  # no artefacts
    with open_slide(slide_cohort.slide(case)) as slide:
        mask = tissue_mask(slide)
    assert mask.spacing_um == pytest.approx(8.0)
    assert not mask.mask[0].any() and not mask.mask[-1].any()  # glass along the edges
    assert 0.7 < mask.area_mm2() < 1.3  # the renderer draws about 0.9-1 mm^2 of tissue on a tiny slide


def test_pen_strokes_on_a_phantom_slide_are_left_out(slide_cohort):
    with open_slide(slide_cohort.slide("PX-000")) as slide:  # artefacts=True
        mask = tissue_mask(slide)
        rgb = slide.read_downsampled(mask.downsample)
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    ink = (g > r + 30) | (b > r + 60) | (rgb.max(axis=2) < 60)
    assert ink.sum() > 100
    assert not (mask.mask & ink).any()


def test_annotation_restriction_keeps_only_patches_inside_and_respects_holes(slide_cohort):
    case = "PX-001"
    with open_slide(slide_cohort.slide(case)) as slide:
        tissue = tissue_mask(slide)
        region = read_tumor_region(slide_cohort.annotation(case), slide.dimensions)
        whole = plan_patches(slide, tissue, spacing_um=0.5, patch_px=224)
        inside = plan_patches(slide, tissue, spacing_um=0.5, patch_px=224, region=region)
    (tumor,) = read_geojson(slide_cohort.annotation(case))
    hole = Polygon(tumor.geometry.interiors[0])
    assert 0 < len(inside) < len(whole)
    assert inside.restricted_to_annotation and not whole.restricted_to_annotation
    assert contains_xy(tumor.geometry, inside.centres[:, 0], inside.centres[:, 1]).all()
    assert not contains_xy(hole, inside.centres[:, 0], inside.centres[:, 1]).any()
    assert contains_xy(hole, whole.centres[:, 0], whole.centres[:, 1]).any()  # the hole has tissue patches
    assert tissue.contains(inside.centres[:, 0], inside.centres[:, 1]).all()


def test_coordinates_round_trip_to_level_0_exactly(slide_cohort, tmp_path):
    with open_slide(slide_cohort.slide("PX-001")) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=2.0, patch_px=64)
        geometry = grid.geometry
        assert grid.coords.dtype == np.int64 and (grid.coords % geometry.size0 == 0).all()
        probs = np.linspace(0, 1, len(grid)).astype(np.float32)
        with CacheWriter(tmp_path / "c.h5", grid.coords, geometry, mpp=0.5, slide_sha256="s", model_sha256="m",
                         precision="fp32", region_sha256=None, tissue_area_mm2=1.0, key="k") as writer:
            writer.write(0, probs)
            writer.commit()
        cached = read_tile_cache(tmp_path / "c.h5", model_sha256="m")
        np.testing.assert_array_equal(cached.coords, grid.coords)
        assert cached.geometry == geometry
        write_tile_csv(tmp_path / "t.csv", cached)
        table = np.loadtxt(tmp_path / "t.csv", delimiter=",", skiprows=1)
        np.testing.assert_array_equal(table[:, :2].astype(np.int64), grid.coords)
        assert (table[:, 2:4] == geometry.size0).all()
        write_tile_geojson(tmp_path / "t.geojson", cached)
        corners = np.array([[o.geometry.bounds[0], o.geometry.bounds[1]] for o in read_geojson(tmp_path / "t.geojson")])
        np.testing.assert_array_equal(corners.astype(np.int64), grid.coords)
        # the pixels at a level-0 coordinate are the patch's pixels: read at level 0 they are identical
        x, y = (int(v) for v in grid.coords[len(grid) // 2])
        native = slide.patch_geometry(0.5, 224)
        np.testing.assert_array_equal(slide.read_patch(x, y, native), slide.read_rgb((x, y), 0, (224, 224)))


def test_an_annotation_outside_the_slide_is_a_clear_error(tmp_path, slide_cohort):
    path = write_geojson(tmp_path / "elsewhere.geojson",
                         [QuPathObject(box(50_000, 50_000, 52_000, 51_000), classification=Classification("Tumor", (200, 0, 0)))])
    with pytest.raises(InvalidAnnotation, match="outside the slide") as info:
        read_tumor_region(path, (4000, 3000))
    assert "elsewhere.geojson" in str(info.value)


def test_annotations_of_other_classes_and_malformed_files_are_refused(tmp_path):
    path = write_geojson(tmp_path / "stroma.geojson",
                         [QuPathObject(box(0, 0, 100, 100), classification=Classification("Stroma", (0, 200, 0)))])
    with pytest.raises(InvalidAnnotation, match="no annotation of class 'Tumor'.*classes found: 'Stroma'"):
        read_tumor_region(path, (4000, 3000))
    (tmp_path / "broken.geojson").write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"')
    with pytest.raises(InvalidAnnotation, match="not valid JSON"):
        read_tumor_region(tmp_path / "broken.geojson", (4000, 3000))


def test_unclassified_annotations_count_as_the_tumor_and_are_clipped_to_the_slide(tmp_path):
    data = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[3000, 0], [5000, 0], [5000, 1000],
                                                                               [3000, 1000], [3000, 0]]]},
         "properties": {"objectType": "annotation"}}]}
    (tmp_path / "loose.geojson").write_text(json.dumps(data))
    region = read_tumor_region(tmp_path / "loose.geojson", (4000, 3000))
    assert region.geometry.bounds == (3000, 0, 4000, 1000)


def test_a_slide_without_tissue_is_refused(odd_slides):
    with open_slide(odd_slides["blank"]) as slide:
        with pytest.raises(InvalidSlide, match="no tissue") as info:
            plan_patches(slide, tissue_mask(slide))
    assert "blank.svs" in str(info.value)


@pytest.mark.parametrize("shape, size, threshold", [((300, 411), 7, 15), ((64, 5), 7, 100), ((9, 9), 7, 3),
                                                    ((50, 60), 5, 128)])
def test_the_counting_median_threshold_equals_pillows_median_filter_then_threshold(shape, size, threshold):
    from PIL import Image, ImageFilter

    from sarcoma_risk.pathology.tissue import median_above

    rng = np.random.default_rng(size + threshold)
    image = rng.integers(0, 255, shape, dtype=np.uint8)
    image[: shape[0] // 2] //= 8  # a dim half, so the threshold cuts through real structure
    expected = np.asarray(Image.fromarray(image).filter(ImageFilter.MedianFilter(size))) > threshold
    np.testing.assert_array_equal(median_above(image, size, threshold), expected)


def test_the_heatmap_colours_scored_tiles_over_the_thumbnail_and_adds_a_colour_bar():
    from sarcoma_risk.pathology.cache import TileScores
    from sarcoma_risk.pathology.outputs import HEAT_ALPHA, heatmap_image, inferno_lut
    from sarcoma_risk.pathology.slide import PatchGeometry

    thumbnail = np.full((200, 300, 3), 100, np.uint8)
    tiles = TileScores(np.array([[0, 0], [400, 0]]), np.array([1.0, 0.0], np.float32),
                       PatchGeometry(400, 0, 400, 100, 1.0), 0.5, "s" * 64, "m" * 64, "fp32", None, 1.0)
    image = heatmap_image(thumbnail, 4.0, tiles)  # a tile is 100 thumbnail pixels wide
    canvas = np.asarray(image.convert("RGB")).astype(int)
    assert image.size[0] > 300 and image.size[1] > 200  # room for the colour bar and the title
    top = next(y for y in range(canvas.shape[0]) if (canvas[y, 250] == 100).all())  # the untouched grey
    lut = inferno_lut().astype(float)
    hot, cold = canvas[top + 50, 50], canvas[top + 50, 150]
    np.testing.assert_allclose(hot, np.round((1 - HEAT_ALPHA) * 100 + HEAT_ALPHA * lut[255]), atol=1)
    np.testing.assert_allclose(cold, np.round((1 - HEAT_ALPHA) * 100 + HEAT_ALPHA * lut[0]), atol=1)
    np.testing.assert_array_equal(canvas[top + 50, 250], [100, 100, 100])  # no tile there
    bar = canvas[top:top + 200, 300:]
    assert (np.abs(bar - lut[255]).sum(axis=-1) < 20).any() and (np.abs(bar - lut[0]).sum(axis=-1) < 20).any()
