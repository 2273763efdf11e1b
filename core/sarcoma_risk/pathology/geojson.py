"""QuPath GeoJSON, read and written in pure Python, converted to and from shapely geometries.

It belongs to the core, not to the QuPath bridge: slide scoring reads Tumor annotations and writes
tiles in it, the phantom writes annotations, the cohort check reads them, and the 3D Slicer bundle
carries only the core. It needs shapely, not paquo or QuPath.

QuPath (0.4+) exchanges objects as GeoJSON Features whose ``geometry`` is in full-resolution pixel
coordinates (origin top left) and whose ``properties`` carry QuPath's own fields::

    {"type": "Feature", "id": "3f2b...-uuid",
     "geometry": {"type": "Polygon", "coordinates": [[[x, y], ...]]},
     "properties": {"objectType": "annotation", "name": "...", "color": [r, g, b],
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                    "isLocked": true, "measurements": {"name": value}, "metadata": {"key": "text"}}}

Reading follows QuPath's own reader: the input may be one Feature, a FeatureCollection or a list of
Features; the object type may be spelled ``objectType`` (0.4+), ``object_type`` (0.3.x) or ``type``,
or given as a v0.2 class name in the Feature ``id`` ("PathAnnotationObject"); a missing type means an
annotation; measurements may be an object ``{name: value}`` or the 0.3.x list ``[{"name", "value"}]``;
a classification may be a string or ``{"name" | "names", "color"}``; a Feature ``id`` is kept when it
is a UUID and ignored otherwise.

Writing follows QuPath's writer and what its reader requires: ``objectType`` camelCase, a
classification always with its colour (QuPath's reader rejects one without), ``isLocked`` only when
true, measurements as an object, non-finite measurements as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` (strict JSON has no NaN), and UUID ids only. Geometries are checked against RFC 7946
(closed rings of at least four positions, finite numbers) and raise
:class:`~sarcoma_risk.errors.InvalidAnnotation` naming the file and the feature.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import mapping, shape

from sarcoma_risk.errors import InvalidAnnotation
from sarcoma_risk.fileio import atomic_write_text


class ObjectType(str, Enum):
    """QuPath object kinds: annotations are editable regions, tiles and detections read-only results."""

    ANNOTATION = "annotation"
    DETECTION = "detection"
    TILE = "tile"
    CELL = "cell"
    TMA_CORE = "tmaCore"


#: Spellings QuPath's reader accepts for each type, including the v0.2 class names.
_TYPE_ALIASES = {
    "annotation": ObjectType.ANNOTATION, "PathAnnotationObject": ObjectType.ANNOTATION,
    "detection": ObjectType.DETECTION, "PathDetectionObject": ObjectType.DETECTION,
    "tile": ObjectType.TILE, "PathTileObject": ObjectType.TILE,
    "cell": ObjectType.CELL, "PathCellObject": ObjectType.CELL,
    "tmaCore": ObjectType.TMA_CORE, "tma_core": ObjectType.TMA_CORE, "TMACoreObject": ObjectType.TMA_CORE,
}
_LEGACY_TYPE_IDS = {"PathAnnotationObject", "PathDetectionObject", "PathTileObject", "PathCellObject",
                    "TMACoreObject", "PathRootObject"}
_GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                   "GeometryCollection")
_NON_FINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: Derived QuPath classes ("Tumor: Positive") are written as a list of names and shown joined by ": ".
CLASS_NAME_SEPARATOR = ": "

Color = tuple[int, int, int]


def _check_color(value: Any, where: str) -> Color:
    """An RGB colour from QuPath's forms: [r, g, b], [r, g, b, a] or a packed (A)RGB integer."""
    if isinstance(value, bool):
        raise InvalidAnnotation(f"{where}: colour {value!r} is not [r, g, b] or a packed RGB integer")
    if isinstance(value, int):
        packed = value & 0xFFFFFF  # Java packs ARGB into a signed int
        return ((packed >> 16) & 255, (packed >> 8) & 255, packed & 255)
    if isinstance(value, (list, tuple)) and len(value) in (3, 4) and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise InvalidAnnotation(f"{where}: colour {value!r} is not [r, g, b] with integers 0-255")


