"""Radiology scoring speed: one 512 x 512 x 40 MRI case, end to end, and the network's share of it.

The case is a "medium" phantom (T2FS + T1CE NIfTI, Slicer .seg.nrrd). Timed, as ``score-mri`` runs
them: reading the two volumes and the segment, preprocessing, the network with Grad-CAM (forward and
backward to the last stage), mapping the Grad-CAM onto the 10-million-voxel MRI grid and writing it
as a compressed NRRD. The model is the registered T2FS + T1CE radiology model of the default weights
folder (the mean of its fold models: one Grad-CAM pass per member) when there is one with the
standard input size; otherwise one untrained network of the standard configuration (the cost of
one member; the JSON says which). Also: phantom rendering time per size.

Target: under 3 s per case on 2 cores. Run: ``.venv/bin/python benchmarks/bench_mri.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import emit, machine

BENCH = "mri"
REPEATS = 3
TARGET_S = 3.0


def load_or_build_model():
    """(model, description): registered weights when present, else an untrained standard network."""
    import numpy as np

    from sarcoma_risk.errors import SarcomaRiskError
    from sarcoma_risk.radiology.checkpoint import load_model
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.ensemble import ReferenceSource, RadiologyEnsemble
    from sarcoma_risk.radiology.model import CBAMNet3d
    from sarcoma_risk.radiology.train import RadiologyCoxModel
    from sarcoma_risk.settings import default_weights_dir

    standard = preset("standard")
    try:
        model, entry = load_model(default_weights_dir(), "t2fs+t1ce")
        if model.preprocess.patch_size == standard[0].patch_size and model.model == standard[1]:
            return model, f"trained weights {entry['version']} ({entry['sha256'][:12]}), {len(model.members)} members"
        note = "registered weights have a non-standard size"
    except SarcomaRiskError as exc:
        note = f"no trained weights ({type(exc).__name__})"
    member = RadiologyCoxModel(*standard)
    member.network_ = CBAMNet3d(standard[0].in_channels, standard[1]).eval()
    member.reference_scores_ = np.linspace(-1, 1, 101)
    model = RadiologyEnsemble([member], member.reference_scores_, ReferenceSource.IN_SAMPLE)
    return model, f"untrained network of the standard configuration; {note}"


def time_render(root: Path) -> None:
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    for size, repeats in (("tiny", 5), ("small", 2), ("medium", 1)):
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            write_phantom_mri(root / f"render-{size}-{i}", phenotype=0.5, tumor_size_cm=8.0, centre="B", size=size,
                              seed=i, oblique=True)
            times.append(time.perf_counter() - start)
        emit(BENCH, f"phantom_render_{size}_seconds", round(statistics.median(times), 4), "s", repeats=repeats,
             **({"target_s": 0.5} if size == "tiny" else {}))


def time_command(model, case, root: Path) -> None:
    """The whole ``score-mri`` command in a fresh process, as the 3D Slicer module runs it."""
    import subprocess

    from sarcoma_risk.radiology.checkpoint import save_model

    weights = root / "weights"
    save_model(model, weights, version="bench", training_data={}, validation={})
    command = [sys.executable, "-m", "sarcoma_risk.cli", "score-mri", "--case", "BENCH-1", "--t2fs", str(case.t2fs),
               "--t1ce", str(case.t1ce), "--mask", str(case.seg), "--weights", str(weights),
               "--gradcam", str(root / "cli-gradcam.nrrd"), "--store", str(root / "cases.sqlite"), "--json"]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    emit(BENCH, "score_mri_command_seconds", round(min(times), 3), "s",
         what="fresh process: Python start, imports, weights check, scoring, Grad-CAM file, record write")


def main() -> int:
    import numpy as np
    import torch

    from sarcoma_risk.radiology.gradcam import cam_to_original, grad_cam
    from sarcoma_risk.radiology.infer import write_volume
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.preprocess import prepare_case
    from sarcoma_risk.synthetic.mri import write_phantom_mri

    torch.set_num_threads(2)
    model, description = load_or_build_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        case = write_phantom_mri(root / "medium", phenotype=0.5, tumor_size_cm=9.0, centre="A", size="medium",
                                 seed=1, oblique=True)
        runs = []
        for i in range(REPEATS):
            stages = {}
            start = time.perf_counter()
            mri = read_case(case.t2fs, case.seg, case.t1ce)
            stages["read"] = time.perf_counter() - start
            t = time.perf_counter()
            prepared = prepare_case(mri, model.preprocess)
            stages["preprocess"] = time.perf_counter() - t
            t = time.perf_counter()
            results = [grad_cam(member.network_, prepared.array) for member in model.members]
            stages["network"] = time.perf_counter() - t
            t = time.perf_counter()
            shares = np.mean([r.shares for r in results], axis=0)
            cam = cam_to_original(shares, prepared.geometry, model.model.feature_stride, mri.reference)
            model.percentile(float(np.mean([r.score for r in results])))
            stages["gradcam_to_mri"] = time.perf_counter() - t
            t = time.perf_counter()
            write_volume(cam, root / f"gradcam-{i}.nrrd")
            stages["write_gradcam"] = time.perf_counter() - t
            stages["total"] = time.perf_counter() - start
            runs.append(stages)
        size = list(mri.reference.GetSize())
        total = statistics.median(r["total"] for r in runs)
        network = statistics.median(r["network"] for r in runs)
        context = {"voxels": size, "sequences": list(model.preprocess.sequences), "threads": torch.get_num_threads(),
                   "repeats": REPEATS, "model": description, **machine()}
        emit(BENCH, "score_case_seconds", round(total, 3), "s", target_s=TARGET_S, meets_target=total < TARGET_S,
             **context)
        emit(BENCH, "network_share", round(network / total, 3), "fraction", network_seconds=round(network, 3),
             what="forward + Grad-CAM backward of the CBAM 3D CNN", **context)
        for stage in ("read", "preprocess", "network", "gradcam_to_mri", "write_gradcam"):
            emit(BENCH, f"{stage}_seconds", round(statistics.median(r[stage] for r in runs), 3), "s")
        time_command(model, case, root)
        time_render(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
