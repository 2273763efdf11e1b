"""Bring the scorer's signed Grad-CAM file back as a coloured overlay over the MRI.

The Grad-CAM arrives on the reference volume's grid in its own frame (the T2 when one was
selected, else the T1CE; see :mod:`SarcomaRiskLib.export`); the node is placed under that volume's
parent transform so the two line up in every view. Its values lie in
[-1, 1]: positive where the tumor region raised the risk above the development average, negative
where it lowered it. It is shown as the foreground layer of each slice view through a diverging
colour table centred on zero (blue lowers, white neutral, red raises; the entries near zero are
transparent so the MRI shows through) with a colour legend that says which side is which.
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
#: The diverging colour table: one per scene (a singleton), shared by every case's Grad-CAM.
COLOR_TABLE_TAG = "SarcomaRiskGradCAM"
COLOR_TABLE_NAME = "SarcomaRisk Grad-CAM (blue lowers, red raises the risk)"
COLOR_COUNT = 256
LOWERS_RGB = (0.23, 0.30, 0.75)
NEUTRAL_RGB = (1.0, 1.0, 1.0)
RAISES_RGB = (0.71, 0.02, 0.15)
#: Entries whose value is within this share of the largest absolute value are transparent.
TRANSPARENT_BELOW = 0.05
LEGEND_TITLE = "Grad-CAM\nred: raised the risk\nblue: lowered it"
#: Foreground opacity: the MRI must stay readable under the colour map.
FOREGROUND_OPACITY = 0.4


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
    """The diverging table, a window symmetric about zero (so 0 is the table's centre) and the legend."""
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(diverging_color_table(scene).GetID())
    extent = max(abs(low), abs(high))
    extent = extent if math.isfinite(extent) and extent > 0 else 1.0  # all zero: fully transparent
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(-extent, extent)
    display.SetApplyThreshold(False)  # transparency near zero comes from the table itself
    _legend(scene, node, display)


def diverging_color_table(scene: Any) -> Any:
    """The scene's blue-white-red colour table node for Grad-CAMs (created once, then reused).

    Entry ``i`` stands for the value ``t = (i + 0.5) / COLOR_COUNT * 2 - 1`` of a window from -1 to
    1: blue for -1, white for 0, red for 1, and transparent where ``|t| < TRANSPARENT_BELOW``.
    """
    import slicer

    existing = scene.GetSingletonNode(COLOR_TABLE_TAG, "vtkMRMLColorTableNode")
    if existing is not None:
        return existing
    table = slicer.vtkMRMLColorTableNode()
    table.SetName(COLOR_TABLE_NAME)
    table.SetSingletonTag(COLOR_TABLE_TAG)
    table.SetTypeToUser()
    table.SetNumberOfColors(COLOR_COUNT)
    for i in range(COLOR_COUNT):
        t = (i + 0.5) / COLOR_COUNT * 2.0 - 1.0
        end = RAISES_RGB if t > 0 else LOWERS_RGB
        rgb = [n + abs(t) * (e - n) for n, e in zip(NEUTRAL_RGB, end)]
        label = "raises the risk" if t > 0 else "lowers the risk"
        table.SetColor(i, label, *rgb, 0.0 if abs(t) < TRANSPARENT_BELOW else 1.0)
    table.SetDescription("Signed Grad-CAM of the SarcomaRisk radiology score: red where the tumor region raised "
                         "the risk above the development average, blue where it lowered it")
    scene.AddNode(table)
    return table


def _legend(scene: Any, node: Any, display: Any) -> Any:
    """The volume's colour legend (created once per volume node) with a title that says which side is which."""
    import slicer

    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(node)
    if legend is None:
        legend = slicer.vtkMRMLColorLegendDisplayNode()
        scene.AddNode(legend)
        node.AddAndObserveDisplayNodeID(legend.GetID())
    legend.SetAndObservePrimaryDisplayNode(display)
    legend.SetTitleText(LEGEND_TITLE)
    legend.SetLabelFormat("%+.1f")
    legend.SetVisibility(True)
    return legend


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
