"""The tumor region of a slide, from a QuPath GeoJSON annotation file, in level-0 pixels.

Which objects count: annotations of the wanted classes (``--annotation-class``, default "Tumor"),
matched as QuPath names classes: exactly, letter case included, and classes derived from a wanted
one count too ("Tumor" takes "Tumor: Positive"; see :mod:`sarcoma_risk.pathology.classes`). A file
whose annotations carry no class at all is taken as the pathologist's outline of the tumor, every
polygon of it. Points and lines have no area and are ignored; detections and tiles are results, not
regions, and are ignored too. Polygons may have holes (left out of the region) and may be
multipolygons; self-intersecting outlines are repaired with shapely's ``make_valid``. The union
must overlap the slide; what lies outside the slide is cut off with a warning.

The region's ``sha256`` names it in tile caches and the case record: the file's sha256 for the
default class, and a sha256 over the file's and the wanted class names otherwise (one file may hold
the outlines of several classes, each a different region).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import shapely
from shapely.geometry import box
from shapely.ops import unary_union

from sarcoma_risk.errors import InvalidAnnotation
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES, check_class_names, classes_found, describe, matches
from sarcoma_risk.pathology.geojson import ObjectType, read_geojson
from sarcoma_risk.provenance import sha256_bytes, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TumorRegion:
    """A (multi)polygon in level-0 pixels, its sha256 (module docstring), how many annotations made it
    and the wanted class names."""

    geometry: Any  # shapely Polygon or MultiPolygon, prepared for fast point tests
    sha256: str
    n_annotations: int
    classes: tuple[str, ...] = DEFAULT_TUMOR_CLASSES

    def contains(self, x, y):
        """Whether level-0 points lie inside the region (holes excluded)."""

        return shapely.contains_xy(self.geometry, x, y)


def region_sha256(file_sha256: str, classes: Sequence[str]) -> str:
    """The sha256 naming the region of the wanted ``classes`` in a file (the file's own for the default)."""
    classes = check_class_names(classes)
    if classes == DEFAULT_TUMOR_CLASSES:
        return file_sha256
    return sha256_bytes(("\n".join((file_sha256, *classes))).encode())


def read_tumor_region(path: str | Path, slide_size: tuple[int, int], *,
                      classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> TumorRegion:
    """Read the tumor region of a slide of ``slide_size`` (level-0 width, height) from QuPath GeoJSON.

    ``classes`` are the wanted QuPath class names (see :mod:`sarcoma_risk.pathology.classes`).
    """

    path, classes = Path(path), check_class_names(classes)
    objects = read_geojson(path)
    annotations = [o for o in objects if o.object_type is ObjectType.ANNOTATION]
    classified = [o for o in annotations if o.classification is not None]
    chosen = [o for o in classified if matches(o.classification.name, classes)] if classified else annotations
    polygons = []
    for obj in chosen:
        geometry = obj.geometry if obj.geometry.is_valid else shapely.make_valid(obj.geometry)
        parts = getattr(geometry, "geoms", [geometry])
        polygons.extend(p for p in parts if p.geom_type in ("Polygon", "MultiPolygon") and p.area > 0)
    if not polygons:
        found = (f"annotation classes found: {classes_found(o.classification.name for o in classified)}"
                 if classified else f"{len(annotations)} annotation(s)")
        raise InvalidAnnotation(
            f"{path}: no annotation of class {describe(classes)} (or a class derived from it) with an area ({found}; "
            f"{len(objects)} object(s) in all); name the tumor's class with --annotation-class NAME (repeatable, "
            "exactly as QuPath shows it), or score without --annotations")
    region = unary_union(polygons)
    width, height = slide_size
    bounds = box(0, 0, width, height)
    if not region.intersects(bounds) or region.intersection(bounds).area == 0:
        minx, miny, maxx, maxy = (round(v) for v in region.bounds)
        raise InvalidAnnotation(
            f"{path}: the tumor annotation ({minx},{miny})-({maxx},{maxy}) lies outside the slide "
            f"(0,0)-({width},{height}) in level-0 pixels; was it drawn on another slide or exported "
            "at another resolution?")
    if not region.within(bounds):
        share = 1 - region.intersection(bounds).area / region.area
        log.warning("%s: %.1f%% of the tumor annotation lies outside the slide and is ignored", path.name, 100 * share)
        region = region.intersection(bounds)
    shapely.prepare(region)
    return TumorRegion(region, region_sha256(sha256_file(path), classes), len(chosen), classes)