@dataclass(frozen=True)
class Classification:
    """A QuPath class: its name and RGB colour.

    The colour may be None only for a class read from a bare name (QuPath then picks one); writing
    needs it, because QuPath's reader rejects a classification object without a colour.
    """

    name: str
    color: Color | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidAnnotation(f"classification: name {self.name!r} must be a non-empty string")
        if self.color is not None:
            object.__setattr__(self, "color", _check_color(list(self.color) if isinstance(self.color, tuple)
                                                           else self.color, f"classification {self.name!r}"))

    def to_dict(self) -> dict[str, Any]:
        if self.color is None:
            raise InvalidAnnotation(f"classification {self.name!r}: has no colour; QuPath's reader rejects a "
                                    "classification without one (give e.g. color=(200, 0, 0))")
        names = self.name.split(CLASS_NAME_SEPARATOR)
        head: dict[str, Any] = {"name": self.name} if len(names) == 1 else {"names": names}
        return {**head, "color": list(self.color)}


@dataclass
class QuPathObject:
    """One QuPath object: a shapely geometry (level-0 pixels) and QuPath's properties.

    ``classification`` None means unclassified; ``id`` is a UUID string or None (QuPath then makes one).
    Measurement values are floats and may be NaN.
    """

    geometry: Any  # shapely BaseGeometry
    object_type: ObjectType = ObjectType.ANNOTATION
    classification: Classification | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    name: str | None = None
    color: Color | None = None
    is_locked: bool = False
    id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    nucleus_geometry: Any = None  # cells only

    def __post_init__(self) -> None:
        self.object_type = ObjectType(self.object_type)
        if self.id is not None:
            self.id = _check_uuid(self.id, "id")
        if self.color is not None:
            self.color = _check_color(list(self.color) if isinstance(self.color, tuple) else self.color, "color")
        self.measurements = {str(k): _measurement_value(v, f"measurement {k!r}") for k, v in self.measurements.items()}
        self.metadata = {str(k): str(v) for k, v in self.metadata.items()}


def _check_uuid(value: Any, where: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidAnnotation(f"{where}: {value!r} is not a UUID (QuPath keeps only UUID ids)") from None


# ---- geometry ---------------------------------------------------------------------------------

def _check_position(value: Any, where: str) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) >= 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in value)):
        raise InvalidAnnotation(f"{where}: position {value!r} is not [x, y] numbers")
    if not all(math.isfinite(c) for c in value):
        raise InvalidAnnotation(f"{where}: position {value!r} is not finite")


def _check_positions(value: Any, where: str, minimum: int) -> None:
    if not isinstance(value, (list, tuple)) or len(value) < minimum:
        raise InvalidAnnotation(f"{where}: expected a list of at least {minimum} positions, got {_short(value)}")
    for i, position in enumerate(value):
        _check_position(position, f"{where}[{i}]")


def _check_polygon(rings: Any, where: str) -> None:
    if not isinstance(rings, (list, tuple)) or not rings:
        raise InvalidAnnotation(f"{where}: a Polygon needs a list of rings (exterior first), got {_short(rings)}")
    for r, ring in enumerate(rings):
        _check_positions(ring, f"{where} ring {r}", 4)
        if list(ring[0][:2]) != list(ring[-1][:2]):
            raise InvalidAnnotation(f"{where} ring {r}: not closed (first {ring[0]} != last {ring[-1]}); "
                                    "GeoJSON rings repeat their first position at the end")


def _check_geometry(geometry: Any, where: str) -> None:
    if not isinstance(geometry, Mapping):
        raise InvalidAnnotation(f"{where}: 'geometry' must be a GeoJSON geometry object, got {_short(geometry)}")
    kind = geometry.get("type")
    if kind not in _GEOMETRY_TYPES:
        raise InvalidAnnotation(f"{where}: geometry type {kind!r} is not one of {', '.join(_GEOMETRY_TYPES)}")
    if kind == "GeometryCollection":
        parts = geometry.get("geometries")
        if not isinstance(parts, list):
            raise InvalidAnnotation(f"{where}: a GeometryCollection needs a 'geometries' list")
        for i, part in enumerate(parts):
            _check_geometry(part, f"{where} geometries[{i}]")
        return
    coords = geometry.get("coordinates")
    if kind == "Point":
        _check_position(coords, where)
    elif kind in ("MultiPoint", "LineString"):
        _check_positions(coords, f"{where} {kind}", 1 if kind == "MultiPoint" else 2)
    elif kind == "MultiLineString":
        if not isinstance(coords, list):
            raise InvalidAnnotation(f"{where}: MultiLineString coordinates must be a list of lines")
        for i, line in enumerate(coords):
            _check_positions(line, f"{where} line {i}", 2)
    elif kind == "Polygon":
        _check_polygon(coords, f"{where} Polygon")
    else:
        if not isinstance(coords, list):
            raise InvalidAnnotation(f"{where}: MultiPolygon coordinates must be a list of polygons")
        for i, polygon in enumerate(coords):
            _check_polygon(polygon, f"{where} MultiPolygon polygon {i}")


