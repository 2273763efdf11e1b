"""``MODEL_CARD.md``: the shipped weights described in the spirit of TRIPOD+AI, from their manifest.

Everything in the card is read from the release's ``manifest.json`` (which ``train all`` wrote), so
the card and the manifest cannot disagree: intended use, data, predictors and outcome, methods,
validation with bootstrap 95% CIs, the oracle, limitations, and the files with their sha256.
"""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.fusion.table import input_sequences, modality_of, submodel_inputs
from sarcoma_risk.release.record import ReleaseRecord
from sarcoma_risk.sequences import SEQUENCE_SETS, SET_LABELS
from sarcoma_risk.synthetic.mri import GRIDS, PhantomSize
from sarcoma_risk.synthetic.wsi import MPP, SIZES

LABELS = {"clinical": "Clinical only", "radiology": "Radiology score only", "pathology": "Pathology score only",
          "clinical+radiology+pathology": "Combined (clinical + radiology + pathology)"}
METRICS = (("harrell_c", "Harrell's C"), ("uno_c", "Uno's C"), ("mean_auc", "Mean time-dependent AUC"),
           ("integrated_brier", "Integrated Brier score"))
CALIBRATION = (("calibration_slope", "Calibration slope"), ("observed_expected", "Observed / expected"),
               ("calibration_intercept", "Calibration intercept, log(O/E)"))


def label(name: str) -> str:
    """A model's name in the card: the set of a radiology score in brackets, e.g. "Radiology score only (T2FS only)"."""
    inputs = submodel_inputs(name)
    base = "+".join(modality_of(i) for i in inputs)
    sequences = next((input_sequences(i) for i in inputs if input_sequences(i)), None)
    text = LABELS.get(base, name)
    return text if sequences is None else f"{text} [MRI: {SET_LABELS[sequences]}]"


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


def _federated_cnn(entry: Mapping[str, Any]) -> str | None:
    """How a CNN (radiology, patch model) was trained federated, or None when it was trained pooled."""
    federated = (entry.get("training_data") or {}).get("federated")
    if not federated:
        return None
    dp = federated.get("differential_privacy")
    return (f"trained federated ({federated['engine']}) across {federated['centres']} centres without pooling their "
            f"images: {federated['strategy']}, {federated['rounds']} rounds"
            + (f", round {federated['selected_round']} kept (best on the centres' validation shares)"
               if federated.get("selected_round") else "")
            + (f", updates clipped to L2 norm {dp['clip']:g} with Gaussian noise {dp['noise_multiplier']:g} x clip "
               "(no epsilon computed)" if dp else ""))


