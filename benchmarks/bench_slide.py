"""Whole-slide pipeline speed and memory: model vs end-to-end throughput, peak RSS vs slide size.

Figures (one JSON line each, see common.emit):

- phantom_render_tiny_s, phantom_deterministic: the renderer's speed and same-seed-same-bytes;
- model_patches_per_s_<path>: the patch model alone on patches already in memory (batch 64, 224 px,
  ShuffleNetV2 x1.0), for eager NCHW, channels-last fp32 (the default path) and bf16 autocast;
- bf16_max_abs_prob_diff: bf16 vs fp32 probabilities on real phantom patches with trained weights;
- streaming_patches_per_s, streaming_to_model_ratio: reading + tiling-free streaming inference of
  a whole "small" slide, in the same process with the same batch size and path (target >= 0.9);
- read_only_patches_per_s_one_thread, streaming_ratio_ceiling: reading alone, and the ratio that
  streaming can reach on this machine when reading's CPU time is taken from the model's cores;
- end_to_end_patches_per_s, end_to_end_to_model_ratio: the same including opening the slide,
  tissue detection and tiling;
- peak_rss_mb_small / peak_rss_mb_4x and their ratio: scoring a slide and one with 4x the area,
  each in its own child process, so each peak is its own;
- score_slide_*: ``sarcoma-risk score-slide`` as a user runs it (a fresh process, the shipped
  weights: ShuffleNetV2 x0.5 at 112 px / 1.0 um, no tile cache yet) on a 16384 x 16384 phantom SVS:
  its patches/s end to end, and where its time went, one figure per stage (``score_slide_stage_s``
  with ``stage``: Python start-up and imports, loading the models, opening, fingerprint, tissue
  detection, tiling, streaming and within it the model, waiting for patches and the HDF5 cache,
  the tile CSV, the GeoJSON, the heatmap, the case record);
- wsinfer_patches_per_s and score_slide_to_wsinfer_ratio (target >= 1.5): WSInfer 0.6.1 on the
  same slide with the same network and patch geometry, run side by side (alternating) with
  score-slide. WSInfer lives in its own virtual environment: give its ``wsinfer`` executable with
  ``--wsinfer PATH`` or ``$SARCOMA_RISK_BENCH_WSINFER``; without it these figures say it was not
  measured. The benchmark writes WSInfer's model (the network traced to TorchScript, normalisation
  in WSInfer's transforms) and its config.json, and runs it offline (an empty model-zoo registry in
  a private HOME, ``HF_HUB_OFFLINE=1``, ``WSINFER_FORCE_CPU=1``) with its default reader workers and
  the same batch size (64).
- load_average_1min: the machine's load when the comparison ran (other jobs skew every figure).

Weights: ``--weights DIR`` (a folder with pathology-patch at 224 px), else a short training run on
tiny phantom slides (224 px at 0.5 um/px, three short epochs: trained weights for the bf16 check,
not a good model); heldout_spearman_phenotype_vs_mean_probability says how much it learnt. Run: ``.venv/bin/python benchmarks/bench_slide.py`` (``--compare-only``: the score-slide breakdown and
the WSInfer comparison alone, a few minutes).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import copy
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import emit, machine

BENCH = "slide"
BATCH = 64


def render(root: Path) -> dict[str, Path]:
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    start = time.perf_counter()
    first = write_phantom_slide(root / "tiny-a.svs", phenotype=0.3, centre="A", size="tiny", seed=5, artefacts=True)
    emit(BENCH, "phantom_render_tiny_s", round(time.perf_counter() - start, 3), "s", size="tiny", target="< 1")
    again = write_phantom_slide(root / "tiny-b.svs", phenotype=0.3, centre="A", size="tiny", seed=5, artefacts=True)
    same = hashlib.sha256(first.slide.read_bytes()).digest() == hashlib.sha256(again.slide.read_bytes()).digest()
    emit(BENCH, "phantom_deterministic", int(same), "bool")
    small = write_phantom_slide(root / "small.svs", phenotype=0.5, centre="A", size="small", seed=3, annotate=False)
    large = write_phantom_slide(root / "large4x.svs", phenotype=0.5, centre="A", size="small", seed=3,
                                annotate=False, dimensions=(24000, 18000))
    return {"small": small.slide, "large": large.slide}


def train_weights(root: Path) -> Path:
    """A short 224-px training run on tiny phantoms (folds 0): weights that are trained, if briefly."""
    from sarcoma_risk.pathology.crossfit import SignatureConfig, train_pathology
    from sarcoma_risk.pathology.train import TrainConfig
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    rows = []
    for i, z in enumerate(np.linspace(-1.5, 1.5, 8)):
        rendered = write_phantom_slide(root / f"train-{i}.svs", phenotype=float(z), centre="A", size="tiny",
                                       seed=200 + i)
        rows.append({"case_id": f"B-{i}", "centre": "A", "split": "development",
                     "time_months": f"{36 * np.exp(-z):.2f}", "event": "1", "slides": rendered.slide.name,
                     "annotations": rendered.annotation.name})
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = TrainConfig(architecture="shufflenet_v2_x1_0", init="random", epochs=3, patches_per_epoch=384,
                         batch_size=32, val_fraction=0.25, val_patches_per_slide=16)
    out = root / "weights"
    start = time.perf_counter()
    train_pathology(root / "manifest.csv", out, config, folds=0, signature_config=SignatureConfig(4, 4, 1.0))
    emit(BENCH, "bench_training_s", round(time.perf_counter() - start, 1), "s", note="weights for the bf16 check")
    return out


def heldout_quality(root: Path, weights: Path) -> None:
    """Spearman of phenotype vs mean tile probability on phantom slides the weights never saw (224 px)."""
    from scipy.stats import spearmanr

    from sarcoma_risk.pathology.pipeline import compute_tile_scores, load_models
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    models = load_models(weights, need_signature=False)
    phenotypes = np.linspace(-1.8, 1.8, 6)
    means = []
    for i, z in enumerate(phenotypes):
        rendered = write_phantom_slide(root / f"heldout-{i}.svs", phenotype=float(z), centre="A", size="tiny",
                                       seed=300 + i)
        tiles, _ = compute_tile_scores(rendered.slide, models.runner, models.model_sha256, annotation=rendered.annotation,
                                       spacing_um=models.spacing_um, patch_px=models.patch_px, progress=False)
        means.append(float(tiles.probabilities.mean()))
    emit(BENCH, "heldout_spearman_phenotype_vs_mean_probability", round(float(spearmanr(phenotypes, means).statistic), 3),
         "rho", slides=len(phenotypes), note="224 px at 0.5 um/px after the short bench training; indicative")


def model_figures(slide_path: Path, weights: Path) -> float:
    """Throughput of the model alone on in-memory patches; returns the default (fp32) path's rate."""
    import torch

    from sarcoma_risk.pathology.infer import read_batches
    from sarcoma_risk.pathology.model import PatchRunner
    from sarcoma_risk.pathology.pipeline import load_models
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask

    models = load_models(weights, need_signature=False)
    with open_slide(slide_path) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=models.spacing_um, patch_px=models.patch_px)
        coords = grid.coords[: 8 * BATCH]
        read = lambda xy: slide.read_patch(int(xy[0]), int(xy[1]), grid.geometry)  # noqa: E731
        batches = [b for _, b in read_batches(coords, read, grid.geometry.patch_px, batch_size=BATCH)]
    model = models.runner.model
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)

    def eager_nchw(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
            return torch.sigmoid(nchw(x)).numpy()

    rates, outputs = {}, {}
    for name, run in (("eager_nchw_fp32", eager_nchw), ("channels_last_fp32", PatchRunner(model, "fp32")),
                      ("channels_last_bf16", PatchRunner(model, "bf16"))):
        run(batches[0])  # warm-up (allocations, kernel selection)
        start = time.perf_counter()
        outputs[name] = np.concatenate([run(b) for b in batches])
        rates[name] = len(coords) / (time.perf_counter() - start)
        emit(BENCH, f"model_patches_per_s_{name}", round(rates[name], 1), "patches/s", batch=BATCH,
             patch_px=models.patch_px, architecture=models.architecture, patches=len(coords))
    diff = np.abs(outputs["channels_last_bf16"] - outputs["channels_last_fp32"])
    emit(BENCH, "bf16_max_abs_prob_diff", round(float(diff.max()), 5), "probability", mean=round(float(diff.mean()), 5),
         prob_range=[round(float(outputs["channels_last_fp32"].min()), 4), round(float(outputs["channels_last_fp32"].max()), 4)])
    emit(BENCH, "bf16_speedup", round(rates["channels_last_bf16"] / rates["channels_last_fp32"], 3), "x")
    return rates["channels_last_fp32"]


def end_to_end(slide_path: Path, weights: Path, model_rate: float) -> None:
    from sarcoma_risk.pathology.infer import score_patches
    from sarcoma_risk.pathology.pipeline import load_models
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask

    models = load_models(weights, need_signature=False)
    start = time.perf_counter()
    with open_slide(slide_path) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=models.spacing_um, patch_px=models.patch_px)
        streaming = time.perf_counter()
        score_patches(slide, grid.coords, grid.geometry, models.runner, batch_size=BATCH, progress=False)
        end = time.perf_counter()
        for x, y in grid.coords:  # reading alone, one thread: the CPU that streaming must hide
            slide.read_patch(int(x), int(y), grid.geometry)
        read_rate = len(grid) / (time.perf_counter() - end)
    stream_rate = len(grid) / (end - streaming)
    e2e_rate = len(grid) / (end - start)
    emit(BENCH, "streaming_patches_per_s", round(stream_rate, 1), "patches/s", patches=len(grid), batch=BATCH)
    emit(BENCH, "streaming_to_model_ratio", round(stream_rate / model_rate, 3), "ratio", target=">= 0.9")
    # With the model using every core, reading's CPU time adds to the wall time: the best ratio this
    # machine allows is 1 / (1 + model_rate / (read_rate * cores)).
    cores = os.cpu_count() or 1
    emit(BENCH, "read_only_patches_per_s_one_thread", round(read_rate, 1), "patches/s", patches=len(grid))
    emit(BENCH, "streaming_ratio_ceiling", round(1 / (1 + model_rate / (read_rate * cores)), 3), "ratio", cpus=cores,
         note="reading's CPU time taken from the model's cores; what the streaming ratio can reach here")
    emit(BENCH, "end_to_end_patches_per_s", round(e2e_rate, 1), "patches/s",
         tissue_and_tiling_s=round(streaming - start, 3))
    emit(BENCH, "end_to_end_to_model_ratio", round(e2e_rate / model_rate, 3), "ratio")


