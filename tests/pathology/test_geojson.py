"""QuPath GeoJSON: round trips, QuPath's old spellings, and the rules QuPath's reader imposes."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box

from sarcoma_risk.errors import InvalidAnnotation, InvalidInput
from sarcoma_risk.pathology.geojson import (
    Classification,
    ObjectType,
    QuPathObject,
    dumps,
    parse_geojson,
    read_geojson,
    stable_uuid,
    to_feature,
    write_geojson,
)

TUMOR = Classification("Tumor", (200, 0, 0))
SQUARE_WITH_HOLE = Polygon([(0, 0), (100, 0), (100, 100), (0, 100)], [[(40, 40), (60, 40), (60, 60), (40, 60)]])


def test_polygon_with_hole_round_trips_through_a_file(tmp_path):
    obj = QuPathObject(SQUARE_WITH_HOLE, classification=TUMOR, name="region 1", id=str(uuid.uuid4()),
                       measurements={"Area": 9600.0}, metadata={"source": "test"})
    path = write_geojson(tmp_path / "a.geojson", [obj])
    (back,) = read_geojson(path)
    assert back.geometry.equals(SQUARE_WITH_HOLE)
    assert len(back.geometry.interiors) == 1
    assert back.classification == TUMOR
    assert back.object_type is ObjectType.ANNOTATION
    assert back.id == obj.id and back.name == "region 1"
    assert back.measurements == {"Area": 9600.0}
    assert back.metadata == {"source": "test"}


def test_multipolygon_round_trips_with_its_parts_and_holes():
    geometry = MultiPolygon([SQUARE_WITH_HOLE, box(200, 200, 260, 280)])
    (back,) = parse_geojson(json.loads(dumps([QuPathObject(geometry, classification=TUMOR)])))
    assert back.geometry.geom_type == "MultiPolygon"
    assert back.geometry.equals(geometry)
    assert back.geometry.area == pytest.approx(100 * 100 - 20 * 20 + 60 * 80)


def test_written_features_follow_qupaths_writer():
    tile = QuPathObject(box(0, 0, 224, 224), object_type=ObjectType.TILE, is_locked=True,
                        measurements={"recurrence_probability": 0.25}, id=stable_uuid("slide", 0, 0))
    feature = to_feature(tile)
    assert feature["type"] == "Feature"
    uuid.UUID(feature["id"])
    props = feature["properties"]
    assert props["objectType"] == "tile" and "object_type" not in props
    assert props["isLocked"] is True
    assert "classification" not in props
    assert props["measurements"] == {"recurrence_probability": 0.25}
    assert feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    unlocked = to_feature(QuPathObject(box(0, 0, 1, 1)))
    assert "isLocked" not in unlocked["properties"]  # QuPath writes isLocked only when true


def test_nan_measurements_are_written_as_strings_and_read_back():
    text = dumps([QuPathObject(box(0, 0, 10, 10), object_type="detection",
                               measurements={"a": math.nan, "b": math.inf, "c": 1.5})])
    assert "NaN" in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in output"))
    assert data["features"][0]["properties"]["measurements"] == {"a": "NaN", "b": "Infinity", "c": 1.5}
    (back,) = parse_geojson(data)
    assert math.isnan(back.measurements["a"]) and back.measurements["b"] == math.inf


def test_bare_nan_as_gson_may_write_it_is_read(tmp_path):
    path = tmp_path / "gson.json"
    path.write_text('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, '
                    '"properties": {"objectType": "detection", "measurements": {"x": NaN}}}')
    (back,) = read_geojson(path)
    assert math.isnan(back.measurements["x"]) and back.geometry.equals(Point(1, 2))


def test_classification_without_colour_is_refused_when_writing():
    with pytest.raises(InvalidAnnotation, match="colour"):
        to_feature(QuPathObject(box(0, 0, 1, 1), classification=Classification("Tumor")))


def test_derived_classes_are_written_as_names():
    obj = QuPathObject(box(0, 0, 1, 1), classification=Classification("Tumor: Positive", (255, 0, 0)))
    assert to_feature(obj)["properties"]["classification"] == {"names": ["Tumor", "Positive"], "color": [255, 0, 0]}
    (back,) = parse_geojson(to_feature(obj))
    assert back.classification.name == "Tumor: Positive"


QUPATH_03_FEATURE = {
    "type": "Feature",
    "id": "PathDetectionObject",
    "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]},
    "properties": {"object_type": "tile", "isLocked": False,
                   "measurements": [{"name": "prob", "value": 0.5}, {"name": "missing", "value": "NaN"}],
                   "classification": {"name": "Tumor", "colorRGB": -3670016}},
}


def test_qupath_03_spellings_are_read():
    (obj,) = parse_geojson([QUPATH_03_FEATURE])
    assert obj.object_type is ObjectType.TILE  # object_type wins over the legacy id
    assert obj.measurements["prob"] == 0.5 and math.isnan(obj.measurements["missing"])
    assert obj.classification == Classification("Tumor", (200, 0, 0))
    assert obj.id is None  # non-UUID ids are ignored, as QuPath does


@pytest.mark.parametrize(("feature_extra", "expected"), [
    ({"id": "PathAnnotationObject", "properties": {}}, ObjectType.ANNOTATION),
    ({"id": "PathTileObject", "properties": {}}, ObjectType.TILE),
    ({"properties": {"type": "detection"}}, ObjectType.DETECTION),
    ({"properties": {"objectType": "tma_core"}}, ObjectType.TMA_CORE),
    ({"properties": None}, ObjectType.ANNOTATION),
])
def test_object_type_spellings(feature_extra, expected):
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, **feature_extra}
    (obj,) = parse_geojson(feature)
    assert obj.object_type is expected


def test_packed_and_rgba_colours_and_string_classes_are_read():
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]},
               "properties": {"color": -16711936, "classification": "Stroma"}}
    (obj,) = parse_geojson({"type": "FeatureCollection", "features": [feature]})
    assert obj.color == (0, 255, 0)
    assert obj.classification == Classification("Stroma", None)
    feature["properties"] = {"color": [1, 2, 3, 128], "classification": {"name": "A", "color": [4, 5, 6, 255]}}
    (obj,) = parse_geojson(feature)
    assert obj.color == (1, 2, 3) and obj.classification.color == (4, 5, 6)


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "not valid JSON"),
    ('{"type": "Topology"}', "expected a GeoJSON Feature"),
    ('{"type": "FeatureCollection"}', "features"),
    ('[{"type": "Feature", "properties": {}}]', "no geometry"),
    ('[{"type": "Feature", "geometry": {"type": "Circle", "coordinates": [0, 0]}}]', "geometry type 'Circle'"),
    ('[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}}]',
     "at least 4 positions"),
    ('[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1]]]}}]',
     "not closed"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": ["a", 1]}}]', "not \\[x, y\\] numbers"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, '
     '"properties": {"objectType": "blob"}}]', "objectType 'blob'"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, '
     '"properties": {"measurements": {"a": "high"}}}]', "is not a number"),
    ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}, '
     '"properties": {"classification": {"name": "Tumor"}}}]', "has no 'color'"),
])
def test_malformed_geojson_is_a_clear_error_naming_the_file(tmp_path, text, match):
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(InvalidAnnotation, match=match) as info:
        read_geojson(path)
    assert "bad.geojson" in str(info.value)
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ValueError)


def test_missing_file_and_non_uuid_ids_are_clear_errors(tmp_path):
    with pytest.raises(InvalidAnnotation, match="no such GeoJSON file"):
        read_geojson(tmp_path / "absent.geojson")
    with pytest.raises(InvalidAnnotation, match="not a UUID"):
        QuPathObject(box(0, 0, 1, 1), id="tile-1")


def test_stable_uuids_are_deterministic_and_distinct():
    assert stable_uuid("s", 1, 2) == stable_uuid("s", 1, 2) != stable_uuid("s", 2, 1)
    uuid.UUID(stable_uuid("x"))


# ---- rules of REFERENCE.md and QuPath's reader, checked on every object type ------------------

@pytest.mark.parametrize("object_type", list(ObjectType))
def test_every_object_type_is_written_in_camel_case_and_read_back(object_type):
    feature = to_feature(QuPathObject(box(0, 0, 10, 10), object_type=object_type))
    assert feature["properties"]["objectType"] == object_type.value
    assert "object_type" not in feature["properties"] and "type" not in feature["properties"]
    (back,) = parse_geojson(feature)
    assert back.object_type is object_type


def test_object_colour_and_classification_colour_round_trip_as_rgb_lists(tmp_path):
    obj = QuPathObject(box(0, 0, 5, 5), classification=Classification("Stroma", (10, 200, 30)), color=(255, 128, 0))
    path = write_geojson(tmp_path / "c.geojson", [obj])
    props = json.loads(path.read_text())["features"][0]["properties"]
    assert props["color"] == [255, 128, 0]
    assert props["classification"] == {"name": "Stroma", "color": [10, 200, 30]}
    (back,) = read_geojson(path)
    assert back.color == (255, 128, 0) and back.classification == Classification("Stroma", (10, 200, 30))


def test_a_multipolygon_with_holes_in_each_part_round_trips():
    geometry = MultiPolygon([SQUARE_WITH_HOLE, Polygon([(200, 0), (300, 0), (300, 100), (200, 100)],
                                                       [[(220, 20), (240, 20), (240, 40), (220, 40)]])])
    (back,) = parse_geojson(json.loads(dumps([QuPathObject(geometry, classification=TUMOR)])))
    assert back.geometry.equals(geometry)
    assert [len(p.interiors) for p in back.geometry.geoms] == [1, 1]


def test_non_finite_coordinates_and_non_numeric_measurements_are_refused_when_writing(tmp_path):
    with pytest.raises(InvalidAnnotation, match="NaN or infinite coordinates"):
        write_geojson(tmp_path / "x.geojson", [QuPathObject(box(0, 0, math.inf, 1))])
    assert not list(tmp_path.iterdir())  # nothing half-written, no temporary file left
    with pytest.raises(InvalidAnnotation, match="measurement 'grade': 'high' is not a number"):
        QuPathObject(box(0, 0, 1, 1), measurements={"grade": "high"})


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = write_geojson(tmp_path / "tiles.geojson", [QuPathObject(box(0, 0, 1, 1))])
    before = path.read_bytes()
    with pytest.raises(InvalidAnnotation, match="colour"):
        write_geojson(path, [QuPathObject(box(0, 0, 1, 1), classification=Classification("Tumor"))])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tiles.geojson"]


def test_qupath_export_with_byte_order_mark_and_string_lock_flag_is_read(tmp_path):
    path = tmp_path / "export.geojson"
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 4]},
               "properties": {"objectType": "annotation", "isLocked": "false"}}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([feature, {**feature, "properties": {"isLocked": True}}]).encode())
    first, second = read_geojson(path)
    assert first.is_locked is False and second.is_locked is True


def test_a_non_feature_in_a_list_is_named_by_position():
    with pytest.raises(InvalidAnnotation, match="feature 1: expected a GeoJSON Feature object"):
        parse_geojson([{"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}, 42])
