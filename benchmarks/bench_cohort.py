"""Quality end to end: a phantom cohort, every model trained on centre A, validated on centre B, vs the oracle.

Runs the ``train all`` orchestration (:func:`sarcoma_risk.release.train_all.train_all`, what
``make weights`` runs) with the shipped weights' settings on a cohort of another seed, so it
replicates the shipped weights' validation on independent phantom data. Figures, one JSON line
each, all measured in this one run on the same validation cases:

- ``validation_c_index_<model>`` and ``validation_mean_auc_<model>`` (estimate, bootstrap 95% CI)
  for the clinical-only, radiology-only, pathology-only and combined models;
- ``oracle_c_index``: Harrell's C of the true linear predictor on the same cases;
- ``combined_to_oracle_ratio`` (target >= 0.95), with its paired bootstrap CI;
- what limits the ratio: ``truth_c_index_*`` (the true coefficients with clinical data only, or
  plus one true phenotype) and ``*_score_vs_phenotype_pearson`` (how well each imaging score on the
  validation cases follows the latent phenotype it should read off the images);
- the honest comparison (:mod:`sarcoma_risk.baselines.comparison`) on the validation cases with
  every score: ``c_index_<model>`` for clinical, each CNN sub-model (alone and with clinical data),
  the first-order radiomics and slide colour baselines (alone, with clinical data, both together),
  combined and oracle; ``gap_share_<model>``, the share of the clinical-to-oracle gap it closes;
  ``difference_<cnn>_minus_<baseline>``; all with paired bootstrap CIs (the same resamples);
  ``penalizer_cv_<sub-model>``: the fusion penalizer chosen in each of R seeded K-fold repeats;
  ``goal_*``: combined closes >= 0.8 of the gap, each CNN beats its baseline with a CI above 0;

- the image ceiling (:mod:`sarcoma_risk.synthetic.ceiling`), the best a perfect reader of the images
  could predict (the posterior mean of the true linear predictor given the chart and the phenotype each
  image shows; on the hard phantom each image shows it with a readout error, so no image model can
  reach the oracle): ``image_ceiling_c_index`` on the ``oracle_c_index`` cases (validation cases with
  every modality), ``true_clinical_c_index`` (the true clinical linear predictor) and
  ``gap_share_image_ceiling_of_true_clinical`` on the same cases; and in the honest comparison
  ``c_index_image_ceiling`` and ``gap_share_image_ceiling``, its share of the fitted clinical model's gap
  with the same paired bootstrap as every other share. Computed from the cohort's plans (no rendering);
- the reader ceiling (:func:`~sarcoma_risk.synthetic.ceiling.reader_ceiling`) at this run's CNNs' r with
  their phenotypes: the best any fusion of scores that good could do (``reader_ceiling_c_index``,
  ``gap_share_reader_ceiling_of_true_clinical``, and each read alone, ``reader_c_index_mri`` and
  ``reader_c_index_pathology``), which tells weak readers apart from a weak fusion;
- ``seconds_<step>`` and ``end_to_end_minutes``.

``--difficulty hard`` runs it on the hard phantom (:mod:`sarcoma_risk.synthetic.difficulty`).
``--ceiling-only`` plans the same cohort, trains nothing and prints ``oracle_c_index``,
``image_ceiling_c_index``, ``true_clinical_c_index`` and ``gap_share_image_ceiling_of_true_clinical``
in seconds, so the ceiling of any ``--difficulty/--cases/--seed`` can be checked before a run; with
``--reader-pearson MRI PATHOLOGY`` it adds the reader ceiling of readers of that quality.

The cohort and caches go to a temporary folder (``--work DIR`` keeps them). Takes about a quarter of
an hour on 2 cores with the defaults; ``--difficulty hard --cases 800`` took 23 minutes.
``--pathology-epochs/--pathology-patience`` lengthen the patch model's schedule (``bench_patch_oracle.py``
shows the release's 10 epochs are too few for the hard phantom's slides); ``--pathology-preset paper``
trains the published patch model and scale instead of the release's (about 50 s an epoch on 2 idle
CPU cores, so hours for the four trainings; meant for a GPU, which ``--device auto`` takes). Run:
``.venv/bin/python benchmarks/bench_cohort.py [--cases N] [--seed S] [--pathology-epochs N]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import emit, machine

BENCH = "cohort"
#: Not the seed of the shipped weights (2026) nor of the demo case.
BENCH_SEED = 7
TARGET_RATIO = 0.95
TARGET_GAP_SHARE = 0.8
READER_NOTE = ("best fusion (true coefficients, posterior means) of reads with these r; oracle_c_index's cases, "
               "paired bootstrap")
NAMES = {"clinical": "clinical", "radiology": "radiology", "pathology": "pathology",
         "clinical+radiology+pathology": "combined"}


def _interval(iv: dict) -> dict:
    return {"ci_low": None if iv["low"] is None else round(iv["low"], 4),
            "ci_high": None if iv["high"] is None else round(iv["high"], 4)}


def _phenotype_correlation(stage: Path, truth: dict, modality: str, latent: str,
                           sequences: str | None = None) -> float:
    """Pearson r between an imaging score of the validation cases and the latent phenotype it should read
    (radiology: the scores of the model of ``sequences``, the table holding one row per case and set)."""
    z = {c["case_id"]: c[latent] for c in truth["cases"] if c["split"] == "validation"}
    with open(stage / f"{modality}_scores.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "validation" and r["case_id"] in z
                and r.get("sequences", sequences) == sequences]
    scores = np.array([float(r[f"{modality}_score"]) for r in rows])
    return float(np.corrcoef(scores, [z[r["case_id"]] for r in rows])[0, 1])


def _plans(config) -> list:
    """The cohort's cases as ``train all`` plans them (``synth`` with its defaults), without rendering."""
    from sarcoma_risk.synthetic import plan_cohort

    return plan_cohort(config.cases, ("A", "B"), config.seed, size=config.size, difficulty=config.difficulty)


