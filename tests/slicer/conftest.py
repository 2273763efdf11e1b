"""Fixtures for the Slicer module's tests: a real MRML scene from slicer-core and a phantom case.

The scene is set up as 3D Slicer sets up its own (the default colour tables and one slice
composite node per slice view), so the logic meets what it meets in the application.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2] / "SlicerSarcomaRisk"
if str(MODULE_DIR) not in sys.path:  # Slicer puts a scripted module's folder on sys.path the same way
    sys.path.insert(0, str(MODULE_DIR))

SLICE_VIEWS = ("Red", "Yellow", "Green")


@pytest.fixture
def scene():
    """An empty MRML scene with Slicer's default colour nodes and three slice views' composite nodes."""
    import slicer

    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    for name in SLICE_VIEWS:
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetName(f"SliceComposite{name}")
        composite.SetLayoutName(name)
        composite.SetSingletonTag(name)
        scene.AddNode(composite)
    yield scene
    colors.SetMRMLScene(None)
    scene.Clear(True)


@pytest.fixture(scope="session")
def phantom_mri(tmp_path_factory):
    """One tiny oblique phantom case (T2FS, T1CE NIfTI, .seg.nrrd with "Tumor" and "Peritumoral edema")."""
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    return write_phantom_mri(tmp_path_factory.mktemp("phantom_mri"), phenotype=0.8, tumor_size_cm=7.0,
                             centre="A", size="tiny", seed=21, oblique=True)


def _load_node(scene, node_class: str, path: Path, storage_class: str, name: str):
    """Add a node of ``node_class`` and read ``path`` into it through a storage node (as Slicer does)."""
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node):
        raise AssertionError(f"{path} could not be read by {storage_class}")
    return node


@pytest.fixture
def load_node():
    """``load_node(scene, node_class, path, storage_class, name)``: a node read through a storage node."""
    return _load_node


def _segment_id(segmentation, name: str) -> str:
    content = segmentation.GetSegmentation()
    for i in range(content.GetNumberOfSegments()):
        if content.GetNthSegment(i).GetName() == name:
            return content.GetNthSegmentID(i)
    raise AssertionError(f"no segment named {name!r}")


@pytest.fixture
def segment_id():
    """``segment_id(segmentation_node, name)``: the id of the segment with that name."""
    return _segment_id


@pytest.fixture
def loaded_case(scene, phantom_mri):
    """The phantom case loaded into ``scene``: (t2, t1ce, segmentation) nodes."""
    t2 = _load_node(scene, "vtkMRMLScalarVolumeNode", phantom_mri.t2fs, "vtkMRMLVolumeArchetypeStorageNode", "T2 FS AX")
    t1ce = _load_node(scene, "vtkMRMLScalarVolumeNode", phantom_mri.t1ce, "vtkMRMLVolumeArchetypeStorageNode",
                     "T1 FS AX POST GD")
    segmentation = _load_node(scene, "vtkMRMLSegmentationNode", phantom_mri.seg, "vtkMRMLSegmentationStorageNode",
                             "Tumor segmentation")
    return t2, t1ce, segmentation



@pytest.fixture(scope="session")
def radiology_weights(phantom_cohort_tiny, tmp_path_factory):
    """A weights folder with a tiny radiology model trained on the shared phantom cohort (seconds).

    Trained through the real command line, as a coordinator would: ``sarcoma-risk train radiology``.
    """
    from sarcoma_risk.cli import main

    out = tmp_path_factory.mktemp("radiology_weights")
    code = main(["train", "radiology", "--manifest", str(phantom_cohort_tiny.manifest), "--out", str(out),
                 "--preset", "tiny", "--folds", "0", "--epochs", "8", "--threads", "1"])
    assert code == 0, "training the tiny radiology model failed"
    return out


def _wrapper_parameters() -> dict[str, str]:
    """Name -> annotation of the module's @parameterNodeWrapper class, read from SarcomaRisk.py."""
    import ast

    tree = ast.parse((MODULE_DIR / "SarcomaRisk.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in SarcomaRisk.py")


@pytest.fixture
def wrapper_parameters():
    """The parameters the module saves with the scene: name -> type (as written in SarcomaRisk.py)."""
    return _wrapper_parameters()


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path, monkeypatch):
    """Temporary export folders go under tmp_path, so a test can see that none is left behind."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
