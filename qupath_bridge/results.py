"""What the bridge puts into QuPath: tiles with ``recurrence_probability``, and image metadata.

Tiles are QuPath *tile* objects (read-only results, cheap in the millions), locked, without a
classification, with one measurement ``recurrence_probability``: Measure > Show measurement maps
then shows the heatmap, as for WSInfer's tiles. Each carries the name :data:`TILE_NAME`, which is
how a later run recognises its own tiles and replaces them while leaving everything else (the
pathologist's annotations, cell detections, other tools' tiles) alone: a tile is SarcomaRisk's only
when it is a tile, is named :data:`TILE_NAME` *and* has the measurement.

The slide-level result goes into the image's project metadata, whose values QuPath keeps as text
and can sort the project list by (File > Project... > Sort by, or the metadata columns of
Measure > Export measurements). Keys are listed in :data:`METADATA_KEYS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from sarcoma_risk.pathology.geojson import ObjectType, QuPathObject
from sarcoma_risk.pathology.outputs import MEASUREMENT

#: Name given to every tile SarcomaRisk writes (the marker that identifies them in a later run).
TILE_NAME = "SarcomaRisk"
#: Annotations of this class (or a derived class such as "Tumor: Positive") restrict tiling.
TUMOR_CLASS = "Tumor"

METADATA_KEYS = {
    "score": "sarcoma_risk_score",  # slide signature score: log relative hazard, higher = riskier
    "probability": "sarcoma_risk_mean_probability",  # mean tile P(recurrence), 0-1: sorts as text
    "tiles": "sarcoma_risk_tiles",
    "region": "sarcoma_risk_region",
    "model": "sarcoma_risk_model",
    "date": "sarcoma_risk_date",
}


def is_sarcoma_risk_tile(object_type: ObjectType | str, name: str | None, measurement_names: Iterable[str]) -> bool:
    """Whether an object in a QuPath hierarchy is a tile an earlier SarcomaRisk run wrote."""
    return (ObjectType(object_type) is ObjectType.TILE and name == TILE_NAME
            and MEASUREMENT in set(measurement_names))


def split_objects(objects: Iterable[QuPathObject]) -> tuple[list[QuPathObject], list[QuPathObject]]:
    """(SarcomaRisk tiles, everything else) of a list of objects."""
    ours: list[QuPathObject] = []
    others: list[QuPathObject] = []
    for obj in objects:
        (ours if is_sarcoma_risk_tile(obj.object_type, obj.name, obj.measurements) else others).append(obj)
    return ours, others


def is_tumor_class(name: str | None) -> bool:
    """Whether a QuPath class name is "Tumor" or derived from it ("Tumor: Positive"), in any case."""
    return name is not None and name.split(":")[0].strip().lower() == TUMOR_CLASS.lower()


def tumor_annotations(objects: Iterable[QuPathObject]) -> list[QuPathObject]:
    """The annotations of class Tumor that have an area (points and lines cannot restrict tiling).

    In a project, unclassified annotations are left out: they may mark anything (a region to
    ignore, a note), and only the pathologist's Tumor outline should restrict the scoring.
    """
    return [o for o in objects
            if o.object_type is ObjectType.ANNOTATION and o.classification is not None
            and is_tumor_class(o.classification.name) and o.geometry.area > 0]


def tile_objects(tiles: Any) -> list[QuPathObject]:
    """SarcomaRisk tiles for a :class:`~sarcoma_risk.pathology.cache.TileScores` (named :data:`TILE_NAME`)."""
    from sarcoma_risk.pathology.outputs import tile_objects as pathology_tiles

    return [dataclasses.replace(obj, name=TILE_NAME) for obj in pathology_tiles(tiles)]


def region_description(n_annotations: int) -> str:
    """What was scored, in words for the project list."""
    if n_annotations:
        return f"{TUMOR_CLASS} annotation ({n_annotations} region{'s' if n_annotations != 1 else ''})"
    return f"whole tissue (no {TUMOR_CLASS} annotation)"


def image_metadata(*, score: float, mean_probability: float, n_tiles: int, n_annotations: int,
                   model: str, scored_utc: str) -> dict[str, str]:
    """The project metadata of a scored image (all values text, as QuPath stores them).

    ``score`` is the slide signature score (log relative hazard; higher = riskier). It may be
    negative, so it does not sort as text; ``sarcoma_risk_mean_probability`` (0-1, three
    decimals) does, for sorting the project list by risk.
    """
    return {
        METADATA_KEYS["score"]: f"{score:.3f}",
        METADATA_KEYS["probability"]: f"{mean_probability:.3f}",
        METADATA_KEYS["tiles"]: str(int(n_tiles)),
        METADATA_KEYS["region"]: region_description(n_annotations),
        METADATA_KEYS["model"]: model,
        METADATA_KEYS["date"]: scored_utc,
    }