#: score-slide stages that are parts of "streaming" (not added again to the total).
STREAMING_PARTS = ("model", "waiting_for_patches", "tile_cache_write")
#: The order score-slide runs its stages in (its JSON report sorts them by name).
STAGE_ORDER = ("load_models", "open_slide", "annotation", "fingerprint", "tile_cache_lookup", "tissue_detection",
               "tiling", "streaming", *STREAMING_PARTS, "tile_cache_commit", "signature", "tile_csv", "tile_geojson",
               "heatmap", "case_record")
WSINFER_CONFIG = {
    "spec_version": "1.0", "num_classes": 1, "class_names": ["recurrence"],
    "transform": [{"name": "Resize", "arguments": {"size": None}}, {"name": "ToTensor"},
                  {"name": "Normalize", "arguments": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}],
}


def render_comparison_slide(root: Path) -> Path:
    """The 16384 x 16384 phantom SVS (0.5 um/px) both tools score."""
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    folder = root / "compare-slide"  # the slide alone: WSInfer takes a folder that holds only slides
    folder.mkdir(parents=True, exist_ok=True)
    return write_phantom_slide(folder / "slide16k.svs", phenotype=0.5, centre="A", size="small", seed=3,
                               annotate=False, dimensions=(16384, 16384)).slide