def _ceiling(plans: list, n_resamples: int, readers: tuple[float, float] | None = None) -> dict:
    """The image ceiling, the true clinical predictor and the oracle on the validation cases with every modality;
    with ``readers`` (Pearson r of an MRI and a slide reader with their phenotypes) the reader ceiling and each
    reader's read too."""
    from sarcoma_risk.fusion.gap import gap_report
    from sarcoma_risk.synthetic import image_ceiling, reader_ceiling

    cases = [p for p in plans if p.split == "validation" and p.mri_seed is not None and p.slides]
    scores = {"true_clinical": [p.sample.lp_clinical for p in cases], "oracle": [p.sample.lp for p in cases],
              "image_ceiling": image_ceiling(cases)}
    if readers is not None:
        read = reader_ceiling(cases, *readers)
        scores.update({"reader_ceiling": read.predictor, "mri_reader": read.mri_read,
                       "pathology_reader": read.pathology_read})
    return gap_report([p.sample.time_months for p in cases], [p.sample.event for p in cases], scores,
                      clinical="true_clinical", oracle="oracle", n_resamples=n_resamples)


def _reachable(pearson: float, difficulty: str) -> float:
    """A measured score-phenotype r as a reader's quality: its size (fusion fits each score's sign, so a
    score that reads the phenotype backwards reads it as well), at most what the images show."""
    from sarcoma_risk.synthetic.ceiling import max_reader_pearson
    from sarcoma_risk.synthetic.difficulty import render_difficulty

    return min(abs(pearson), max_reader_pearson(render_difficulty(difficulty)))


def _ceiling_by_case(plans: list) -> dict[str, float]:
    from sarcoma_risk.synthetic import image_ceiling

    return dict(zip((p.case_id for p in plans), image_ceiling(plans).tolist()))


def _check_plans(plans: list, truth: dict) -> None:
    """The plans must be the rendered cohort's cases (same ids and true linear predictors)."""
    lp = {c["case_id"]: c["lp"] for c in truth["cases"]}
    if {p.case_id: p.sample.lp for p in plans} != lp:
        raise SystemExit("bench_cohort: the planned cases differ from the generated cohort's truth.json; "
                         "the plans must use the arguments train all passes to synth")


