"""``MODEL_CARD.md``: the shipped weights described in the spirit of TRIPOD+AI, from their manifest.

Everything in the card is read from the release's ``manifest.json`` (which ``train all`` wrote), so
the card and the manifest cannot disagree: intended use, data, predictors and outcome, methods,
validation with bootstrap 95% CIs, the oracle, limitations, and the files with their sha256.
"""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.release.record import ReleaseRecord
from sarcoma_risk.synthetic.mri import GRIDS, PhantomSize
from sarcoma_risk.synthetic.wsi import MPP, SIZES

LABELS = {"clinical": "Clinical only", "radiology": "Radiology score only", "pathology": "Pathology score only",
          "clinical+radiology+pathology": "Combined (clinical + radiology + pathology)"}
METRICS = (("harrell_c", "Harrell's C"), ("uno_c", "Uno's C"), ("mean_auc", "Mean time-dependent AUC"),
           ("integrated_brier", "Integrated Brier score"))


def _ci(iv: Mapping[str, Any] | None) -> str:
    if not iv or iv.get("estimate") is None:
        return "n/a"
    if iv.get("low") is None or iv.get("high") is None:
        return f"{iv['estimate']:.3f}"
    return f"{iv['estimate']:.3f} ({iv['low']:.3f}-{iv['high']:.3f})"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _clamped_text(cohort: Mapping[str, Any]) -> str:
    clamped = cohort.get("mri_tumors_clamped_to_field_of_view") or {}
    if not clamped.get("share"):
        return ""
    return (f"in {clamped['share']:.0%} of the cases the MRI tumor was clamped to the field of view (at most "
            f"{clamped['largest_rendered_cm']:.1f} cm rendered, while the clinical tumor size goes beyond); ")


def _size_text(size: str) -> str:
    """The image sizes of a phantom size preset, from the renderers' own tables."""

    (nx, ny, nz), (sx, sy, sz) = GRIDS[PhantomSize(size)]
    width, height = SIZES[size]
    return (f"MRI {nx} x {ny} x {nz} voxels at {sx:g} x {sy:g} x {sz:g} mm; slides {width} x {height} pixels at "
            f"{MPP:g} um/px")


def _fusion_training(fusion: Mapping[str, Any]) -> str:
    """How the fusion model was fitted: pooled with cross-validation, or federated across centres."""
    federated = (fusion.get("training_data") or {}).get("federated")
    if not federated:
        return (f"ridge penalizer by {fusion['config']['cv_folds']}-fold cross-validation; fit on the out-of-fold "
                "imaging scores")
    refused = "; ".join(federated["refused"].values())
    return (f"trained federated ({federated['engine']}) across centres {', '.join(federated['centres'])} without "
            f"pooling their cases: {federated['strategy']}, {federated['rounds']} rounds; ridge penalizer fixed at "
            f"{fusion['config']['penalizers'][0]:g} (not cross-validated); baseline hazard, risk percentiles and "
            "cutoff from summed per-centre histograms" + (f"; refused: {refused}" if refused else ""))


