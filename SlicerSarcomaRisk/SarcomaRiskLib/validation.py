"""Checks on what the radiologist selected, before anything is exported or run.

Each check raises the core's error classes with a message written for a dialog: it says which
control is wrong and what to do. Checks that need the segment's voxels (empty segment, segment
outside the MRI) happen during export, in :mod:`SarcomaRiskLib.export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sarcoma_risk.errors import InvalidImage, InvalidInput
from sarcoma_risk.records.schema import validate_case_id

#: The volume controls as messages name them.
T2_ROLE = "T2 volume"
T1CE_ROLE = "T1CE volume"


@dataclass(frozen=True)
class ScoringInputs:
    """What the radiologist picked in the module.

    Parameters
    ----------
    case_id : str
        The pseudonymous case id (e.g. ``STS-0001``).
    t2 : vtkMRMLScalarVolumeNode or None
        The T2 fat-suppressed MRI; optional when ``t1ce`` is given.
    segmentation : vtkMRMLSegmentationNode
        The segmentation holding the tumor segment.
    segment_id : str
        The id (not the name) of the tumor segment in ``segmentation``.
    t1ce : vtkMRMLScalarVolumeNode or None
        The contrast-enhanced T1 MRI; optional when ``t2`` is given.

    The case is scored by the radiology model of the volumes given (:mod:`sarcoma_risk.sequences`).
    The :attr:`reference` volume (the T2 when given, else the T1CE) is the grid the segment is
    exported onto and the Grad-CAM is returned on.
    """

    case_id: str
    t2: Any
    segmentation: Any
    segment_id: str
    t1ce: Any = None

    @property
    def reference(self) -> Any:
        """The volume whose grid and frame the export and the Grad-CAM use: the T2, else the T1CE."""
        return self.t2 if self.t2 is not None else self.t1ce

    @property
    def reference_role(self) -> str:
        """The control that holds :attr:`reference`, as messages name it ("T2 volume", "T1CE volume")."""
        return T2_ROLE if self.t2 is not None else T1CE_ROLE


def check_inputs(inputs: ScoringInputs) -> None:
    """Raise :class:`InvalidInput` (or a subclass) naming the first problem with ``inputs``."""
    validate_case_id(inputs.case_id.strip() if isinstance(inputs.case_id, str) else inputs.case_id)
    if inputs.t2 is None and inputs.t1ce is None:
        raise InvalidInput(f"{T2_ROLE} and {T1CE_ROLE}: no volume selected; load the MRI (File > Add Data or "
                           f"DICOM) and select the fat-suppressed T2 as {T2_ROLE}, the contrast-enhanced T1 as "
                           f"{T1CE_ROLE}, or both")
    for volume, role in ((inputs.t2, T2_ROLE), (inputs.t1ce, T1CE_ROLE)):
        if volume is not None:
            check_volume(volume, role)
    if inputs.t2 is not None and inputs.t1ce is not None:
        if inputs.t1ce is inputs.t2:
            raise InvalidInput("T1CE volume: the same volume is selected as T2; pick the contrast-enhanced "
                               "T1 series, or leave T1CE empty")
        check_linear_between(inputs.t1ce, inputs.t2)
    check_segment(inputs.segmentation, inputs.segment_id)


def check_volume(volume: Any, role: str) -> None:
    """A scalar 3D MRI with voxels: not a labelmap, not a vector/RGB volume, not a single slice."""
    if volume.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InvalidImage(f"{role}: {volume.GetName()!r} is a labelmap (a segmentation), not an MRI image; "
                           "select the MRI series")
    if not volume.IsA("vtkMRMLScalarVolumeNode"):
        raise InvalidImage(f"{role}: {volume.GetName()!r} is a {volume.GetClassName()}; a scalar MRI volume "
                           "is needed")
    image = volume.GetImageData()
    if image is None:
        raise InvalidImage(f"{role}: {volume.GetName()!r} holds no voxels (was loading cancelled?); load it again")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise InvalidImage(f"{role}: {volume.GetName()!r} has {components} components per voxel (colour or "
                           "vector image); a grey-level MRI is needed")
    dims = image.GetDimensions()
    if min(dims) < 2:
        raise InvalidImage(f"{role}: {volume.GetName()!r} is {dims[0]} x {dims[1]} x {dims[2]} voxels, a "
                           "single slice; a 3D MRI series is needed")


def check_linear_between(moving: Any, fixed: Any) -> None:
    """The second sequence must map onto the T2 frame by a linear transform (it is resampled there)."""
    if moving.GetParentTransformNode() is fixed.GetParentTransformNode():
        return  # same frame (both untransformed, or under the same transform)
    for node in (moving, fixed):
        transform = node.GetParentTransformNode()
        if transform is not None and not transform.IsTransformToWorldLinear():
            raise InvalidImage(
                f"{node.GetName()!r} is under a non-linear transform ({transform.GetName()!r}) that the other "
                "sequence does not share; harden it (Transforms module > Harden transform) before scoring")


def check_segment(segmentation: Any, segment_id: str) -> None:
    """A segmentation with at least one segment, and ``segment_id`` one of them."""
    if segmentation is None:
        raise InvalidInput("Tumor segmentation: no segmentation selected; draw the tumor with Segment Editor "
                           "or load a .seg.nrrd, then select it")
    if not segmentation.IsA("vtkMRMLSegmentationNode"):
        raise InvalidInput(f"Tumor segmentation: {segmentation.GetName()!r} is a {segmentation.GetClassName()}, "
                           "not a segmentation")
    content = segmentation.GetSegmentation()
    names = [content.GetNthSegment(i).GetName() for i in range(content.GetNumberOfSegments())]
    if not names:
        raise InvalidInput(f"Tumor segmentation: {segmentation.GetName()!r} has no segments; draw the tumor "
                           "with Segment Editor first")
    if not segment_id:
        raise InvalidInput(f"Tumor segment: none selected; pick one of {', '.join(map(repr, names))}")
    if content.GetSegment(segment_id) is None:
        raise InvalidInput(f"Tumor segment: {segment_id!r} is not in {segmentation.GetName()!r} (it has "
                           f"{', '.join(map(repr, names))}); select the segment again")
