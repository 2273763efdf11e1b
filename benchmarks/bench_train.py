"""Training and inference speed at paper scale, per device: patches/s, MRI cases/s, peak memory.

The paper-scale configuration (``train pathology --preset paper``, ``train radiology --preset
paper``): ShuffleNetV2 x1.0 on 224-pixel patches at 0.5 um/px (20x), batch 32, AdamW; the CBAM 3D
CNN at its default size on 64^3 patches at 2 mm (T2FS + T1CE + mask), batch 16. The data is a
``medium`` phantom cohort made with ``sarcoma-risk synth`` (32000 x 24000-pixel slides,
512 x 512 x 40 MRI): real slides read with OpenSlide and real MRI through the preprocessing.

Each figure times a fixed number of steps after one warm-up step, not whole epochs, so the run is
bounded (about five minutes on 2 CPU cores, most of it rendering the cohort):

- pathology_train_patches_per_s: reading (reader threads, or ``--num-workers`` DataLoader
  processes with page-locked batches on CUDA), stain/flip augmentation, forward, backward and the
  AdamW step, as ``PatchTrainer`` does them;
- pathology_infer_patches_per_s: the patch model alone on patches already read (``PatchRunner``,
  channels-last, fp32, batch 64);
- radiology_train_cases_per_s: augmentation, forward, Cox partial likelihood, backward, AdamW (the
  cohort's prepared cases repeated to fill the batch: compute does not depend on which case it is);
- radiology_infer_cases_per_s: the network alone on prepared patches (batch 8); both radiology
  figures also give ``prepare_s_per_case``, reading a medium MRI case and preprocessing it (CPU);
- peak_memory_mb: each figure runs in its own process; the peak is that process's resident set
  on the CPU, and ``torch.cuda.max_memory_allocated`` on a GPU.

Every figure is measured on each device present (the CPU always; CUDA when torch sees a GPU; pass
``--devices`` to choose). The initial weights are the paper preset's ``--init auto``:
torchvision's ImageNet weights when they are already in the torch hub cache, else random weights
(nothing is downloaded; speed does not depend on them); the pathology figures say which
(``init``, ``init_note``). The JSON lines give the load average of the machine, which matters on a
shared one.

Run: ``.venv/bin/python benchmarks/bench_train.py [--cohort DIR] [--devices cpu,cuda] [--num-workers N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit, machine

BENCH = "train"
TASKS = ("pathology-train", "pathology-infer", "radiology-train", "radiology-infer")
PATCH_BATCH, INFER_BATCH, MRI_BATCH, MRI_INFER_BATCH = 32, 64, 16, 8


def make_cohort(root: Path, cases: int) -> Path:
    """A medium phantom cohort by ``sarcoma-risk synth`` (all cases development, centre A)."""
    from sarcoma_risk.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the figures alone
        status = main(["synth", "--out", str(root), "--cases", str(cases), "--centres", "A", "--seed", "11", "--size",
                       "medium", "--workers", "2"])
    if status:
        raise SystemExit(f"sarcoma-risk synth failed with status {status}")
    emit(BENCH, "synth_medium_cohort_s", round(time.perf_counter() - start, 1), "s", cases=cases)
    return root / "manifest.csv"


def peak_memory_mb(device) -> tuple[float, str]:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS of the process"


def timed(step, steps: int, device) -> float:
    """Seconds for ``steps`` calls of ``step(i)`` after one warm-up call (synchronised on a GPU)."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step(0)
    sync()
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    sync()
    return time.perf_counter() - start


