"""The weights folder of a ``train all`` run: files, manifest with figures, validation cohort, model card.

The trained models are registered in the run's staging folder by the training commands. Here each
one is copied into a fresh folder and registered again with the same kind, version and
configuration, its training data description completed with the phantom cohort it came from and
its validation figures completed with the centre B figures (bootstrap 95% CIs) of ``evaluate``.
The validation cohort's outcomes and risk groups are added (for the demo), then ``MODEL_CARD.md``.
The folder replaces the previous release in ``out_dir`` only once it is complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.errors import InvalidInput, OutputError
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.fusion.evaluation import Evaluation, EvaluationBlock
from sarcoma_risk.fusion.table import input_of_column, radiology_input
from sarcoma_risk.provenance import software_version, utc_now
from sarcoma_risk.radiology.checkpoint import available_sets, model_name
from sarcoma_risk.release.config import TrainAllConfig
from sarcoma_risk.release.model_card import render_model_card
from sarcoma_risk.release.record import CARD_NAME, ReleaseRecord
from sarcoma_risk.release.validation_cohort import FILE_NAME, KIND, REGISTRY_NAME, build_validation_cohort
from sarcoma_risk.survival.scores import read_score_tables
from sarcoma_risk.weights import MANIFEST_NAME, WeightRegistry

#: Shipped models besides the radiology models (one per sequence set, registered first), in the order they
#: are registered; which validation model describes each.
OTHER_MODELS = {"pathology-patch": "pathology", "pathology-signature": "pathology", "fusion": None}


def check_out_dir(out_dir: Path, work_dir: Path) -> None:
    """``out_dir`` must be new, empty, or an earlier ``train all`` release, and apart from ``work_dir``."""
    out, work = out_dir.resolve(), work_dir.resolve()
    if out == work or out in work.parents or work in out.parents:
        raise OutputError(f"--out {out_dir} and --work {work_dir} must be separate folders (the work folder holds "
                          "the cohort and caches, which must not end up among the weights)")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: is a file; expected a folder for the weights")
    if out_dir.is_dir():
        unknown = sorted(set(p.name for p in out_dir.iterdir()) - set(release_files(out_dir)))
        if unknown:
            raise OutputError(f"--out {out_dir}: holds {', '.join(unknown[:5])}, which an earlier `train all` did not "
                              "write; choose an empty folder (nothing there is deleted)")


def release_files(out_dir: Path) -> list[str]:
    """The names a previous release in ``out_dir`` consists of (empty when there is none)."""
    path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(manifest, dict) or "release" not in manifest or not isinstance(manifest.get("models"), dict):
        return []
    files = [entry.get("file") for entry in manifest["models"].values() if isinstance(entry, dict)]
    return [MANIFEST_NAME, CARD_NAME, *(f for f in files if isinstance(f, str) and "/" not in f)]


def modality_figures(comparison: EvaluationBlock, name: str) -> dict[str, Any]:
    """One model's validation figures (estimate and 95% CI) and its risk groups, from the report's comparison."""
    groups = comparison.risk_groups[name]["comparison"]
    return {"model": name, "n": comparison.n, "events": comparison.events,
            **comparison.metrics["models"][name],
            "risk_groups": {k: groups[k] for k in ("n", "events", "hazard_ratio", "hr_low", "hr_high", "logrank_p")}}


def cohort_description(truth: Mapping[str, Any]) -> dict[str, Any]:
    """What the phantom cohort was, from its truth.json (no per-case data)."""
    settings, groups = truth["settings"], truth["c_index"]["groups"]
    mri = [c["mri"]["stats"] for c in truth["cases"] if c.get("mri")]
    return {
        "source": "phantom cohort from `sarcoma-risk synth` (synthetic images and outcomes, no patient data)",
        "generator_version": truth["software_version"], "seed": settings["seed"], "size": settings["size"],
        "n_cases": settings["n_cases"],
        "centres": {"A": "development", "B": "validation (held-out centre)"},
        "development": {"n": groups["split:development"]["n"], "events": groups["split:development"]["events"],
                        "oracle_c_index": groups["split:development"]["oracle"]},
        "validation": {"n": groups["split:validation"]["n"], "events": groups["split:validation"]["events"],
                       "oracle_c_index": groups["split:validation"]["oracle"]},
        "mri_tumors_clamped_to_field_of_view": {
            "share": sum(bool(m.get("tumor_size_clamped")) for m in mri) / len(mri) if mri else None,
            "largest_rendered_cm": max((m["tumor_size_cm_rendered"] for m in mri), default=None)},
        "generative_model": {k: truth["model"][k] for k in ("b_mri", "b_pathology", "coefficients",
                                                              "weibull_shape", "weibull_scale_months",
                                                              "followup_min_months", "followup_max_months")},
    }


def validation_summary(figures: Evaluation) -> dict[str, Any]:
    """The validation figures of the release: each model side by side, as deployed, against the oracle,
    and the radiology models of each sequence set."""
    comparison, deployed = figures.comparison, figures.deployed
    if comparison is None:
        raise InvalidInput("the validation report has no side-by-side comparison (too few centre B cases with every "
                          "modality); the release's figures cannot be written")
    oracle = figures.oracle or {}
    sets = figures.sequence_sets
    return {
        "split": "validation (centre B)", "n": figures.cohort["n"], "events": figures.cohort["events"],
        "median_follow_up_months": figures.cohort["median_follow_up_months"],
        "modalities_available": figures.cohort["modalities_available"],
        "horizons_months": list(figures.horizons_months),
        "combined": figures.combined,
        "models": {name: modality_figures(comparison, name) for name in comparison.metrics["models"]},
        "sequence_sets": None if not sets else {
            "n": sets["n"], "events": sets["events"],
            "models": {name: {"model": name, "n": sets["n"], "events": sets["events"], **m}
                       for name, m in sets["metrics"]["models"].items()}},
        "deployed": {**deployed.metrics["models"]["deployed"],
                     "risk_groups": deployed.risk_groups["deployed"]["comparison"]},
        "oracle": {k: oracle[k] for k in ("oracle_harrell_c", "combined_harrell_c", "combined_to_oracle_ratio")
                   if k in oracle},
        "bootstrap_resamples": comparison.metrics["n_resamples"],
        "calibration_mean_abs_difference": {
            name: {h: table["mean_abs_difference"] for h, table in by_horizon.items()}
            for name, by_horizon in comparison.calibration.items()},
    }


def score_distributions(score_files: list[Path]) -> dict[str, Any]:
    """Mean and SD of each imaging score per split (development: out-of-fold; validation: deployed model),
    keyed by fusion input (``radiology[t2fs]``, ``pathology``).

    A centre's scanner or stain can move a score's whole distribution; the fusion model, fitted on
    centre A's scores, then misplaces centre B's cases on the survival scale even when it ranks
    them well. These numbers show whether that happened in this run.
    """

    out: dict[str, Any] = {}
    for column, table in read_score_tables(score_files).items():
        modality = input_of_column(column)
        out[modality] = {}
        for split in ("development", "validation"):
            values = np.array([e.score for e in table.entries.values() if e.split == split and e.score is not None])
            if values.size:
                out[modality][split] = {"n": int(values.size), "mean": float(values.mean()),
                                        "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0}
    return out


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def assemble(out_dir: Path, *, stage: Path, cohort: Path, report: Path, config: TrainAllConfig,
             seconds: Mapping[str, float]) -> Path:
    """Build the release in ``stage/../assembled`` and move it into ``out_dir``; returns its manifest path."""

    figures = Evaluation.from_dict(_read_json(report / "report.json")["data"], str(report / "report.json"))
    truth = _read_json(cohort / "truth.json")
    description = cohort_description(truth)
    summary = validation_summary(figures)
    score_files = [stage / "radiology_scores.csv", stage / "pathology_scores.csv"]
    summary["score_distributions"] = score_distributions(score_files)
    staged = WeightRegistry(stage)
    building = stage.parent / "assembled"
    if building.exists():
        shutil.rmtree(building)
    building.mkdir(parents=True)
    registry = WeightRegistry(building)
    models = {model_name(s): radiology_input(s) for s in available_sets(stage)} | OTHER_MODELS
    by_set = (summary["sequence_sets"] or {}).get("models", {})
    for name, modality in models.items():
        entry = staged.entry(name)
        staged.read_verified(name)  # the staged bytes are what the training commands registered
        shutil.copyfile(stage / entry["file"], building / entry["file"])
        if modality is None:
            centre_b = summary
        else:  # a radiology model outside the comparison has its figures in the sequence-set table
            centre_b = {**(summary["models"].get(modality) or by_set.get(modality) or {"model": modality}),
                        "split": summary["split"]}
        registry.register(name, entry["file"], kind=entry["kind"], version=entry["version"], config=entry["config"],
                          training_data={**entry.get("training_data", {}), "cohort": description},
                          validation={**entry.get("validation", {}), "centre_B": centre_b})
    km = build_validation_cohort(stage, cohort / "manifest.csv", score_files,
                                 "validation cases (centre B) of the phantom cohort the weights were validated on: "
                                 "observed time and event, fused risk and group as `fuse` gives them; synthetic")
    atomic_write_json(building / FILE_NAME, km.to_dict())
    registry.register(REGISTRY_NAME, FILE_NAME, kind=KIND, version=software_version(),
                      config={"submodels": sorted(set(figures.deployed.submodel_counts or {}))},
                      training_data={"cohort": description},
                      validation={"n": int(km.time_months.size), "events": int(km.event.sum())})
    manifest = registry.manifest()
    manifest["release"] = ReleaseRecord(software_version(), utc_now(), config.to_dict(), description, summary,
                                        seconds).to_dict()
    atomic_write_json(registry.manifest_path, manifest)
    (building / CARD_NAME).write_text(render_model_card(manifest), encoding="utf-8")
    _replace_release(out_dir, building)
    return out_dir / MANIFEST_NAME


def _replace_release(out_dir: Path, building: Path) -> None:
    """Delete the previous release's files in ``out_dir`` and move the new ones in."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in release_files(out_dir):
        (out_dir / name).unlink(missing_ok=True)
    for path in sorted(building.iterdir(), key=lambda p: p.name == MANIFEST_NAME):  # the manifest last
        shutil.move(str(path), out_dir / path.name)
    building.rmdir()
