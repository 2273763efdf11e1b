"""What the bridge writes into QuPath: SarcomaRisk tiles (and only those replaced later), Tumor regions, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapely.geometry import Point, box

from qupath_bridge.results import (
    METADATA_KEYS,
    MEASUREMENT,
    TILE_NAME,
    image_metadata,
    is_sarcoma_risk_tile,
    region_description,
    split_objects,
    tile_objects,
    tumor_annotations,
)
from sarcoma_risk.pathology.geojson import Classification, ObjectType, QuPathObject, dumps, parse_geojson

TUMOR = Classification("Tumor", (200, 0, 0))


def test_tiles_of_a_scored_slide_are_locked_named_unclassified_tiles_with_the_probability(scored_slide):
    tiles = tile_objects(scored_slide.tiles)
    size = scored_slide.tiles.geometry.size0
    assert len(tiles) == len(scored_slide.tiles) > 10
    for obj, (x, y), p in zip(tiles, scored_slide.tiles.coords.tolist(), scored_slide.tiles.probabilities.tolist()):
        assert obj.object_type is ObjectType.TILE and obj.is_locked and obj.classification is None
        assert obj.name == TILE_NAME
        assert obj.geometry.bounds == (x, y, x + size, y + size)
        assert obj.measurements == {MEASUREMENT: pytest.approx(p, abs=1e-6)}
        assert is_sarcoma_risk_tile(obj.object_type, obj.name, obj.measurements)
    probabilities = [t.measurements[MEASUREMENT] for t in tiles]
    assert 0.0 <= min(probabilities) < max(probabilities) <= 1.0  # the tiny model does tell tiles apart
    features = json.loads(dumps(tiles))["features"]
    assert {f["properties"]["objectType"] for f in features} == {"tile"}
    assert all(f["properties"]["isLocked"] is True and "classification" not in f["properties"] for f in features)
    assert len({f["id"] for f in features}) == len(features)  # one stable UUID per tile


def test_only_sarcoma_risk_tiles_are_taken_for_earlier_results():
    ours = QuPathObject(box(0, 0, 10, 10), ObjectType.TILE, name=TILE_NAME, measurements={MEASUREMENT: 0.4})
    keep = [
        QuPathObject(box(0, 0, 10, 10), ObjectType.ANNOTATION, TUMOR, name=TILE_NAME),  # the pathologist's
        QuPathObject(box(0, 0, 10, 10), ObjectType.TILE, measurements={"prob_tumor": 0.9}),  # another tool's tile
        QuPathObject(box(0, 0, 10, 10), ObjectType.TILE, name=TILE_NAME),  # named so, but no measurement
        QuPathObject(box(0, 0, 10, 10), ObjectType.TILE, name="mine", measurements={MEASUREMENT: 0.1}),
        QuPathObject(box(0, 0, 10, 10), ObjectType.DETECTION, name=TILE_NAME, measurements={MEASUREMENT: 0.1}),
        QuPathObject(box(0, 0, 10, 10), ObjectType.CELL, nucleus_geometry=box(2, 2, 4, 4)),
    ]
    found, others = split_objects([keep[0], ours, *keep[1:]])
    assert found == [ours]
    assert others == keep


def test_tumor_annotations_are_those_of_class_tumor_or_derived_from_it_with_an_area():
    objects = parse_geojson([
        {"type": "Feature", "geometry": box(0, 0, 10, 10).__geo_interface__,
         "properties": {"objectType": "annotation", "classification": {"name": name, "color": [1, 2, 3]}}}
        for name in ("Tumor", "tumor", "Tumor: Positive", "Stroma", "Tumour")])
    objects += [QuPathObject(box(0, 0, 5, 5)),  # unclassified: could mark anything
                QuPathObject(Point(3, 3), classification=TUMOR),  # no area
                QuPathObject(box(0, 0, 5, 5), ObjectType.DETECTION, TUMOR)]  # a result, not a region
    chosen = tumor_annotations(objects)
    # As QuPath names classes: "tumor" is another class, "Tumor: Positive" is derived from Tumor.
    assert [o.classification.name for o in chosen] == ["Tumor", "Tumor: Positive"]
    assert [o.classification.name for o in tumor_annotations(objects, ["Tumour", "tumor"])] == ["tumor", "Tumour"]


def test_metadata_are_text_that_says_what_was_scored():
    metadata = image_metadata(score=-0.41234, mean_probability=0.61789, n_tiles=412, n_annotations=2,
                              model="patch v1 (abc)", scored_utc="2025-01-02T03:04:05Z")
    assert metadata == {
        METADATA_KEYS["score"]: "-0.412", METADATA_KEYS["probability"]: "0.618", METADATA_KEYS["tiles"]: "412",
        METADATA_KEYS["region"]: "Tumor annotation (2 regions)", METADATA_KEYS["model"]: "patch v1 (abc)",
        METADATA_KEYS["date"]: "2025-01-02T03:04:05Z"}
    assert all(isinstance(v, str) for v in metadata.values())
    assert region_description(0) == "whole tissue (no Tumor annotation)"
    assert region_description(1) == "Tumor annotation (1 region)"
    probabilities = sorted(np.random.default_rng(0).random(20))
    texts = [image_metadata(score=0.0, mean_probability=p, n_tiles=1, n_annotations=0, model="m",
                            scored_utc="t")[METADATA_KEYS["probability"]] for p in probabilities]
    assert texts == sorted(texts)  # QuPath sorts metadata as text: the probability column sorts by risk