def geometry_from_geojson(geometry: Mapping[str, Any], where: str = "geometry") -> Any:
    """A shapely geometry from a GeoJSON geometry object, after checking it against RFC 7946."""

    _check_geometry(geometry, where)
    return shape(geometry)


def _listify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def geometry_to_geojson(geometry: Any) -> dict[str, Any]:
    """A GeoJSON geometry object (lists, integral coordinates as ints) from a shapely geometry."""

    if geometry is None or geometry.is_empty:
        raise InvalidAnnotation("geometry: empty; QuPath objects need a non-empty region")
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise InvalidAnnotation("geometry: has NaN or infinite coordinates; QuPath needs finite pixel positions")
    data = mapping(geometry)
    if data["type"] == "GeometryCollection":
        return {"type": "GeometryCollection", "geometries": [geometry_to_geojson(g) for g in geometry.geoms]}
    return {"type": data["type"], "coordinates": _listify(data["coordinates"])}


# ---- reading ----------------------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _measurement_value(value: Any, where: str) -> float:
    if value is None:
        return math.nan  # QuPath keeps a missing measurement as NaN
    if isinstance(value, bool):
        raise InvalidAnnotation(f"{where}: {value!r} is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE_TEXT:
        return _NON_FINITE_TEXT[value]
    raise InvalidAnnotation(f"{where}: {_short(value)} is not a number (or \"NaN\")")


def _read_measurements(value: Any, where: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): _measurement_value(v, f"{where} {k!r}") for k, v in value.items()}
    if isinstance(value, list):  # QuPath 0.3.x: [{"name": ..., "value": ...}]
        out = {}
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "name" not in item or "value" not in item:
                raise InvalidAnnotation(f"{where}[{i}]: expected {{\"name\": ..., \"value\": ...}}, got {_short(item)}")
            out[str(item["name"])] = _measurement_value(item["value"], f"{where} {item['name']!r}")
        return out
    raise InvalidAnnotation(f"{where}: expected an object {{name: value}} or a list of {{name, value}}, "
                            f"got {_short(value)}")


def _read_classification(value: Any, where: str) -> Classification | None:
    if value is None:
        return None
    if isinstance(value, str):  # QuPath accepts a bare class name; it then picks a default colour
        return Classification(value) if value.strip() else None
    if isinstance(value, Mapping):
        if "names" in value and isinstance(value["names"], list) and value["names"]:
            name = CLASS_NAME_SEPARATOR.join(str(n) for n in value["names"])
        elif isinstance(value.get("name"), str):
            name = value["name"]
        elif not value:
            return None
        else:
            raise InvalidAnnotation(f"{where}: classification needs a 'name' (or 'names'), got {_short(value)}")
        color = value.get("color", value.get("colorRGB"))
        if color is None:
            raise InvalidAnnotation(f"{where}: classification {name!r} has no 'color'; QuPath's reader rejects "
                                    "a classification without one (add e.g. \"color\": [200, 0, 0])")
        return Classification(name, _check_color(color, f"{where} classification {name!r}"))
    raise InvalidAnnotation(f"{where}: classification must be a name or an object, got {_short(value)}")


def _object_type(feature: Mapping[str, Any], properties: Mapping[str, Any], where: str) -> ObjectType:
    for key in ("objectType", "object_type", "type"):
        if key in properties:
            text = properties[key]
            break
    else:
        text = feature.get("id") if feature.get("id") in _LEGACY_TYPE_IDS else "annotation"
    if text == "PathRootObject" or text == "root":
        raise InvalidAnnotation(f"{where}: a root object cannot be imported as a region")
    if text not in _TYPE_ALIASES:
        raise InvalidAnnotation(f"{where}: objectType {text!r} is not one of "
                                f"{', '.join(t.value for t in ObjectType)}")
    return _TYPE_ALIASES[text]


