"""Write the selected MRI and tumor segment to files the scorer reads, with their geometry.

Everything is written in the reference volume's own frame (its IJK-to-RAS, ignoring a parent
transform it may sit under). The reference is the T2 when one is selected, else the T1CE
(:attr:`ScoringInputs.reference`): the tumor segment is exported onto its grid by the segmentations
logic, which applies the segmentation's and the reference's transforms; with both volumes, the
T1CE gets the linear transform between its frame and the T2's folded into its geometry. The
scorer returns the Grad-CAM on the reference grid, so putting it under the reference's transform
makes it line up in the views.

Storage nodes write NRRD in LPS as the format expects; MRML stays in RAS. The user's nodes are not
changed: temporary nodes share their voxels and are removed from the scene afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarcoma_risk.errors import InvalidImage, OutputError

from .validation import ScoringInputs

#: Share of a segment that may lie outside the reference volume before the log warns about it.
OUTSIDE_WARNING = 0.05


@dataclass(frozen=True)
class ExportedInputs:
    """Files written for one scoring run, and what the export found about the segment.

    ``t2`` and ``t1ce`` are None for a volume that was not selected; ``mask`` lies on the grid of
    the volume that ``reference_role`` names ("T2 volume", else "T1CE volume").
    """

    t2: Path | None
    mask: Path
    t1ce: Path | None
    segment_volume_ml: float
    outside_fraction: float
    reference_role: str

    def warnings(self) -> list[str]:
        if self.outside_fraction > OUTSIDE_WARNING:
            return [f"{100 * self.outside_fraction:.0f}% of the tumor segment lies outside the {self.reference_role} "
                    "and is left out of the score"]
        return []


def export_inputs(scene: Any, inputs: ScoringInputs, folder: Path) -> ExportedInputs:
    """Write ``mask.nrrd`` into ``folder``, and ``t2.nrrd`` and/or ``t1ce.nrrd`` for the volumes selected.

    Raises :class:`InvalidImage` when the segment is empty or does not overlap the reference volume
    (the T2, else the T1CE).
    """
    import vtk

    reference, role = inputs.reference, inputs.reference_role
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{folder}: export folder does not exist")
    ids_before = _node_ids(scene)
    try:
        own_ml, own_voxels = _export_segment(scene, inputs, reference=None)
        if own_voxels == 0:
            raise InvalidImage(f"Tumor segment {_segment_name(inputs)!r} is empty; paint the tumor in Segment "
                               "Editor (or pick the segment that holds it)")
        labelmap, inside_voxels = _export_segment_node(scene, inputs, reference=reference)
        if inside_voxels == 0:
            raise InvalidImage(
                f"Tumor segment {_segment_name(inputs)!r} does not overlap the {role} "
                f"{reference.GetName()!r}: they lie in different places (a segmentation drawn on another "
                "series or patient?); pick the matching volume and segmentation")
        inside_ml = inside_voxels * _voxel_ml(labelmap)
        mask_path = folder / "mask.nrrd"
        _write_volume(labelmap, mask_path)

        t2_path = t1ce_path = None
        ijk_to_ras = vtk.vtkMatrix4x4()
        reference.GetIJKToRASMatrix(ijk_to_ras)
        if inputs.t2 is not None:
            t2_path = folder / "t2.nrrd"
            _write_volume(_shallow_copy(inputs.t2, ijk_to_ras), t2_path)
        if inputs.t1ce is not None:
            # Alone, the T1CE is the reference (its own frame); beside a T2 it is expressed in the T2's frame.
            geometry = ijk_to_ras if inputs.t2 is None else _ijk_to_frame_of(inputs.t1ce, inputs.t2)
            t1ce_path = folder / "t1ce.nrrd"
            _write_volume(_shallow_copy(inputs.t1ce, geometry), t1ce_path)
    finally:
        for node_id in _node_ids(scene) - ids_before:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
    outside = max(0.0, 1.0 - inside_ml / own_ml) if own_ml > 0 else 0.0
    return ExportedInputs(t2=t2_path, mask=mask_path, t1ce=t1ce_path, segment_volume_ml=own_ml,
                          outside_fraction=outside, reference_role=role)


def _node_ids(scene: Any) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _segment_name(inputs: ScoringInputs) -> str:
    segment = inputs.segmentation.GetSegmentation().GetSegment(inputs.segment_id)
    return segment.GetName() if segment is not None else inputs.segment_id


def _voxel_ml(volume: Any) -> float:
    sx, sy, sz = volume.GetSpacing()
    return sx * sy * sz / 1000.0


def _export_segment_node(scene: Any, inputs: ScoringInputs, reference: Any) -> tuple[Any, int]:
    """The segment as a 0/1 labelmap node on ``reference``'s grid (its own grid when None)."""
    import numpy as np
    import slicer
    import vtk

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SarcomaRisk export")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(inputs.segment_id)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    if not logic.ExportSegmentsToLabelmapNode(inputs.segmentation, ids, labelmap, reference):
        raise InvalidImage(f"Tumor segment {_segment_name(inputs)!r} could not be converted to a labelmap; "
                           "check the segmentation in the Segmentations module")
    if labelmap.GetImageData() is None:
        return labelmap, 0
    voxels = slicer.util.arrayFromVolume(labelmap)
    binary = (voxels > 0).astype(np.uint8)  # label values depend on the segment's layer; the scorer wants 0/1
    slicer.util.updateVolumeFromArray(labelmap, binary)
    return labelmap, int(binary.sum())


def _export_segment(scene: Any, inputs: ScoringInputs, reference: Any) -> tuple[float, int]:
    labelmap, voxels = _export_segment_node(scene, inputs, reference)
    return voxels * _voxel_ml(labelmap), voxels


def _shallow_copy(volume: Any, ijk_to_ras: Any) -> Any:
    """A node outside the scene that shares ``volume``'s voxels and has the given geometry."""
    import slicer

    copy = slicer.vtkMRMLScalarVolumeNode()
    copy.SetAndObserveImageData(volume.GetImageData())
    copy.SetIJKToRASMatrix(ijk_to_ras)
    return copy


def _ijk_to_frame_of(moving: Any, fixed: Any) -> Any:
    """``moving``'s IJK-to-RAS expressed in ``fixed``'s local frame (linear transforms only)."""
    import slicer
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    moving.GetIJKToRASMatrix(ijk_to_ras)
    between = vtk.vtkMatrix4x4()
    if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(
            moving.GetParentTransformNode(), fixed.GetParentTransformNode(), between):
        raise InvalidImage(f"{moving.GetName()!r} cannot be mapped onto {fixed.GetName()!r} by a linear "
                           "transform; harden the transforms (Transforms module) before scoring")
    result = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(between, ijk_to_ras, result)
    return result


def _write_volume(volume: Any, path: Path) -> None:
    import slicer

    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)  # a temporary file: writing fast matters more than its size
    if not storage.WriteData(volume):
        raise OutputError(f"{path}: could not write the exported volume (disk full or folder not writable?)")