def render_model_card(manifest: Mapping[str, Any]) -> str:
    """The model card of a release manifest (``manifest["release"]`` and ``manifest["models"]``)."""
    release, models = ReleaseRecord.from_dict(manifest.get("release")), manifest["models"]
    config, cohort, val = release.config, release.cohort, release.validation
    radiology = {s: models[f"radiology-{s}"] for s in SEQUENCE_SETS if f"radiology-{s}" in models}
    patch, sig, fusion = (models[n] for n in ("pathology-patch", "pathology-signature", "fusion"))
    generative = cohort["generative_model"]
    rad = next(iter(radiology.values()))
    radcfg = rad["config"]
    members = len(radcfg.get("member_seeds") or [None])
    fusion_params = models["fusion"]["config"]
    oracle = val.get("oracle") or {}
    metric_rows = [[label(name), *[_ci(figures.get(key)) for key, _ in METRICS]]
                   for name, figures in val["models"].items()]
    calibration_slope_rows = [[label(name), *[_ci(figures.get(key)) for key, _ in CALIBRATION]]
                              for name, figures in val["models"].items()]
    sets = val.get("sequence_sets") or {}
    set_rows = [[label(name), *[_ci(f.get(key)) for key in ("harrell_c", "mean_auc", "calibration_slope")]]
                for name, f in (sets.get("models") or {}).items()]
    scale = sig["config"].get("to_out_of_fold")
    group_rows = [[label(name), f"{f['risk_groups']['n']['low']} / {f['risk_groups']['n']['high']}",
                   f"{f['risk_groups']['events']['low']} / {f['risk_groups']['events']['high']}",
                   _ci({"estimate": f["risk_groups"]["hazard_ratio"], "low": f["risk_groups"]["hr_low"],
                        "high": f["risk_groups"]["hr_high"]}), _p(f["risk_groups"]["logrank_p"])]
                  for name, f in val["models"].items()]
    auc_rows = [[label(name), *[_ci(f.get(f"auc_{h:g}")) for h in val["horizons_months"]]]
                for name, f in val["models"].items()]
    calibration_rows = [[label(name), *[("n/a" if by_h.get(f"{h:g}") is None else f"{by_h[f'{h:g}']:.3f}")
                                        for h in val["horizons_months"]]]
                        for name, by_h in val["calibration_mean_abs_difference"].items()]
    distribution_rows = [[label(name), *[("n/a" if split not in d else f"{d[split]['mean']:+.2f} ({d[split]['sd']:.2f})")
                                         for split in ("development", "validation")]]
                         for name, d in val["score_distributions"].items()]
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
        f"- **Radiology** ({', '.join('`' + r['file'] + '`' for r in radiology.values())}; {rad['kind']}): one model "
        "per MRI sequence set ("
        + ", ".join(SET_LABELS[s] for s in radiology) + "; a case is scored by the model of the sequences it has, "
        "and the record says which), each a CBAM 3D CNN, widths "
        f"{radcfg['model']['widths']}, on {radcfg['preprocess']['patch_size']}^3-voxel patches at "
        f"{radcfg['preprocess']['spacing_mm']:g} mm of the tumor region (preset `{config['radiology_preset']}`), "
        "Cox partial likelihood, "
        + (f"{_federated_cnn(rad)}.\n" if _federated_cnn(rad) else
           f"{config['radiology_folds']}-fold cross-fitting for the development scores. The deployed model of a set "
           f"is the mean of its {members} fold models: each scores a new case as it scored its held-out fold, so new "
           "cases get scores on the scale of the out-of-fold scores the fusion was fitted on (a model refitted on "
           "every development case spreads its scores on a scale of its own).\n")
        + f"- **Pathology patch model** (`{patch['file']}`, {patch['kind']}): "
        f"{patch['config']['architecture']} from {config['pathology_init']} initial weights, "
        f"{patch['config']['patch_px']}-pixel patches at {patch['config']['spacing_um']:g} um/px, label "
        f"\"{patch['config']['label']}\", {config['pathology_epochs']} epochs at most of "
        f"{config['pathology_patches_per_epoch']} patches with stain jitter, "
        f"{_federated_cnn(patch) or str(config['pathology_folds']) + '-fold cross-fitting'}.\n"
        f"- **Slide signature** (`{sig['file']}`, {sig['kind']}): histogram ({sig['config']['n_bins']} bins) and "
        f"bag of words ({sig['config']['n_words']} levels, TF-IDF) of patch probabilities into a penalized Cox model "
        f"(penalizer {sig['config']['penalizer']:g}), fit on out-of-fold tile scores. "
        + (f"A new slide's score (from the final patch model) is mapped onto the out-of-fold scale, "
           f"{scale['offset']:+.3f} + {scale['slope']:.3f} x score, with the mean and SD matched on the "
           f"{scale['n_cases']} development cases the final patch model did not train on (averaging the fold patch "
           "models instead would multiply the time to score a slide).\n" if scale else
           "Its scores are not mapped onto the out-of-fold scale (too few development cases unseen by the final "
           "patch model).\n")
        + f"- **Fusion** (`{fusion['file']}`, {fusion['kind']}): Cox regression over the clinical variables "
        f"{', '.join(fusion_params['clinical_features'])}, the radiology score and the pathology score; one "
        "sub-model per available subset of modalities, and for radiology per sequence set (fit on that set's "
        f"out-of-fold scores, never used for another set's score); {_fusion_training(fusion)}; risk groups "
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
        "Calibration slope (the Cox coefficient of the model's log relative hazard refitted on the validation "
        "cases: 1 is ideal, below 1 the risks are too spread out, above 1 too narrow) and calibration-in-the-large "
        f"(observed / expected recurrences up to {val['horizons_months'][-1]:g} months, each case's expected count "
        "being the model's cumulative hazard at the end of its follow-up; its log is the calibration intercept, "
        "the intercept of a Poisson model with offset log(expected), 0 is ideal), bootstrap 95% CIs:",
        _table(["Model", *[text for _, text in CALIBRATION]], calibration_slope_rows),
        "Calibration: mean absolute difference between predicted and observed (Kaplan-Meier) recurrence-free "
        "probability over risk groups, at each horizon:",
        _table(["Model", *[f"{h:g} months" for h in val["horizons_months"]]], calibration_rows),
        *([f"Radiology models by MRI sequence set, on the {sets['n']} validation cases ({sets['events']} "
           "recurrences) that have every set's score; each set's combined model is its own fusion sub-model:",
           _table(["Model", "Harrell's C", "Mean time-dependent AUC", "Calibration slope"], set_rows)]
          if set_rows else []),
        "Imaging scores, mean (SD): development cases (out-of-fold, from the fold models) and validation cases "
        "(centre B, from the deployed models: the mean of the radiology fold models; the final pathology model, "
        "mapped onto the out-of-fold scale). A difference between the two comes from the centres (scanner, stain) "
        "and from what is left of the deployed models' own spread:",
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