def render_model_card(manifest: Mapping[str, Any]) -> str:
    """The model card of a release manifest (``manifest["release"]`` and ``manifest["models"]``)."""
    release, models = ReleaseRecord.from_dict(manifest.get("release")), manifest["models"]
    config, cohort, val = release.config, release.cohort, release.validation
    rad, patch, sig, fusion = (models[n] for n in ("radiology", "pathology-patch", "pathology-signature", "fusion"))
    generative = cohort["generative_model"]
    radcfg = rad["config"]
    fusion_params = models["fusion"]["config"]
    oracle = val.get("oracle") or {}
    metric_rows = [[LABELS.get(name, name), *[_ci(figures.get(key)) for key, _ in METRICS]]
                   for name, figures in val["models"].items()]
    group_rows = [[LABELS.get(name, name), f"{f['risk_groups']['n']['low']} / {f['risk_groups']['n']['high']}",
                   f"{f['risk_groups']['events']['low']} / {f['risk_groups']['events']['high']}",
                   _ci({"estimate": f["risk_groups"]["hazard_ratio"], "low": f["risk_groups"]["hr_low"],
                        "high": f["risk_groups"]["hr_high"]}), _p(f["risk_groups"]["logrank_p"])]
                  for name, f in val["models"].items()]
    auc_rows = [[LABELS.get(name, name), *[_ci(f.get(f"auc_{h:g}")) for h in val["horizons_months"]]]
                for name, f in val["models"].items()]
    calibration_rows = [[LABELS.get(name, name), *[("n/a" if by_h.get(f"{h:g}") is None else f"{by_h[f'{h:g}']:.3f}")
                                                   for h in val["horizons_months"]]]
                        for name, by_h in val["calibration_mean_abs_difference"].items()]
    distribution_rows = [[modality, *[("n/a" if split not in d else f"{d[split]['mean']:+.2f} ({d[split]['sd']:.2f})")
                                      for split in ("development", "validation")]]
                         for modality, d in val["score_distributions"].items()]
    file_rows = [[f"`{e['file']}`", name, e["kind"], f"{e['bytes']:,}", f"`{e['sha256']}`"] for name, e in models.items()]
    minutes = release.seconds.get("total", 0.0) / 60.0
    sections = [
        "# SarcomaRisk shipped weights: model card",
        f"> **{release.statement}**",
        "> These weights exist so that the software can be installed, demonstrated and tested end to end. "
        "They were never trained or tested on a single real patient, and their figures say nothing about how "
        "SarcomaRisk would perform on real MRI, slides or charts.",
        "## Intended use",
        "- **For**: checking an installation, the `make demo` walk-through, the test suite, and comparing "
        "releases of the software on the same phantom data.\n"
        "- **Not for**: any decision about a patient, any clinical or research conclusion about sarcoma, or as a "
        "starting point for real models without retraining and validating them on real cohorts "
        "(`sarcoma-risk train all` shows the steps; on real data run them on your own manifest, see the README).\n"
        "- **Users**: developers and research coordinators of SarcomaRisk.",
        "## Data",
        f"- **Source**: {cohort['source']}, generator version {cohort['generator_version']}, seed {cohort['seed']}, "
        f"image size preset `{cohort['size']}` ({_size_text(cohort['size'])}).\n"
        f"- **Participants**: {cohort['n_cases']} phantom cases. Centre A: development, n = "
        f"{cohort['development']['n']} ({cohort['development']['events']} recurrences). Centre B: validation "
        f"(held-out centre), n = {cohort['validation']['n']} ({cohort['validation']['events']} recurrences). The "
        "centres differ as scanners and laboratories do: MRI intensity scale, offset and bias field; H&E stain "
        "hue and strength.\n"
        "- **Outcome**: time to recurrence after surgery in months, censored at the end of follow-up "
        f"({generative['followup_min_months']:g}-{generative['followup_max_months']:g} months of administrative "
        "follow-up plus random loss).\n"
        "- **Ground truth**: a Cox model with a Weibull baseline over the clinical variables (log hazard ratios "
        "from the STS literature) and two latent phenotypes, one rendered into the MRI (necrosis, heterogeneity, "
        "infiltration, edema) and one into the slides (nuclear density, size, pleomorphism), each with log "
        f"hazard ratio {generative['b_mri']:g} / {generative['b_pathology']:g} per SD. The true linear predictor "
        "gives the oracle C-index that no model can beat on the same cases.\n"
        "- **Missing data**: the cohort is generated without missing modalities; validation cases by modalities "
        f"available: {', '.join(f'{k}: {v}' for k, v in val['modalities_available'].items())}.",
        "## Predictors and models",
        f"- **Radiology** (`{rad['file']}`, {rad['kind']}): CBAM 3D CNN, widths "
        f"{radcfg['model']['widths']}, on {radcfg['preprocess']['patch_size']}^3-voxel patches at "
        f"{radcfg['preprocess']['spacing_mm']:g} mm of the tumor region of "
        f"{' + '.join(radcfg['preprocess']['sequences'])} (preset `{config['radiology_preset']}`), Cox partial "
        f"likelihood, {config['radiology_folds']}-fold cross-fitting for the development scores.\n"
        f"- **Pathology patch model** (`{patch['file']}`, {patch['kind']}): "
        f"{patch['config']['architecture']} from {config['pathology_init']} initial weights, "
        f"{patch['config']['patch_px']}-pixel patches at {patch['config']['spacing_um']:g} um/px, label "
        f"\"{patch['config']['label']}\", {config['pathology_epochs']} epochs at most of "
        f"{config['pathology_patches_per_epoch']} patches with stain jitter, {config['pathology_folds']}-fold "
        "cross-fitting.\n"
        f"- **Slide signature** (`{sig['file']}`, {sig['kind']}): histogram ({sig['config']['n_bins']} bins) and "
        f"bag of words ({sig['config']['n_words']} levels, TF-IDF) of patch probabilities into a penalized Cox model "
        f"(penalizer {sig['config']['penalizer']:g}), fit on out-of-fold tile scores.\n"
        f"- **Fusion** (`{fusion['file']}`, {fusion['kind']}): Cox regression over the clinical variables "
        f"{', '.join(fusion_params['clinical_features'])}, the radiology score and the pathology score; one "
        f"sub-model per available subset of modalities; {_fusion_training(fusion)}; risk groups "
        f"split at the development {fusion_params['cutoff']}.\n"
        "- **Why these settings**: the tiny phantom images and the short CPU schedules let `make weights` run in "
        f"about {minutes:.0f} minutes on 2 CPU cores (this run). The published configuration (ShuffleNetV2 x1.0 "
        "from ImageNet weights at 224 px and 0.5 um/px; 64^3 MRI patches at 2 mm) is the default of the "
        "training commands, for real data.",
        "## Validation (centre B, held-out phantom centre)",
        f"n = {val['n']}, {val['events']} recurrences, median follow-up {val['median_follow_up_months']:.1f} months "
        "(reverse Kaplan-Meier). Estimates with bootstrap 95% confidence intervals "
        f"({val['bootstrap_resamples']} resamples); every model scored on the same cases.",
        _table(["Model", *[label for _, label in METRICS]], metric_rows),
        "Cumulative/dynamic AUC at each horizon (months):",
        _table(["Model", *[f"{h:g} months" for h in val["horizons_months"]]], auc_rows),
        "Risk groups (cutoff fixed on the development cases):",
        _table(["Model", "n low / high", "events low / high", "HR high vs low (95% CI)", "log-rank p"], group_rows),
        "Calibration: mean absolute difference between predicted and observed (Kaplan-Meier) recurrence-free "
        "probability over risk groups, at each horizon:",
        _table(["Model", *[f"{h:g} months" for h in val["horizons_months"]]], calibration_rows),
        "Imaging scores, mean (SD): development cases (out-of-fold, from the fold models) and validation cases "
        "(centre B, from the final model). A difference between the two comes from the centres (scanner, stain) "
        "and from the final model, trained on all development cases, spreading its scores differently from the "
        "fold models:",
        _table(["Score", "Development (centre A)", "Validation (centre B)"], distribution_rows),
        "Against the truth of the phantom cohort (same cases):",
        _table(["Figure", "Estimate (95% CI)"], [
            ["Oracle Harrell's C (true linear predictor)", _ci(oracle.get("oracle_harrell_c"))],
            ["Combined model Harrell's C", _ci(oracle.get("combined_harrell_c"))],
            ["Combined / oracle", _ci(oracle.get("combined_to_oracle_ratio"))]]),
        "## Limitations",
        "- **Phantom data only.** The images are rendered from a generative model whose signal is known and "
        "simple; real tumors, scanners, stains and charts are far more varied. Nothing here transfers to patients.\n"
        f"- **Small images and small networks.** The phantom images are small ({_size_text(cohort['size'])}); "
        f"{_clamped_text(cohort)}the networks and training schedules are sized for minutes on a CPU. Use the "
        "`make weights` settings only to verify the software.\n"
        "- **Centre shift.** The imaging models see centre B's scanner and stain for the first time at "
        "validation; the score distributions above show how far that moved each score in this run, and the "
        "calibration table what it did to the survival estimates. How much the stain moves the pathology score "
        "also varies from one training run to the next (stain augmentation covers only part of the difference). "
        "Deployment at a new centre needs local validation and, usually, recalibration.\n"
        "- **One cohort, one seed.** The confidence intervals cover resampling of the validation cases, not "
        "retraining on another cohort; `benchmarks/bench_cohort.py` repeats the whole run on a cohort of another "
        "seed.\n"
        "- **Clinical variables.** The fusion model uses the variables listed above; subtype and nodal status, "
        "which move the phantom hazard too, are not among them.",
        "## Files",
        _table(["File", "Registered as", "Kind", "Bytes", "sha256"], file_rows),
        "Loading checks every file's sha256 against `manifest.json` and reads torch checkpoints with "
        "`weights_only=True`; a changed byte is refused.",
        "## Reproduce",
        f"`make weights` (that is, `sarcoma-risk train all --out weights`; {release.software_version}). "
        "The validation report with every figure and plot is written to the work folder "
        "(`build/train-all/report/report.html`). The run's settings are in `manifest.json` under "
        "`release.config`.",
    ]
    return "\n\n".join(sections) + "\n"