def run_score_slide(slide: Path, weights: Path, out: Path) -> dict:
    """One ``sarcoma-risk score-slide --json`` process from scratch; its report and wall time."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "sarcoma_risk.cli", "score-slide", "--case", "BENCH-0001", "--slide", str(slide),
               "--weights", str(weights), "--out", str(out), "--store", str(out / "cases.sqlite"), "--no-progress",
               "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(done.stdout)
    return {"wall_s": wall, "patches": report["slide"]["n_tiles"], "timings": report["timings_s"]}


def wsinfer_model(root: Path, weights: Path) -> tuple[Path, Path]:
    """Our patch network as WSInfer takes a local model: TorchScript without the normalisation, and config.json."""
    import torch

    from sarcoma_risk.pathology.pipeline import load_models

    models = load_models(weights, need_signature=False)
    network = copy.deepcopy(models.runner.model.net).eval().to(memory_format=torch.contiguous_format)
    folder = root / "wsinfer-model"
    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, but WSInfer loads TorchScript
        traced = torch.jit.trace(network, torch.rand(1, 3, models.patch_px, models.patch_px))
    traced.save(str(folder / "model.pt"))
    config = json.loads(json.dumps(WSINFER_CONFIG))
    config["transform"][0]["arguments"]["size"] = models.patch_px
    config.update(architecture=models.architecture, patch_size_pixels=models.patch_px, spacing_um_px=models.spacing_um)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder / "model.pt", folder / "config.json"


def run_wsinfer(executable: str, slide: Path, model: Path, config: Path, out: Path) -> dict:
    """One ``wsinfer run`` process from scratch (offline); its wall time and how many patches it scored."""
    if out.exists():
        shutil.rmtree(out)
    home = out / "home"
    (home / ".wsinfer-zoo").mkdir(parents=True)
    (home / ".wsinfer-zoo" / "wsinfer-zoo-registry.json").write_text('{"models": {}}')
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1", "WSINFER_FORCE_CPU": "1"}
    env.pop("PYTHONPATH", None)
    command = [executable, "run", "--wsi-dir", str(slide.parent), "--results-dir", str(out / "results"),
               "--config", str(config), "--model-path", str(model), "--batch-size", str(BATCH)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    with open(out / "results" / "model-outputs-csv" / slide.with_suffix(".csv").name) as handle:
        patches = sum(1 for _ in handle) - 1
    return {"wall_s": wall, "patches": patches}


def compare_with_wsinfer(root: Path, weights: Path, wsinfer: str | None, repeats: int) -> None:
    """score-slide's breakdown on the 16k slide, and WSInfer side by side when it is given."""
    slide = render_comparison_slide(root)
    emit(BENCH, "load_average_1min", round(os.getloadavg()[0], 2), "load", cpus=os.cpu_count(),
         note="other jobs on the machine slow every figure below")
    if wsinfer:
        model, config = wsinfer_model(root, weights)
    ours, theirs = [], []
    for _ in range(max(1, repeats)):  # alternating, so both meet the same machine load
        ours.append(run_score_slide(slide, weights, root / "compare" / "score-slide"))
        if wsinfer:
            theirs.append(run_wsinfer(wsinfer, slide, model, config, root / "compare" / "wsinfer"))
    best = min(ours, key=lambda r: r["wall_s"])
    rate = best["patches"] / best["wall_s"]
    emit(BENCH, "score_slide_patches_per_s", round(rate, 1), "patches/s", patches=best["patches"],
         wall_s=round(best["wall_s"], 2), runs=len(ours), slide="16384 x 16384 phantom SVS, 0.5 um/px",
         note="fresh process, shipped weights, no tile cache; best of the runs")
    timings = best["timings"]
    stages = {"python_startup_and_imports": best["wall_s"] - sum(v for k, v in timings.items()
                                                                 if k not in STREAMING_PARTS)}
    stages.update(sorted(timings.items(), key=lambda item: STAGE_ORDER.index(item[0])
                         if item[0] in STAGE_ORDER else len(STAGE_ORDER)))
    for stage, seconds in stages.items():
        emit(BENCH, "score_slide_stage_s", round(seconds, 3), "s", stage=stage,
             part_of="streaming" if stage in STREAMING_PARTS else None,
             share=round(seconds / best["wall_s"], 3))
    if not wsinfer:
        for figure in ("wsinfer_patches_per_s", "score_slide_to_wsinfer_ratio"):
            emit(BENCH, figure, None, "patches/s" if figure.endswith("per_s") else "ratio",
                 note="not measured: give --wsinfer PATH (or $SARCOMA_RISK_BENCH_WSINFER) to a wsinfer 0.6.1 "
                      "executable in its own environment")
        return
    fastest = min(theirs, key=lambda r: r["wall_s"])
    theirs_rate = fastest["patches"] / fastest["wall_s"]
    emit(BENCH, "wsinfer_patches_per_s", round(theirs_rate, 1), "patches/s", patches=fastest["patches"],
         wall_s=round(fastest["wall_s"], 2), runs=len(theirs), batch=BATCH,
         note="wsinfer run, end to end (its tissue detection, patching, inference, CSV and GeoJSON); best of the runs")
    emit(BENCH, "score_slide_to_wsinfer_ratio", round(rate / theirs_rate, 3), "ratio", target=">= 1.5",
         load_average_1min=round(os.getloadavg()[0], 2))