def _emit_ceiling(report: dict, context: dict, *, oracle: bool) -> None:
    context = {**context, "n": report["n"], "events": report["events"], "bootstrap": report["n_resamples"]}
    note = "validation cases with every modality (those of oracle_c_index); from the plans, paired bootstrap"
    names = {"oracle": "oracle_c_index"} if oracle else {}  # a full run has the evaluation's oracle line
    names.update({"image_ceiling": "image_ceiling_c_index", "true_clinical": "true_clinical_c_index"})
    for key, figure in names.items():
        iv = report["c_index"][key]
        emit(BENCH, figure, round(iv["estimate"], 4), "Harrell's C", **_interval(iv), note=note, **context)
    share = report["gap_share"]["image_ceiling"]
    emit(BENCH, "gap_share_image_ceiling_of_true_clinical", round(share["estimate"], 4), "share", **_interval(share),
         n_undefined=share["n_undefined"], note="(C_ceiling - C_true_clinical) / (C_oracle - C_true_clinical)",
         goal_combined_gap_share=TARGET_GAP_SHARE, **context)


def _emit_reader_ceiling(report: dict, readers: tuple[float, float], context: dict, note: str) -> None:
    context = {**context, "n": report["n"], "events": report["events"], "bootstrap": report["n_resamples"],
               "reader_pearson_mri": readers[0], "reader_pearson_pathology": readers[1], "note": note}
    for key, figure in (("reader_ceiling", "reader_ceiling_c_index"), ("mri_reader", "reader_c_index_mri"),
                        ("pathology_reader", "reader_c_index_pathology")):
        iv = report["c_index"][key]
        emit(BENCH, figure, round(iv["estimate"], 4), "Harrell's C", **_interval(iv), **context)
    share = report["gap_share"]["reader_ceiling"]
    emit(BENCH, "gap_share_reader_ceiling_of_true_clinical", round(share["estimate"], 4), "share",
         **_interval(share), n_undefined=share["n_undefined"], goal_combined_gap_share=TARGET_GAP_SHARE, **context)


def _compared_radiology(stage: Path) -> str:
    """The fusion's radiology input the figures name "radiology" (``radiology[t2fs+t1ce]`` when trained)."""
    from sarcoma_risk.baselines.comparison import compared_radiology_input
    from sarcoma_risk.fusion.loading import load_fusion

    return compared_radiology_input(load_fusion(None, stage)[0])


def _honest(work: Path, truth: dict, config, repeats: int, ceiling: dict[str, float]) -> tuple[dict, float]:
    """Baselines, gap shares and repeated penalizer CV on the run's validation cases."""
    import time

    from sarcoma_risk.baselines.comparison import honest_comparison
    from sarcoma_risk.cohort import read_manifest
    from sarcoma_risk.fusion.loading import load_fusion
    from sarcoma_risk.survival.scores import read_score_tables

    start = time.monotonic()
    stage = work / "stage"
    model, _ = load_fusion(None, stage)
    tables = read_score_tables([stage / "radiology_scores.csv", stage / "pathology_scores.csv"])
    honest = honest_comparison(model, read_manifest(work / "cohort" / "manifest.csv"), tables, truth,
                               n_resamples=config.bootstrap, cv_repeats=repeats,
                               cv_submodels=("clinical+radiology+pathology", "clinical+radiology", "clinical+pathology"),
                               references={"image_ceiling": ceiling})
    return honest, round(time.monotonic() - start, 1)


def _emit_honest(honest: dict, context: dict) -> None:
    comparison = honest["comparison"]
    note = "validation cases with every CNN and baseline score; paired bootstrap (same resamples for all models)"
    for name, iv in comparison["c_index"].items():
        emit(BENCH, f"c_index_{name}", round(iv["estimate"], 4), "Harrell's C", **_interval(iv), note=note, **context)
    for name, iv in comparison["gap_share"].items():
        emit(BENCH, f"gap_share_{name}", round(iv["estimate"], 4), "share", **_interval(iv),
             n_undefined=iv["n_undefined"], note="(C - C_clinical) / (C_oracle - C_clinical)", **context)
    for name, iv in comparison["differences"].items():
        emit(BENCH, f"difference_{name}", round(iv["estimate"], 4), "Harrell's C", **_interval(iv), **context)
    for sub, cv in honest["penalizer_cv"].items():
        emit(BENCH, f"penalizer_cv_{sub}", cv["most_chosen"], "penalizer", chosen=cv["chosen"], counts=cv["counts"],
             log10_sd=round(cv["log10_chosen_sd"], 3), fitted=cv["fitted_penalizer"],
             repeats=cv["repeats"], folds=cv["folds"], **context)
    share = comparison["gap_share"]["combined"]
    emit(BENCH, "goal_combined_gap_share", round(share["estimate"], 4), "share", **_interval(share),
         target=f">= {TARGET_GAP_SHARE}", met=bool(share["estimate"] >= TARGET_GAP_SHARE), **context)
    for label in ("radiology_cnn_minus_radiomics_baseline", "pathology_cnn_minus_colour_baseline"):
        iv = comparison["differences"][label]
        emit(BENCH, f"goal_{label}", round(iv["estimate"], 4), "Harrell's C", **_interval(iv),
             target="CI low > 0", met=bool(iv["low"] is not None and iv["low"] > 0), **context)