def pathology(manifest: Path, device, steps: int, train: bool, num_workers: int = 0) -> dict:
    import numpy as np
    import torch

    from sarcoma_risk.device import pin_memory, to_device
    from sarcoma_risk.pathology.augment import augment_batch
    from sarcoma_risk.pathology.crossfit import load_cohort
    from sarcoma_risk.pathology.loader import PatchReader
    from sarcoma_risk.pathology.model import PatchRunner, make_patch_model, resolve_init
    from sarcoma_risk.pathology.train import PAPER_PRESET, SlidePool, TrainConfig, prepare_slides, sample_epoch

    init, init_note = resolve_init(PAPER_PRESET["init"], PAPER_PRESET["architecture"])
    config = TrainConfig(**{**PAPER_PRESET, "init": init}, batch_size=PATCH_BATCH)
    cases = load_cohort(manifest).development
    pool = SlidePool()
    prepare_slides(cases, config, pool)
    batch = PATCH_BATCH if train else INFER_BATCH
    sample = sample_epoch(cases, [i % 2 for i in range(len(cases))], (steps + 1) * batch, np.random.default_rng(0))
    refs = [ref for case in cases for ref in case.slides]
    workers = num_workers if train else 0  # inference is timed on patches already in memory
    reader = PatchReader(pool, refs, threads=config.workers, num_workers=workers, pin_memory=pin_memory(device))
    torch.manual_seed(0)
    model = make_patch_model(config.architecture, init).to(device, memory_format=torch.channels_last)
    extra = {"architecture": config.architecture, "patch_px": config.patch_px, "spacing_um": config.spacing_um,
             "init": init, "init_note": init_note, "batch": batch, "steps": steps,
             **({"num_workers": workers} if train else {})}
    if train:
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
        generator = torch.Generator().manual_seed(0)
        batches = reader.batches([s[:3] for s in sample], batch)
        targets = torch.tensor([float(s[3]) for s in sample])
        model.train()

        def step(_: int) -> None:
            start, patches = next(batches)
            x = to_device(patches, device).permute(0, 3, 1, 2).float().div_(255.0)
            x = augment_batch(x, config.augment, generator).contiguous(memory_format=torch.channels_last)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(x), to_device(targets[start:start + len(patches)], device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        seconds = timed(step, steps, device)
        figure, includes = "pathology_train_patches_per_s", "reading, augmentation, forward, backward, AdamW step"
    else:
        patches = [b.numpy() for _, b in reader.batches([s[:3] for s in sample], batch)]
        runner = PatchRunner(model, "fp32", device)
        seconds = timed(lambda i: runner(patches[i]), steps, device)
        figure, includes = "pathology_infer_patches_per_s", "the model alone, patches in memory"
    reader.close()
    pool.close()
    return {"figure": figure, "value": round(steps * batch / seconds, 1), "unit": "patches/s", "includes": includes,
            **extra}


def radiology(manifest: Path, device, steps: int, train: bool) -> dict:
    import numpy as np
    import torch

    from sarcoma_risk.cohort import read_manifest
    from sarcoma_risk.device import to_device
    from sarcoma_risk.radiology.augment import augment_batch
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.losses import cox_partial_nll
    from sarcoma_risk.radiology.model import CBAMNet3d
    from sarcoma_risk.radiology.preprocess import prepare_case

    preprocess, network_config, train_config = preset("paper")
    cases = [c for c in read_manifest(manifest).cases if c.has_mri]
    start = time.perf_counter()
    arrays = [prepare_case(read_case(c.mri_t2fs, c.tumor_seg, c.mri_t1ce, segment=c.tumor_segment), preprocess).array
              for c in cases]
    prepare_s = (time.perf_counter() - start) / len(cases)
    batch = MRI_BATCH if train else MRI_INFER_BATCH
    X = torch.from_numpy(np.stack([arrays[i % len(arrays)] for i in range(batch)]).astype(np.float32))
    torch.manual_seed(0)
    network = CBAMNet3d(preprocess.in_channels, network_config).to(device)
    extra = {"patch": f"{preprocess.patch_size}^3 at {preprocess.spacing_mm:g} mm", "widths": list(network_config.widths),
             "batch": batch, "steps": steps, "prepare_s_per_case": round(prepare_s, 2), "cases_prepared": len(cases)}
    if train:
        optimiser = torch.optim.AdamW(network.parameters(), lr=train_config.learning_rate)
        generator = torch.Generator().manual_seed(0)
        time_t = torch.linspace(6.0, 60.0, batch, dtype=torch.float64)
        event_t = torch.arange(batch) % 3 != 0
        network.train()

        def step(_: int) -> None:
            inputs = augment_batch(to_device(X, device), train_config, len(preprocess.sequences), generator)
            loss = cox_partial_nll(network(inputs).float().cpu(), time_t, event_t, train_config.ties)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        seconds = timed(step, steps, device)
        figure, includes = "radiology_train_cases_per_s", "augmentation, forward, Cox loss, backward, AdamW step"
    else:
        network.eval()
        x = to_device(X, device)

        def step(_: int) -> None:
            with torch.inference_mode():
                network(x)

        seconds = timed(step, steps, device)
        figure, includes = "radiology_infer_cases_per_s", "the network alone, prepared patches in memory"
    return {"figure": figure, "value": round(steps * batch / seconds, 2), "unit": "cases/s", "includes": includes,
            **extra}


def child(task: str, device_name: str, manifest: Path, steps: int, num_workers: int) -> None:
    """One figure in this fresh process, then its peak memory: one JSON object on stdout."""
    from sarcoma_risk.device import describe, resolve_device

    device = resolve_device(device_name)
    kind, mode = task.split("-")
    if kind == "pathology":
        result = pathology(manifest, device, steps, mode == "train", num_workers)
    else:
        result = radiology(manifest, device, steps, mode == "train")
    memory, how = peak_memory_mb(device)
    print(json.dumps({**result, "peak_memory_mb": round(memory, 1), "memory": how, **describe(device)}))


def run_child(task: str, device: str, manifest: Path, steps: int, num_workers: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", task, "--device-name", device, "--cohort",
                           str(manifest.parent), "--steps", str(steps), "--num-workers", str(num_workers)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{task} on {device} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=None, help="a medium phantom cohort folder (default: make one)")
    parser.add_argument("--cases", type=int, default=2, help="cases of the cohort made (default: 2)")
    parser.add_argument("--devices", default=None, help="comma-separated (default: every device present)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per figure (default: 4 on CPU, 20 on GPU)")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N",
                        help="DataLoader processes reading the patch-model training patches (default: 0, reader "
                             "threads, as `train pathology` on a small CPU machine; a GPU wants several)")
    parser.add_argument("--child", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--device-name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.device_name, args.cohort / "manifest.csv", args.steps, args.num_workers)
        return
    emit(BENCH, "machine", None, "", **machine(), load_average_1min=round(os.getloadavg()[0], 2))
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        manifest = args.cohort / "manifest.csv" if args.cohort else make_cohort(Path(tmp) / "cohort", args.cases)
        for device in args.devices.split(",") if args.devices else available_devices():
            steps = args.steps or (4 if device == "cpu" else 20)
            for task in TASKS:
                result = run_child(task, device, manifest, steps, args.num_workers)
                emit(BENCH, result.pop("figure"), result.pop("value"), result.pop("unit"), **result,
                     load_average_1min=round(os.getloadavg()[0], 2))


if __name__ == "__main__":
    main()
