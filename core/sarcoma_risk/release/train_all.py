"""``sarcoma-risk train all``: phantom cohort -> radiology -> pathology -> fusion -> validation -> weights.

Each step is the existing command, run in process through :func:`sarcoma_risk.cli.main` exactly as
a coordinator would type it, so this module adds no training logic of its own:

1. ``synth``: a fixed-seed phantom cohort, centre A for development and centre B for validation;
2. ``train radiology --folds K``: the MRI models, one per sequence set, with out-of-fold development
   scores (each deployed as the mean of its K fold models);
3. ``train pathology --folds K``: the patch model and slide signature, cross-fitted;
4. ``train fusion``: the Cox sub-models on the out-of-fold imaging scores;
5. ``evaluate --split validation``: figures with bootstrap CIs on centre B, oracle included;
6. the weight files, their manifest (with the training data and the validation figures), the
   validation cohort's outcomes and risk groups (for the demo's Kaplan-Meier plot) and the model
   card go into the output folder (:mod:`~sarcoma_risk.release.assemble`).

Everything else (the cohort, tile caches, score tables, run logs and the HTML validation report)
stays in the work folder, outside the weights.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

from sarcoma_risk.cli import main
from sarcoma_risk.errors import SarcomaRiskError
from sarcoma_risk.fusion.evaluation import Evaluation
from sarcoma_risk.release.assemble import assemble, check_out_dir
from sarcoma_risk.release.config import TrainAllConfig

COHORT_DIR, STAGE_DIR, REPORT_DIR, CACHE_DIR = "cohort", "stage", "report", "tile-cache"
STEPS = 6


class StepFailed(SarcomaRiskError, RuntimeError):
    """A command of the run ended with an error (its message was printed above)."""


@dataclass(frozen=True)
class TrainAllResult:
    """Where the run left things, and the validation figures (report.json's data)."""

    out_dir: Path
    work_dir: Path
    manifest: Path
    report_json: Path
    report_html: Path
    seconds: dict[str, float]
    figures: Evaluation  # the validation report's figures (report.json's data)


def _say(step: int, text: str) -> None:
    print(f"[{step}/{STEPS}] {text}", flush=True)


def _run(step: int, argv: Sequence[str]) -> None:
    """One ``sarcoma-risk`` command in this process; a non-zero status stops the run."""

    status = main(list(argv))
    sys.stdout.flush()
    if status:
        raise StepFailed(f"step {step}/{STEPS} failed: sarcoma-risk {' '.join(argv[:2])} exited with status {status} "
                         "(its error is printed above)")


def train_all(out_dir: str | Path, work_dir: str | Path, config: TrainAllConfig = TrainAllConfig(), *,
              stream: TextIO | None = None, device: str = "auto") -> TrainAllResult:
    """Run the six steps (module docstring); returns where the outputs are and the validation figures.

    Progress lines (``[k/6] ...``) and what each command prints go to ``stream`` (default stdout;
    a benchmark passes stderr to keep stdout for its JSON lines).

    Parameters
    ----------
    out_dir : path
        The weights folder to fill (new, empty, or a folder written by an earlier run).
    work_dir : path
        Scratch folder for the cohort (generated again each time: the same seed gives the same
        bytes), caches, score tables and the validation report.
    config : TrainAllConfig
    stream : text stream, optional
    device : {"auto", "cpu", "cuda", "mps"}
        Where the imaging models train (``--device`` of the two training commands). It is not part
        of ``config``, the settings recorded with the weights: it changes them only by
        floating-point rounding.
    """
    with contextlib.redirect_stdout(stream or sys.stdout):
        return _train_all(Path(out_dir), Path(work_dir), config, device)


def _train_all(out_dir: Path, work_dir: Path, config: TrainAllConfig, device: str) -> TrainAllResult:
    check_out_dir(out_dir, work_dir)
    cohort, stage, report = work_dir / COHORT_DIR, work_dir / STAGE_DIR, work_dir / REPORT_DIR
    manifest = cohort / "manifest.csv"
    seconds: dict[str, float] = {}
    start = time.monotonic()

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        seconds[name] = round(now - since, 1)
        return now

    t = start
    _say(1, f"phantom cohort: {config.cases} {config.size} {config.difficulty} cases, centre A development, "
            f"centre B validation, seed {config.seed}")
    _run(1, ["synth", "--out", str(cohort), "--cases", str(config.cases), "--centres", "A,B", "--seed",
             str(config.seed), "--size", config.size, "--workers", str(config.workers), "--difficulty",
             config.difficulty, "--overwrite"])
    t = lap("cohort", t)
    if stage.exists():
        shutil.rmtree(stage)  # a fresh registry: no entry from an earlier run can slip into the weights
    _say(2, f"radiology models, one per MRI sequence set ({config.radiology_preset} preset, "
            f"{config.radiology_folds}-fold cross-fitting)")
    _run(2, ["train", "radiology", "--manifest", str(manifest), "--out", str(stage), "--device", device,
             *config.radiology_arguments()])
    t = lap("radiology", t)
    _say(3, f"pathology patch model and slide signature ({config.pathology_architecture}, {config.pathology_patch_px} px "
            f"at {config.pathology_spacing_um:g} um/px, {config.pathology_folds}-fold cross-fitting)")
    _run(3, ["train", "pathology", "--manifest", str(manifest), "--out", str(stage), "--cache-dir",
             str(work_dir / CACHE_DIR), "--device", device, *config.pathology_arguments()])
    t = lap("pathology", t)
    scores = ["--scores", str(stage / "radiology_scores.csv"), "--scores", str(stage / "pathology_scores.csv")]
    _say(4, "fusion: Cox sub-models on the out-of-fold imaging scores")
    _run(4, ["train", "fusion", "--manifest", str(manifest), *scores, "--out", str(stage), "--cutoff",
             config.fusion_cutoff, "--folds", str(config.fusion_folds)])
    t = lap("fusion", t)
    _say(5, f"validation on centre B ({config.bootstrap} bootstrap resamples)")
    _run(5, ["evaluate", "--manifest", str(manifest), "--split", "validation", "--weights", str(stage), *scores,
             "--out", str(report), "--bootstrap", str(config.bootstrap)])
    lap("evaluate", t)
    _say(6, f"weights, manifest and model card into {out_dir}")
    seconds["total"] = round(time.monotonic() - start, 1)  # the model card reports it; assembling takes a second
    assembled = assemble(out_dir, stage=stage, cohort=cohort, report=report, config=config, seconds=seconds)
    print(f"wrote {out_dir} in {seconds['total'] / 60:.1f} min; validation report: {report / 'report.html'}",
          flush=True)
    report_json = report / "report.json"
    return TrainAllResult(out_dir, work_dir, assembled, report_json, report / "report.html", seconds,
                          Evaluation.from_dict(json.loads(report_json.read_text(encoding="utf-8"))["data"],
                                               str(report_json)))
