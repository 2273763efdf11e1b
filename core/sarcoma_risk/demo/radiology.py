"""The demo's MRI, scored the way the radiologist's 3D Slicer module scores it.

The volumes and the segmentation are read into an MRML scene through storage nodes (what Slicer's
Add Data does), and the module's own logic, :class:`SarcomaRiskLib.RadiologyScoring`, checks and
exports them and runs ``python -m sarcoma_risk.cli score-mri ... --json`` in a separate process, then
loads the Grad-CAM back as a volume node over the T2. The scene comes from slicer-core (installed
with the ``test`` extras, which ``make demo`` installs), and SarcomaRiskLib from the module's folder
in this source tree (``SlicerSarcomaRisk/``).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from sarcoma_risk.errors import InvalidImage, MissingDependency

TUMOR_SEGMENT = "Tumor"
MODULE_DIR = Path(__file__).resolve().parents[3] / "SlicerSarcomaRisk"


@dataclass(frozen=True)
class MriView:
    """What the report shows of the MRI: voxels ``[k, j, i]`` of the T2, Grad-CAM and tumor, and the score."""

    t2: np.ndarray
    gradcam: np.ndarray
    tumor: np.ndarray
    spacing_mm: tuple[float, float, float]
    result: Any  # SarcomaRiskLib.RadiologyResult


def _slicer_logic() -> tuple[Any, Any]:
    """``slicer`` (slicer-core) and ``SarcomaRiskLib``, or a message saying what to install."""
    try:
        import slicer
    except ImportError:
        raise MissingDependency("the demo drives the 3D Slicer module's logic on an MRML scene, which needs "
                                "slicer-core: run `make demo` (it installs the dev extras) or "
                                "`pip install 'sarcoma-risk[test]'`") from None
    if not (MODULE_DIR / "SarcomaRiskLib").is_dir():
        raise MissingDependency(f"{MODULE_DIR}: the 3D Slicer module's folder is not there; run the demo from a "
                                "source checkout of SarcomaRisk")
    if str(MODULE_DIR) not in sys.path:  # as Slicer puts a scripted module's folder on sys.path
        sys.path.insert(0, str(MODULE_DIR))
    import SarcomaRiskLib

    return slicer, SarcomaRiskLib


def _new_scene(slicer: Any) -> tuple[Any, Any]:
    """An MRML scene with Slicer's default colour tables (the Grad-CAM's colour map comes from them)."""
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    return scene, colors


def _load(scene: Any, node_class: str, storage_class: str, path: Path, name: str) -> Any:
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        raise InvalidImage(f"{path}: 3D Slicer's {storage_class} could not read it")
    return node


def _segment_id(segmentation: Any, name: str) -> str:
    content = segmentation.GetSegmentation()
    for i in range(content.GetNumberOfSegments()):
        if content.GetNthSegment(i).GetName() == name:
            return content.GetNthSegmentID(i)

    raise InvalidImage(f"the segmentation has no segment named {name!r}")


def _tumor_on(scene: Any, segmentation: Any, segment: str, reference: Any) -> np.ndarray:
    """The segment as a boolean array on ``reference``'s voxels ``[k, j, i]`` (Segmentations module logic)."""
    import slicer
    import vtk

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "demo tumor")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    try:
        if not logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference):
            raise InvalidImage("the tumor segment could not be converted to a labelmap on the T2 grid")
        return slicer.util.arrayFromVolume(labelmap) > 0
    finally:
        scene.RemoveNode(labelmap)


@contextlib.contextmanager
def _quiet_vtk() -> Iterator[None]:
    """VTK's own log lines off while the scene is used: reading a phantom .seg.nrrd that lacks Slicer's
    optional "Reference image geometry" parameter logs an error line although nothing is wrong (the
    readers' return values, which are checked, say whether reading worked)."""
    import vtk

    previous = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield
    finally:
        vtk.vtkLogger.SetStderrVerbosity(previous)


def score_mri_in_slicer(case: Any, *, store: str | Path, weights: Path, log: Callable[[str], None]) -> MriView:
    """Score ``case`` (a :class:`~sarcoma_risk.demo.case.DemoCase`) through the Slicer module's logic."""
    slicer, lib = _slicer_logic()
    with _quiet_vtk():
        scene, colors = _new_scene(slicer)
        try:
            return _score(slicer, lib, scene, case, store=store, weights=weights, log=log)
        finally:
            colors.SetMRMLScene(None)
            scene.Clear(True)


def _score(slicer: Any, lib: Any, scene: Any, case: Any, *, store: str | Path, weights: Path,
           log: Callable[[str], None]) -> MriView:
    t2 = _load(scene, "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", case.t2fs, "T2 FS AX")
    t1ce = _load(scene, "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", case.t1ce, "T1 FS AX POST GD")
    segmentation = _load(scene, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", case.segmentation,
                         "Tumor segmentation")
    segment = _segment_id(segmentation, TUMOR_SEGMENT)
    scoring = lib.RadiologyScoring(scene, lib.ScoringInputs(case.case_id, t2, segmentation, segment, t1ce),
                                   python_executable=sys.executable, store_path=store, weights_dir=weights)
    result = scoring.run(log=log)
    return MriView(t2=slicer.util.arrayFromVolume(t2).copy(),
                   gradcam=slicer.util.arrayFromVolume(result.gradcam_node).copy(),
                   tumor=_tumor_on(scene, segmentation, segment, t2),
                   spacing_mm=tuple(float(s) for s in t2.GetSpacing()), result=result)
