"""3D Slicer segmentation files (``.seg.nrrd``): the segment table, one segment's mask, writing one.

Slicer stores a binary-labelmap segmentation as an NRRD whose header holds, for each segment N,
``SegmentN_ID``, ``SegmentN_Name``, ``SegmentN_LabelValue``, ``SegmentN_Layer``, ``SegmentN_Extent``,
``SegmentN_Color``... (``key:=value`` lines, which SimpleITK exposes as metadata). Segments that do
not overlap share a layer with different label values; overlapping segments go to further layers,
and the file becomes 4D with a leading ``list`` axis (read by SimpleITK as one vector component per
layer). Files written before Slicer 4.11 have no ``LabelValue``/``Layer`` keys: one segment per
layer with value 1. The written volume is usually cropped to the segments' extent, so it rarely
shares the MRI's grid; :func:`sarcoma_risk.radiology.io.read_mask` resamples it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage

_SEGMENT_KEY = re.compile(r"Segment(\d+)_ID")


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a Slicer segmentation file (``index`` is N in the ``SegmentN_*`` keys)."""

    index: int
    id: str
    name: str
    label_value: int
    layer: int
    #: (i0, i1, j0, j1, k0, k1) voxel extent in the file as Slicer recorded it; None when absent.
    extent: tuple[int, ...] | None = None

    @property
    def recorded_empty(self) -> bool:
        """Slicer wrote an empty extent (e.g. "0 -1 0 -1 0 -1") for this segment."""
        return self.extent is not None and any(hi < lo for lo, hi in zip(self.extent[::2], self.extent[1::2]))


def read_segment_table(image: sitk.Image, path: Path) -> list[SegmentInfo]:
    """The segments described in a ``.seg.nrrd`` header, in file order; empty for a plain labelmap."""
    keys = set(image.GetMetaDataKeys())
    indices = sorted(int(m.group(1)) for k in keys if (m := _SEGMENT_KEY.fullmatch(k)))
    layers = image.GetNumberOfComponentsPerPixel()
    segments = []
    for position, n in enumerate(indices):
        def value(field: str, default: str | None = None) -> str | None:
            key = f"Segment{n}_{field}"
            return image.GetMetaData(key).strip() if key in keys else default

        segment_id = value("ID") or f"Segment{n}"
        # Before Slicer 4.11 each segment had its own layer holding the value 1.
        label_text = value("LabelValue", "1")
        layer_text = value("Layer", str(position) if layers > 1 else "0")
        try:
            label_value, layer = int(label_text), int(layer_text)
        except ValueError:
            raise InvalidImage(f"{path}: segment {segment_id!r} has LabelValue {label_text!r} / Layer "
                               f"{layer_text!r}; expected integers (is the file damaged?)") from None
        if not 0 <= layer < layers:
            raise InvalidImage(f"{path}: segment {segment_id!r} is on layer {layer} but the file has {layers} layer(s)")
        extent_text = value("Extent")
        try:
            extent = tuple(int(v) for v in extent_text.split()) if extent_text else None
        except ValueError:
            extent = None  # informative only; the voxels decide
        if extent is not None and len(extent) != 6:
            extent = None
        segments.append(SegmentInfo(n, segment_id, value("Name") or segment_id, label_value, layer, extent))
    return segments


def select_segment(segments: Sequence[SegmentInfo], wanted: str | None, path: Path) -> SegmentInfo:
    """The segment named or identified by ``wanted`` (exact ID, exact name, then case-insensitive name).

    ``None`` picks the first segment, as Slicer lists them.
    """
    if wanted is None:
        return segments[0]
    for match in (lambda s: s.id == wanted, lambda s: s.name == wanted,
                  lambda s: s.name.casefold() == wanted.casefold()):
        found = [s for s in segments if match(s)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidImage(f"{path}: several segments are called {wanted!r}; choose one by its ID "
                               f"({', '.join(s.id for s in found)})")
    listing = ", ".join(f"{s.name!r} (ID {s.id})" for s in segments)
    raise InvalidImage(f"{path}: no segment {wanted!r}; the file holds {listing}")


def segment_mask(image: sitk.Image, segment: SegmentInfo) -> sitk.Image:
    """A 0/1 uint8 mask of one segment, on the file's own grid."""
    layer = image if image.GetNumberOfComponentsPerPixel() == 1 else sitk.VectorIndexSelectionCast(image, segment.layer)
    return sitk.Cast(sitk.Equal(layer, float(segment.label_value)), sitk.sitkUInt8)


@dataclass(frozen=True)
class SegmentSpec:
    """What to write for one segment: its label value in the labelmap, name, ID and colour."""

    label_value: int
    name: str
    segment_id: str
    color: tuple[float, float, float]
    #: Slicer's terminology entry ("category~type~modifier" as in its Tags), shown in Segment Editor.
    terminology: str = ""


def write_slicer_segmentation(labelmap: sitk.Image, segments: Sequence[SegmentSpec], path: Path, *,
                              crop: bool = True) -> None:
    """Write a single-layer labelmap as a Slicer ``.seg.nrrd`` with the header keys Slicer writes.

    With ``crop=True`` the volume is cropped to the segments' extent and
    ``Segmentation_ReferenceImageExtentOffset`` records where it sat, as Slicer does.
    """
    array = sitk.GetArrayViewFromImage(labelmap)
    offset = np.zeros(3, dtype=int)
    image = labelmap
    present = np.argwhere(array != 0)
    if crop and len(present):
        lo, hi = present.min(axis=0)[::-1], present.max(axis=0)[::-1]  # (i, j, k)
        image = sitk.RegionOfInterest(labelmap, [int(v) for v in hi - lo + 1], [int(v) for v in lo])
        offset = lo
    image = sitk.Cast(image, sitk.sitkUInt8)
    sub = sitk.GetArrayViewFromImage(image)
    tags = {
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ConversionParameters": "",
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset": " ".join(str(int(v)) for v in offset),
    }
    for n, spec in enumerate(segments):
        voxels = np.argwhere(sub == spec.label_value)
        if len(voxels):
            lo, hi = voxels.min(axis=0)[::-1], voxels.max(axis=0)[::-1]
            extent = " ".join(f"{a} {b}" for a, b in zip(lo, hi))
        else:
            extent = "0 -1 0 -1 0 -1"  # Slicer's empty extent
        prefix = f"Segment{n}_"
        tags.update({
            prefix + "Color": " ".join(f"{c:.6g}" for c in spec.color),
            prefix + "ColorAutoGenerated": "0",
            prefix + "Extent": extent,
            prefix + "ID": spec.segment_id,
            prefix + "LabelValue": str(spec.label_value),
            prefix + "Layer": "0",
            prefix + "Name": spec.name,
            prefix + "NameAutoGenerated": "0",
            prefix + "Tags": (f"TerminologyEntry:{spec.terminology}|" if spec.terminology else ""),
        })
    for key, value in tags.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), useCompression=True)
