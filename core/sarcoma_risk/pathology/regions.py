"""The tumor region of a slide, from a QuPath GeoJSON annotation file, in level-0 pixels.

Which objects count: annotations whose class is "Tumor" (any case, derived classes such as
"Tumor: Positive" included). A file whose annotations carry no class at all is taken as the
pathologist's outline of the tumor, every polygon of it. Points and lines have no area and are
ignored; detections and tiles are results, not regions, and are ignored too. Polygons may have
holes (left out of the region) and may be multipolygons; self-intersecting outlines are repaired
with shapely's ``make_valid``. The union must overlap the slide; what lies outside the slide is cut
off with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarcoma_risk.errors import InvalidAnnotation
from sarcoma_risk.provenance import sha256_file

log = logging.getLogger(__name__)

TUMOR_CLASS = "Tumor"


@dataclass(frozen=True)
class TumorRegion:
    """A (multi)polygon in level-0 pixels, the file's sha256 and how many annotations made it."""

    geometry: Any  # shapely Polygon or MultiPolygon, prepared for fast point tests
    sha256: str
    n_annotations: int

    def contains(self, x, y):
        """Whether level-0 points lie inside the region (holes excluded)."""
        import shapely

        return shapely.contains_xy(self.geometry, x, y)


def _is_tumor(name: str | None, tumor_class: str) -> bool:
    return name is not None and name.split(":")[0].strip().lower() == tumor_class.lower()


def read_tumor_region(path: str | Path, slide_size: tuple[int, int], *,
                      tumor_class: str = TUMOR_CLASS) -> TumorRegion:
    """Read the tumor region of a slide of ``slide_size`` (level-0 width, height) from QuPath GeoJSON."""
    import shapely
    from shapely.geometry import box
    from shapely.ops import unary_union

    from sarcoma_risk.pathology.geojson import ObjectType, read_geojson

    path = Path(path)
    objects = read_geojson(path)
    annotations = [o for o in objects if o.object_type is ObjectType.ANNOTATION]
    classified = [o for o in annotations if o.classification is not None]
    chosen = ([o for o in classified if _is_tumor(o.classification.name, tumor_class)] if classified
              else annotations)
    polygons = []
    for obj in chosen:
        geometry = obj.geometry if obj.geometry.is_valid else shapely.make_valid(obj.geometry)
        parts = getattr(geometry, "geoms", [geometry])
        polygons.extend(p for p in parts if p.geom_type in ("Polygon", "MultiPolygon") and p.area > 0)
    if not polygons:
        classes = sorted({o.classification.name for o in classified})
        found = f"annotation classes found: {', '.join(classes)}" if classes else f"{len(annotations)} annotation(s)"
        raise InvalidAnnotation(
            f"{path}: no {tumor_class!r} annotation with an area ({found}, {len(objects)} object(s) in all); "
            f"draw the tumor as a polygon annotation of class {tumor_class!r}, or score without --annotations")
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
    return TumorRegion(region, sha256_file(path), len(chosen))
