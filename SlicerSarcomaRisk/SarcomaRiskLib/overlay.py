"""Bring the scorer's Grad-CAM file back as a coloured overlay over the MRI.

The Grad-CAM arrives on the T2 grid in the T2's own frame (see :mod:`SarcomaRiskLib.export`); the
node is placed under the T2's parent transform so the two line up in every view. It is shown as
the foreground layer of each slice view with a heat colour map, voxels near zero transparent.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sarcoma_risk.errors import InvalidImage

#: Node attributes that tie a Grad-CAM volume to its case (a pseudonym) and the result it shows.
ROLE_ATTRIBUTE = "SarcomaRisk.Role"
CASE_ATTRIBUTE = "SarcomaRisk.CaseId"
SHA256_ATTRIBUTE = "SarcomaRisk.GradCAMSha256"
GRADCAM_ROLE = "gradcam"
#: Colour maps tried in order: Slicer's Inferno and ColdToHotRainbow tables ship with the
#: application; the procedural PET heat map and Iron also exist in a bare MRML scene.
PREFERRED_COLORMAPS = (
    "vtkMRMLColorTableNodeFileInferno.txt",
    "vtkMRMLColorTableNodeFileColdToHotRainbow.txt",
    "vtkMRMLPETProceduralColorNodePET-Heat",
    "vtkMRMLColorTableNodeIron",
)
#: Foreground opacity: the MRI must stay readable under the heat map.
FOREGROUND_OPACITY = 0.4
#: Voxels below this share of the maximum are transparent, so the map only covers where it matters.
TRANSPARENT_BELOW = 0.05


def find_gradcam_node(scene: Any, case_id: str) -> Any:
    """The Grad-CAM volume already in the scene for ``case_id``, or None."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
        if node.GetAttribute(ROLE_ATTRIBUTE) == GRADCAM_ROLE and node.GetAttribute(CASE_ATTRIBUTE) == case_id:
            return node
    return None


def load_gradcam(scene: Any, path: Path, *, reference: Any, case_id: str, sha256: str) -> Any:
    """Read the Grad-CAM NRRD into a scalar volume node (reusing the case's previous one).

    The node keeps its voxels in memory, not a link to ``path`` (a temporary file): saving the
    scene writes it like any new node. A file that cannot be read or holds non-finite values
    leaves the scene as it was.
    """
    import numpy as np
    import slicer
    import vtk

    fresh = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{case_id} Grad-CAM")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    values = slicer.util.arrayFromVolume(fresh) if storage.ReadData(fresh) else None
    if values is None or values.size == 0 or not np.all(np.isfinite(values)):
        scene.RemoveNode(fresh)
        raise InvalidImage(f"{path}: the Grad-CAM file is unreadable, empty or holds non-finite values")
    node = find_gradcam_node(scene, case_id)
    if node is None:
        node = fresh
    else:  # keep the node the scene (and the parameter node) already refers to
        ijk_to_ras = vtk.vtkMatrix4x4()
        fresh.GetIJKToRASMatrix(ijk_to_ras)
        node.SetIJKToRASMatrix(ijk_to_ras)
        node.SetAndObserveImageData(fresh.GetImageData())
        scene.RemoveNode(fresh)
        previous = node.GetStorageNode()
        if previous is not None:  # from a loaded scene: it would point at the old file
            node.SetAndObserveStorageNodeID(None)
            scene.RemoveNode(previous)
    node.SetAttribute(ROLE_ATTRIBUTE, GRADCAM_ROLE)
    node.SetAttribute(CASE_ATTRIBUTE, case_id)
    node.SetAttribute(SHA256_ATTRIBUTE, sha256)
    node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    _style(scene, node, float(values.min()), float(values.max()))
    return node


def _style(scene: Any, node: Any, low: float, high: float) -> None:
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    colormap = choose_colormap(scene)
    if colormap is not None:
        display.SetAndObserveColorNodeID(colormap)
    span = high - low if math.isfinite(high - low) and high > low else 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, low + span)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(low + TRANSPARENT_BELOW * span)
    display.SetUpperThreshold(low + span)


def choose_colormap(scene: Any) -> str | None:
    """The first of :data:`PREFERRED_COLORMAPS` present in the scene."""
    for node_id in PREFERRED_COLORMAPS:
        if scene.GetNodeByID(node_id) is not None:
            return node_id
    return None


def show_overlay(scene: Any, background: Any, foreground: Any, opacity: float = FOREGROUND_OPACITY) -> int:
    """Set the MRI as background and the Grad-CAM as foreground in every slice view of the scene.

    Returns how many slice views were set (0 in a scene without views, such as a bare MRML scene).
    Inside Slicer the widget also calls ``slicer.util.setSliceViewerLayers``, which does the same
    through the application and fits the views.
    """
    count = scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")
    for i in range(count):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(foreground.GetID())
        composite.SetForegroundOpacity(opacity)
    return count
