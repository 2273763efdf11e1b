"""The phantom slide renderer: what OpenSlide reads, determinism, phenotype, centres, artefacts."""

from __future__ import annotations

import hashlib

import numpy as np
import openslide
import pytest
from scipy.stats import spearmanr
from shapely import contains_xy

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.pathology.geojson import ObjectType, read_geojson
from sarcoma_risk.synthetic.wsi import SIZES, write_phantom_slide


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_openslide_reads_an_aperio_pyramid_with_mpp_and_objective_power(tmp_path):
    rendered = write_phantom_slide(tmp_path / "a.svs", phenotype=0.0, centre="A", size="tiny", seed=1)
    slide = openslide.OpenSlide(rendered.slide)
    assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == "aperio"
    assert slide.dimensions == SIZES["tiny"]
    assert slide.level_count == 2
    assert slide.level_downsamples == pytest.approx((1.0, 4.0))
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == 0.5
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_Y]) == 0.5
    assert slide.properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER] == "20"
    assert "thumbnail" in slide.associated_images
    corner = np.asarray(slide.read_region((0, 0), 0, (64, 64)).convert("RGB"))
    assert corner.mean() > 215  # bright glass around the tissue islands
    assert rendered.stats["level_downsamples"] == [1.0, 4.0]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path):
    kwargs = dict(phenotype=0.3, centre="B", size="tiny", artefacts=True)
    first = write_phantom_slide(tmp_path / "1.svs", seed=7, **kwargs)
    again = write_phantom_slide(tmp_path / "2.svs", seed=7, **kwargs)
    other = write_phantom_slide(tmp_path / "3.svs", seed=8, **kwargs)
    assert sha(first.slide) == sha(again.slide) != sha(other.slide)
    assert sha(first.annotation) == sha(again.annotation)
    assert first.stats == {**again.stats}


def test_tumor_nuclei_rise_monotonically_with_the_phenotype_for_a_fixed_seed(tmp_path):
    stats = [write_phantom_slide(tmp_path / f"p{i}.svs", phenotype=z, centre="A", size="tiny", seed=3).stats
             for i, z in enumerate((-2.0, -1.0, 0.0, 1.0, 2.0))]
    for key in ("nuclear_density_per_mm2", "mean_nuclear_radius_um", "nuclear_radius_cv"):
        values = [s[key] for s in stats]
        assert all(a < b for a, b in zip(values, values[1:])), (key, values)
    assert stats[-1]["nuclear_density_per_mm2"] > 2 * stats[0]["nuclear_density_per_mm2"]


def _dark_fraction_in_tumor(rendered) -> float:
    """Share of dark (nuclear) pixels inside the annotation, measured on the slide OpenSlide reads."""
    slide = openslide.OpenSlide(rendered.slide)
    (tumor,) = read_geojson(rendered.annotation)
    minx, miny, maxx, maxy = (int(v) for v in tumor.geometry.bounds)
    rgb = np.asarray(slide.read_region((minx, miny), 0, (maxx - minx, maxy - miny)).convert("RGB"))
    ys, xs = np.mgrid[miny:maxy:4, minx:maxx:4]
    inside = contains_xy(tumor.geometry, xs + 0.5, ys + 0.5)
    pixels = rgb[::4, ::4][inside]
    return float((pixels.min(axis=1) < 110).mean())


def test_an_image_statistic_tracks_the_phenotype_across_seeds(tmp_path):
    phenotypes = [-1.8, -1.1, -0.5, 0.0, 0.4, 1.0, 1.5, 2.1]
    measured = []
    for i, z in enumerate(phenotypes):
        rendered = write_phantom_slide(tmp_path / f"s{i}.svs", phenotype=z, centre="A", size="tiny", seed=100 + i)
        measured.append(_dark_fraction_in_tumor(rendered))
    rho = spearmanr(phenotypes, measured).statistic
    assert rho > 0.9, (rho, measured)


def test_centre_b_stains_in_another_colour(tmp_path):
    def tissue_colour(centre):
        rendered = write_phantom_slide(tmp_path / f"{centre}.svs", phenotype=0.0, centre=centre, size="tiny", seed=4)
        rgb = np.asarray(openslide.OpenSlide(rendered.slide).read_region((0, 0), 1, (1000, 750)).convert("RGB"))
        tissue = rgb.min(axis=2) < 200
        return rgb[tissue].mean(axis=0)

    a, b = tissue_colour("A"), tissue_colour("B")
    assert np.abs(a - b).max() > 15, (a, b)


def test_artefacts_add_saturated_pen_strokes(tmp_path):
    def blue_pen_pixels(artefacts):
        rendered = write_phantom_slide(tmp_path / f"{artefacts}.svs", phenotype=0.0, centre="A", size="tiny",
                                       seed=11, artefacts=artefacts)
        rgb = np.asarray(openslide.OpenSlide(rendered.slide).read_region((0, 0), 1, (1000, 750)).convert("RGB"))
        r, g, b = (rgb[..., i].astype(int) for i in range(3))
        return int(((b > r + 80) & (b > g + 60)).sum() + ((g > r + 60) & (g > b + 40)).sum()), rendered

    clean, _ = blue_pen_pixels(False)
    marked, rendered = blue_pen_pixels(True)
    assert clean == 0
    assert marked > 1000 and rendered.stats["pen_area_mm2"] > 0


def test_the_tumor_annotation_is_a_classified_polygon_with_a_hole_inside_the_slide(tmp_path):
    rendered = write_phantom_slide(tmp_path / "t.svs", phenotype=0.0, centre="A", size="tiny", seed=2)
    (tumor,) = read_geojson(rendered.annotation)
    assert rendered.annotation == tmp_path / "t.geojson"
    assert tumor.object_type is ObjectType.ANNOTATION
    assert tumor.classification.name == "Tumor" and tumor.classification.color == (200, 0, 0)
    assert tumor.geometry.geom_type == "Polygon" and len(tumor.geometry.interiors) == 1
    minx, miny, maxx, maxy = tumor.geometry.bounds
    width, height = SIZES["tiny"]
    assert 0 <= minx < maxx < width and 0 <= miny < maxy < height
    area_mm2 = tumor.geometry.area * 0.5 ** 2 / 1e6
    assert 0.1 < area_mm2 < rendered.stats["tissue_area_mm2"]  # part of the tissue, not all of it


def test_without_annotation_no_geojson_is_written(tmp_path):
    rendered = write_phantom_slide(tmp_path / "n.svs", phenotype=0.0, centre="A", size="tiny", seed=2,
                                   annotate=False)
    assert rendered.annotation is None
    assert not (tmp_path / "n.geojson").exists()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": "huge"}, "size: 'huge'"),
    ({"centre": ""}, "centre"),
    ({"phenotype": float("nan")}, "phenotype"),
])
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, match):
    args = dict(phenotype=0.0, centre="A", size="tiny", seed=1) | kwargs
    with pytest.raises(InvalidInput, match=match):
        write_phantom_slide(tmp_path / "x.svs", **args)
    with pytest.raises(InvalidInput, match=".svs"):
        write_phantom_slide(tmp_path / "x.tif", phenotype=0.0, centre="A", size="tiny", seed=1)