def child_peak_rss(slide_path: Path, weights: Path) -> dict:
    """Score one slide in a fresh interpreter and report its own peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--child", str(slide_path), str(weights)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(key + ":")) / 1024


def child_main(slide_path: str, weights: str) -> None:
    """Load the model, warm it up, then score the slide; report the whole-process peak and the scoring peak.

    The scoring peak comes from resetting the kernel's high-water mark after the warm-up
    (``/proc/self/clear_refs``), so the fixed cost of torch and the model does not hide it.
    """
    from sarcoma_risk.pathology.pipeline import compute_tile_scores, load_models

    models = load_models(weights, need_signature=False)
    models.runner(np.zeros((BATCH, models.patch_px, models.patch_px, 3), np.uint8))
    baseline = _status_mb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        resettable = True
    except OSError:
        resettable = False
    start = time.perf_counter()
    tiles, _ = compute_tile_scores(slide_path, models.runner, models.model_sha256, spacing_um=models.spacing_um,
                                   patch_px=models.patch_px, batch_size=BATCH, progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"peak_rss_mb": peak, "baseline_mb": baseline,
                      "scoring_peak_mb": _status_mb("VmHWM") if resettable else None,
                      "patches": len(tiles), "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="folder with a 224-px pathology-patch model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--child", nargs=2, metavar=("SLIDE", "WEIGHTS"), help=argparse.SUPPRESS)
    parser.add_argument("--wsinfer", default=os.environ.get("SARCOMA_RISK_BENCH_WSINFER"), metavar="PATH",
                        help="wsinfer executable (0.6.1, its own environment) to compare with; default "
                             "$SARCOMA_RISK_BENCH_WSINFER, else not measured")
    parser.add_argument("--compare-weights", type=Path, default=None, metavar="DIR",
                        help="weights for the score-slide/WSInfer comparison (default: the shipped weights/)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of score-slide and WSInfer")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the score-slide breakdown and the WSInfer comparison")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        child_main(*args.child)
        return
    import torch

    emit(BENCH, "torch_threads", torch.get_num_threads(), "threads", **machine())
    with tempfile.TemporaryDirectory(prefix="bench-slide-") as tmp:
        root = Path(tmp)
        from sarcoma_risk.settings import default_weights_dir

        compare_with_wsinfer(root, args.compare_weights or default_weights_dir(), args.wsinfer, args.repeats)
        if args.compare_only:
            return
        slides = render(root)
        weights = args.weights or train_weights(root)
        heldout_quality(root, weights)
        model_rate = model_figures(slides["small"], weights)
        end_to_end(slides["small"], weights, model_rate)
        peaks = {name: child_peak_rss(slides[name], weights) for name in ("small", "large")}
        for name, label in (("small", "small"), ("large", "4x")):
            peak = peaks[name]
            emit(BENCH, f"peak_rss_mb_{label}", round(peak["peak_rss_mb"], 1), "MB", patches=peak["patches"],
                 seconds=round(peak["seconds"], 1), after_warmup_mb=round(peak["baseline_mb"], 1),
                 scoring_peak_mb=None if peak["scoring_peak_mb"] is None else round(peak["scoring_peak_mb"], 1))
        emit(BENCH, "peak_rss_4x_to_small_ratio", round(peaks["large"]["peak_rss_mb"] / peaks["small"]["peak_rss_mb"], 3),
             "ratio", target="about 1 (memory must not grow with slide size)",
             patch_ratio=round(peaks["large"]["patches"] / peaks["small"]["patches"], 2))
        if peaks["small"]["scoring_peak_mb"] and peaks["large"]["scoring_peak_mb"]:
            emit(BENCH, "scoring_peak_4x_to_small_ratio",
                 round(peaks["large"]["scoring_peak_mb"] / peaks["small"]["scoring_peak_mb"], 3), "ratio",
                 note="high-water mark reset after model load and warm-up")


if __name__ == "__main__":
    main()