def main() -> None:
    from sarcoma_risk.baselines.comparison import with_radiology
    from sarcoma_risk.device import resolve_device
    from sarcoma_risk.errors import SarcomaRiskError
    from sarcoma_risk.fusion.table import input_sequences
    from sarcoma_risk.release.config import TrainAllConfig
    from sarcoma_risk.release.train_all import train_all
    from sarcoma_risk.weights import WeightRegistry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=TrainAllConfig.cases, help="phantom cases (default: as make weights)")
    parser.add_argument("--seed", type=int, default=BENCH_SEED, help=f"cohort seed (default {BENCH_SEED})")
    parser.add_argument("--work", type=Path, default=None, help="keep the cohort, caches and report in this folder")
    parser.add_argument("--difficulty", default="standard", help="phantom difficulty: standard or hard (default standard)")
    parser.add_argument("--bootstrap", type=int, default=TrainAllConfig.bootstrap, help="bootstrap resamples")
    parser.add_argument("--cv-repeats", type=int, default=5, help="repeats of the fusion penalizer cross-validation")
    release = TrainAllConfig()
    parser.add_argument("--pathology-epochs", type=int, default=release.pathology_epochs,
                        help="patch-model epochs at most (default: as make weights)")
    parser.add_argument("--pathology-patience", type=int, default=release.pathology_patience,
                        help="patch-model epochs without improvement before it stops (default: as make weights)")
    parser.add_argument("--pathology-preset", choices=("paper",), default=None,
                        help="paper: the published patch model and scale, ShuffleNetV2 x1.0 on 224-px patches at "
                             "0.5 um/px, as `train pathology --preset paper` (default: as make weights, x0.5 on "
                             "112-px patches at 1 um/px)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                        help="where the radiology and patch models train (default: auto, a CUDA GPU when there is one)")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="plan the cohort and print the oracle, the image ceiling and the true clinical C-index; "
                             "train nothing")
    parser.add_argument("--reader-pearson", type=float, nargs=2, metavar=("MRI", "PATHOLOGY"), default=None,
                        help="with --ceiling-only: also the reader ceiling of readers whose scores have these Pearson "
                             "r with their phenotypes (a full run uses its CNNs' own)")
    args = parser.parse_args()
    if args.reader_pearson is not None and not args.ceiling_only:
        parser.error("--reader-pearson goes with --ceiling-only; a full run takes its CNNs' measured r")

    config = TrainAllConfig(cases=args.cases, seed=args.seed, difficulty=args.difficulty, bootstrap=args.bootstrap,
                            pathology_epochs=args.pathology_epochs, pathology_patience=args.pathology_patience)
    if args.pathology_preset == "paper":
        config = config.with_paper_pathology()
    if not args.ceiling_only:  # an unknown or missing device is refused before anything is planned or rendered
        try:
            device = resolve_device(args.device).type
        except SarcomaRiskError as error:
            parser.error(str(error))
    plans = _plans(config)
    try:
        ceiling = _ceiling(plans, config.bootstrap, None if args.reader_pearson is None else tuple(args.reader_pearson))
    except SarcomaRiskError as error:
        parser.error(str(error))
    if args.ceiling_only:
        context = {"split": "validation (centre B)", "cases": config.cases, "seed": config.seed, "size": config.size,
                   "difficulty": config.difficulty, **machine()}
        _emit_ceiling(ceiling, context, oracle=True)
        if args.reader_pearson is not None:
            _emit_reader_ceiling(ceiling, tuple(args.reader_pearson), context, READER_NOTE)
        return
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        work = args.work or Path(tmp) / "work"
        result = train_all(Path(tmp) / "weights", work, config, stream=sys.stderr, device=args.device)
        truth = json.loads((work / "cohort" / "truth.json").read_text(encoding="utf-8"))
        # what --init auto resolved to (ImageNet or random), as the release registered it
        patch_init = WeightRegistry(result.out_dir).entry("pathology-patch")["config"]["training"]["init"]
        _check_plans(plans, truth)
        honest, honest_seconds = _honest(work, truth, config, args.cv_repeats, _ceiling_by_case(plans))
        radiology = _compared_radiology(work / "stage")
        correlations = {
            "radiology_score_vs_mri_phenotype_pearson": _phenotype_correlation(
                work / "stage", truth, "radiology", "z_r", input_sequences(radiology)),
            "pathology_score_vs_pathology_phenotype_pearson": _phenotype_correlation(work / "stage", truth, "pathology",
                                                                                     "z_p")}
    figures = result.figures
    comparison = figures.comparison
    context = {"split": "validation (centre B)", "n": comparison.n, "events": comparison.events,
               "cases": config.cases, "seed": config.seed, "size": config.size, "difficulty": config.difficulty,
               "pathology_epochs": config.pathology_epochs, "pathology_patience": config.pathology_patience,
               "pathology_architecture": config.pathology_architecture, "pathology_init": patch_init,
               "pathology_patch_px": config.pathology_patch_px, "pathology_spacing_um": config.pathology_spacing_um,
               "device": device,
               "bootstrap": comparison.metrics["n_resamples"], **machine()}
    for name, short in NAMES.items():
        metrics = comparison.metrics["models"][with_radiology(name, radiology)]
        emit(BENCH, f"validation_c_index_{short}", round(metrics["harrell_c"]["estimate"], 4), "Harrell's C",
             **_interval(metrics["harrell_c"]), **context)
        emit(BENCH, f"validation_mean_auc_{short}", round(metrics["mean_auc"]["estimate"], 4), "AUC",
             **_interval(metrics["mean_auc"]), horizons_months=list(figures.horizons_months), **context)
    oracle = figures.oracle
    emit(BENCH, "oracle_c_index", round(oracle["oracle_harrell_c"]["estimate"], 4), "Harrell's C",
         **_interval(oracle["oracle_harrell_c"]), **context)
    ratio = oracle["combined_to_oracle_ratio"]
    emit(BENCH, "combined_to_oracle_ratio", round(ratio["estimate"], 4), "ratio", **_interval(ratio),
         target=f">= {TARGET_RATIO}", met=bool(ratio["estimate"] >= TARGET_RATIO), **context)
    groups = truth["c_index"]["groups"]["split:validation"]
    for key in ("clinical_only", "clinical+mri_phenotype", "clinical+pathology_phenotype"):
        emit(BENCH, f"truth_c_index_{key.replace('+', '_plus_')}", round(groups[key], 4), "Harrell's C",
             note="true coefficients; what each part of the truth alone reaches on these cases", **context)
    for figure, value in correlations.items():
        emit(BENCH, figure, round(value, 4), "r", note="validation cases; 1 = the score reads the phenotype exactly",
             **context)
    _emit_ceiling(ceiling, context, oracle=False)
    readers = (_reachable(correlations["radiology_score_vs_mri_phenotype_pearson"], config.difficulty),
               _reachable(correlations["pathology_score_vs_pathology_phenotype_pearson"], config.difficulty))
    _emit_reader_ceiling(_ceiling(plans, config.bootstrap, readers), readers, context,
                         READER_NOTE + "; readers as good as this run's CNNs (the size of their r)")
    _emit_honest(honest, {**context, "n": honest["comparison"]["n"], "events": honest["comparison"]["events"],
                          "bootstrap": honest["comparison"]["n_resamples"]})
    emit(BENCH, "seconds_honest_comparison", honest_seconds, "s", **context)
    for step, seconds in result.seconds.items():
        if step != "total":
            emit(BENCH, f"seconds_{step}", seconds, "s", **context)
    emit(BENCH, "end_to_end_minutes", round(result.seconds["total"] / 60.0, 1), "min", **context)


if __name__ == "__main__":
    main()
