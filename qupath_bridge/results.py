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
from typing import Any, Iterable, Sequence

from sarcoma_risk.errors import InvalidAnnotation
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES, classes_found, describe, matches
from sarcoma_risk.pathology.geojson import ObjectType, QuPathObject
from sarcoma_risk.pathology.outputs import MEASUREMENT, tile_objects as pathology_tiles

#: Name given to every tile SarcomaRisk writes (the marker that identifies them in a later run).
TILE_NAME = "SarcomaRisk"
#: Annotations of this class (or a derived class such as "Tumor: Positive") restrict tiling unless
#: other classes are given (``--annotation-class``, or the project's default: :mod:`.projectsettings`).
TUMOR_CLASS = DEFAULT_TUMOR_CLASSES[0]

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


def is_tumor_class(name: str | None, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> bool:
    """Whether a QuPath class name is one of ``classes`` or derived from one ("Tumor: Positive" from "Tumor").

    Matched as QuPath names classes, letter case included (:mod:`sarcoma_risk.pathology.classes`).
    """
    return matches(name, classes)


def _classified_areas(objects: Iterable[QuPathObject]) -> list[QuPathObject]:
    return [o for o in objects if o.object_type is ObjectType.ANNOTATION and o.classification is not None
            and o.geometry.area > 0]


def tumor_annotations(objects: Iterable[QuPathObject],
                      classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> list[QuPathObject]:
    """The annotations of ``classes`` (or derived from them) that have an area (points and lines cannot
    restrict tiling).

    In a project, unclassified annotations are left out: they may mark anything (a region to
    ignore, a note), and only the pathologist's tumor outline should restrict the scoring.
    """
    return [o for o in _classified_areas(objects) if is_tumor_class(o.classification.name, classes)]


def choose_tumor_annotations(objects: Iterable[QuPathObject], classes: Sequence[str], where: str) -> list[QuPathObject]:
    """:func:`tumor_annotations`, refusing an image whose classified area annotations are all of other classes.

    Scoring the whole tissue there would hide a tumor outline of a class nobody named ("Tumour",
    "Region*"), so the error lists the classes found. An image without any classified area
    annotation gives an empty list: the whole tissue is scored, and the result says so.
    """
    objects = list(objects)
    chosen = tumor_annotations(objects, classes)
    others = _classified_areas(objects)
    if not chosen and others:
        raise InvalidAnnotation(
            f"{where}: no annotation of class {describe(classes)} (or a class derived from it) with an area; "
            f"annotation classes found: {classes_found(o.classification.name for o in others)}. Name the tumor's "
            "class with --annotation-class NAME (repeatable, exactly as QuPath shows it), or set it once for the "
            "project with: sarcoma-qupath settings PROJECT_DIR --annotation-class NAME")
    return chosen


def tile_objects(tiles: Any) -> list[QuPathObject]:
    """SarcomaRisk tiles for a :class:`~sarcoma_risk.pathology.cache.TileScores` (named :data:`TILE_NAME`)."""

    return [dataclasses.replace(obj, name=TILE_NAME) for obj in pathology_tiles(tiles)]


def region_description(n_annotations: int, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> str:
    """What was scored, in words for the project list."""
    names = " or ".join(classes)
    if n_annotations:
        return f"{names} annotation ({n_annotations} region{'s' if n_annotations != 1 else ''})"
    return f"whole tissue (no {names} annotation)"


def image_metadata(*, score: float, mean_probability: float, n_tiles: int, n_annotations: int,
                   model: str, scored_utc: str, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> dict[str, str]:
    """The project metadata of a scored image (all values text, as QuPath stores them).

    ``score`` is the slide signature score (log relative hazard; higher = riskier). It may be
    negative, so it does not sort as text; ``sarcoma_risk_mean_probability`` (0-1, three
    decimals) does, for sorting the project list by risk.
    """
    return {
        METADATA_KEYS["score"]: f"{score:.3f}",
        METADATA_KEYS["probability"]: f"{mean_probability:.3f}",
        METADATA_KEYS["tiles"]: str(int(n_tiles)),
        METADATA_KEYS["region"]: region_description(n_annotations, classes),
        METADATA_KEYS["model"]: model,
        METADATA_KEYS["date"]: scored_utc,
    }
