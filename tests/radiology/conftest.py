"""Session fixtures of the radiology tests: tiny phantom MRI cases and a briefly trained tiny model.

Everything heavy is built once per session: about 60 tiny phantoms (a fraction of a second each)
and one training run of the "tiny" preset (a few seconds with one torch thread).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

#: The training phantoms: phenotypes spread evenly over [-2, 2] (shuffled), survival driven by the
#: phenotype with little noise, so that a few seconds of training reliably beat chance. Seeds were
#: fixed once; the held-out C-index was then 0.8-0.9 across the seeds tried (0.5 is chance).
N_TRAIN, N_HELD_OUT = 40, 20
DATA_SEED = 7


@contextlib.contextmanager
def one_thread():
    """One torch thread: on a busy shared 2-core machine, two threads are several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """Every radiology test runs torch on one thread (session fixtures set it themselves)."""
    with one_thread():
        yield


@dataclass
class PhantomSet:
    cases: list  # PhantomMRI
    phenotype: np.ndarray
    time: np.ndarray
    event: np.ndarray
    X: np.ndarray  # tiny-preset patches

    @property
    def train(self) -> slice:
        return slice(0, N_TRAIN)

    @property
    def held_out(self) -> slice:
        return slice(N_TRAIN, N_TRAIN + N_HELD_OUT)


@pytest.fixture(scope="session")
def phantom_set(tmp_path_factory) -> PhantomSet:
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.preprocess import prepare_case
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    root = tmp_path_factory.mktemp("radiology_phantoms")
    n = N_TRAIN + N_HELD_OUT
    rng = np.random.default_rng(DATA_SEED)
    phenotype = rng.permutation(np.linspace(-2, 2, n))
    size_cm = rng.uniform(4, 9, n)
    time = 24 * np.exp(-1.2 * phenotype + 0.3 * rng.normal(size=n))
    event = rng.random(n) < 0.85
    config = preset("tiny")[0]
    cases, arrays = [], []
    for i in range(n):
        case = write_phantom_mri(root / f"case{i:02d}", phenotype=float(phenotype[i]), tumor_size_cm=float(size_cm[i]),
                                 centre="AB"[i % 2], size="tiny", seed=100 + i, oblique=i % 3 == 0)
        cases.append(case)
        arrays.append(prepare_case(read_case(case.t2fs, case.seg, case.t1ce), config).array)
    return PhantomSet(cases, phenotype, time, event, np.stack(arrays))


@pytest.fixture(scope="session")
def trained(phantom_set, tmp_path_factory):
    """(model, weights folder): the tiny preset fitted on the training phantoms (T2FS + T1CE + mask) and
    registered as the T2FS + T1CE model (an ensemble of this one model), beside a T2FS-only model
    fitted on the same cases' T2FS and mask channels. No T1CE-only model: scoring a T1CE alone fails."""
    from sarcoma_risk.radiology.checkpoint import save_model
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.ensemble import RadiologyEnsemble, ReferenceSource
    from sarcoma_risk.radiology.train import RadiologyCoxModel

    pre, net, train = preset("tiny")
    rows = phantom_set.train
    with one_thread():
        model = RadiologyCoxModel(pre, net, train).fit(phantom_set.X[rows], phantom_set.time[rows],
                                                      phantom_set.event[rows])
        t2_only = RadiologyCoxModel(replace(pre, sequences=("t2fs",)), net, train).fit(
            phantom_set.X[rows][:, [0, 2]], phantom_set.time[rows], phantom_set.event[rows])
    weights = tmp_path_factory.mktemp("radiology_weights")
    for member in (model, t2_only):
        ensemble = RadiologyEnsemble([member], member.reference_scores_, ReferenceSource.IN_SAMPLE)
        save_model(ensemble, weights, version="test+tiny", training_data={"n_cases": N_TRAIN}, validation={})
    return model, weights


@pytest.fixture(scope="session")
def high_risk_case(phantom_set, trained):
    """The held-out oblique case the trained model scores highest (a clear Grad-CAM is expected there)."""
    model, _ = trained
    held = np.arange(N_TRAIN, N_TRAIN + N_HELD_OUT)
    oblique = [i for i in held if i % 3 == 0]
    with one_thread():
        scores = model.predict(phantom_set.X[oblique])
    return phantom_set.cases[oblique[int(np.argmax(scores))]]


@pytest.fixture(scope="session")
def tiny_case(tmp_path_factory):
    """One tiny oblique phantom (NIfTI) from centre A, for reading and preprocessing tests."""
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    return write_phantom_mri(tmp_path_factory.mktemp("tiny_case"), phenotype=1.0, tumor_size_cm=6.0, centre="A",
                             size="tiny", seed=11, oblique=True)


@pytest.fixture(scope="session")
def dicom_case(tmp_path_factory):
    """The same kind of case written as two DICOM series."""
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    return write_phantom_mri(tmp_path_factory.mktemp("dicom_case"), phenotype=0.5, tumor_size_cm=6.0, centre="A",
                             size="tiny", seed=12, oblique=True, dicom=True)


@pytest.fixture()
def slicer_segmentation():
    """A function writing a .seg.nrrd with slicer-core's own storage node, from {name: 0/1 (z, y, x) array}.

    Non-overlapping segments share a layer (different label values); overlapping ones make Slicer
    write further layers (a 4D file). Geometry: spacing (1, 1, 2) mm, RAS origin (10, 20, 30).
    """
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")
    import vtk
    from vtk.util import numpy_support

    def write(path: Path, segments: dict[str, np.ndarray]) -> None:
        scene = slicer.vtkMRMLScene()
        node = slicer.vtkMRMLSegmentationNode()
        scene.AddNode(node)
        for name, array in segments.items():
            image = slicer.vtkOrientedImageData()
            image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
            image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
            numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = array.astype(np.uint8).ravel()
            image.SetSpacing(1.0, 1.0, 2.0)
            image.SetOrigin(10.0, 20.0, 30.0)
            segment = slicer.vtkSegment()
            segment.SetName(name)
            segment.AddRepresentation("Binary labelmap", image)
            node.GetSegmentation().AddSegment(segment)
        node.GetSegmentation().CollapseBinaryLabelmaps(False)
        storage = slicer.vtkMRMLSegmentationStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(path))
        if not storage.WriteData(node):
            raise RuntimeError(f"slicer-core could not write {path}")

    return write


def as_deployed(member):
    """A fitted RadiologyCoxModel as a deployable model of its sequence set (an ensemble of it alone)."""
    from sarcoma_risk.radiology.ensemble import RadiologyEnsemble, ReferenceSource

    return RadiologyEnsemble([member], member.reference_scores_, ReferenceSource.IN_SAMPLE)