def parse_feature(feature: Any, where: str = "feature") -> QuPathObject:
    """One QuPath object from a GeoJSON Feature (see the module docstring for the accepted forms)."""
    if not isinstance(feature, Mapping):
        raise InvalidAnnotation(f"{where}: expected a GeoJSON Feature object, got {_short(feature)}")
    if feature.get("type") != "Feature":
        raise InvalidAnnotation(f"{where}: 'type' is {feature.get('type')!r}; expected \"Feature\"")
    if "geometry" not in feature or feature["geometry"] is None:
        raise InvalidAnnotation(f"{where}: has no geometry")
    properties = feature.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise InvalidAnnotation(f"{where}: 'properties' must be an object, got {_short(properties)}")
    geometry = geometry_from_geojson(feature["geometry"], where)
    nucleus = feature.get("nucleusGeometry")
    raw_id = feature.get("id")
    try:
        kept_id = str(uuid.UUID(str(raw_id))) if raw_id is not None else None
    except ValueError:
        kept_id = None  # QuPath ignores ids that are not UUIDs (and v0.2 type names)
    name = properties.get("name")
    metadata = properties.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidAnnotation(f"{where}: 'metadata' must be an object of strings")
    return QuPathObject(
        geometry=geometry,
        object_type=_object_type(feature, properties, where),
        classification=_read_classification(properties.get("classification"), where),
        measurements=_read_measurements(properties["measurements"], f"{where} measurements")
        if properties.get("measurements") is not None else {},
        name=str(name) if name is not None else None,
        color=_check_color(properties["color"], f"{where} color") if properties.get("color") is not None else None,
        is_locked=properties.get("isLocked") in (True, "true", "True"),  # Gson reads the string "false" as false
        id=kept_id,
        metadata={str(k): str(v) for k, v in metadata.items() if not isinstance(v, (dict, list))},
        nucleus_geometry=geometry_from_geojson(nucleus, f"{where} nucleusGeometry") if nucleus else None,
    )


def parse_geojson(data: Any, source: str = "GeoJSON") -> list[QuPathObject]:
    """QuPath objects from parsed JSON: a Feature, a FeatureCollection or a list of Features."""
    if isinstance(data, Mapping) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InvalidAnnotation(f"{source}: FeatureCollection without a 'features' list")
    elif isinstance(data, Mapping) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        kind = data.get("type") if isinstance(data, Mapping) else type(data).__name__
        raise InvalidAnnotation(f"{source}: expected a GeoJSON Feature, FeatureCollection or list of Features, "
                                f"got {kind!r}")
    return [parse_feature(f, f"{source}: feature {i}") for i, f in enumerate(features)]


def read_geojson(path: str | Path) -> list[QuPathObject]:
    """Read a QuPath GeoJSON file (e.g. from File > Export objects as GeoJSON)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InvalidAnnotation(f"{path}: no such GeoJSON file") from None
    except IsADirectoryError:
        raise InvalidAnnotation(f"{path}: is a folder, expected a GeoJSON file") from None
    except UnicodeDecodeError as exc:
        raise InvalidAnnotation(f"{path}: not UTF-8 text (byte {exc.start}); is this a GeoJSON file?") from None
    try:
        data = json.loads(text)  # Python's json also reads the bare NaN that Gson may write
    except json.JSONDecodeError as exc:
        raise InvalidAnnotation(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_geojson(data, str(path))


# ---- writing ----------------------------------------------------------------------------------

def _json_number(value: float) -> float | int | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def to_feature(obj: QuPathObject) -> dict[str, Any]:
    """A GeoJSON Feature the way QuPath writes it (see the module docstring)."""
    feature: dict[str, Any] = {"type": "Feature"}
    if obj.id is not None:
        feature["id"] = obj.id
    feature["geometry"] = geometry_to_geojson(obj.geometry)
    if obj.nucleus_geometry is not None:
        feature["nucleusGeometry"] = geometry_to_geojson(obj.nucleus_geometry)
    properties: dict[str, Any] = {"objectType": obj.object_type.value}
    if obj.name is not None:
        properties["name"] = obj.name
    if obj.color is not None:
        properties["color"] = list(obj.color)
    if obj.classification is not None:
        properties["classification"] = obj.classification.to_dict()
    if obj.is_locked:
        properties["isLocked"] = True
    if obj.measurements:
        properties["measurements"] = {k: _json_number(v) for k, v in obj.measurements.items()}
    if obj.metadata:
        properties["metadata"] = dict(obj.metadata)
    feature["properties"] = properties
    return feature


def to_feature_collection(objects: Iterable[QuPathObject]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [to_feature(o) for o in objects]}


def dumps(objects: Iterable[QuPathObject], indent: int | None = None) -> str:
    """A FeatureCollection as strict JSON text (no bare NaN)."""
    return json.dumps(to_feature_collection(objects), indent=indent, allow_nan=False)


def write_geojson(path: str | Path, objects: Sequence[QuPathObject] | Iterable[QuPathObject],
                  indent: int | None = None) -> Path:
    """Write objects as a FeatureCollection, through a temporary file so a crash leaves no half file."""
    path = Path(path)
    text = dumps(objects, indent=indent)
    return atomic_write_text(path, text + "\n")


def stable_uuid(*parts: object) -> str:
    """A UUID derived from ``parts`` (uuid5), so re-running an export gives the same object ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "sarcoma-risk:" + "/".join(str(p) for p in parts)))
