"""``sarcoma-risk evaluate``: the validation report of a fusion model on one split of a manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sarcoma_risk.cli.common import add_json_option, positive_int, print_json

TRUTH_NAME = "truth.json"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evaluate", help="validation report of the fusion model (metrics with CIs, KM, calibration, ...)",
        description="Evaluate a fitted fusion model on one split of a manifest: Harrell's and Uno's C, "
                    "cumulative/dynamic AUC at 1/3/5 years and its mean, integrated Brier score, each with a "
                    "bootstrap 95%% CI, for the clinical, radiology, pathology and combined models side by side; "
                    "Kaplan-Meier curves of the risk groups with numbers at risk, log-rank p and hazard ratio; "
                    "calibration; decision curves; nomogram. Writes report.html (self-contained), report.json "
                    "and figures/*.png into --out. With a phantom cohort (truth.json beside the manifest) the "
                    "report adds the oracle C-index and the combined/oracle ratio.")
    p.add_argument("--manifest", type=Path, required=True, help="cohort manifest (manifest.csv)")
    p.add_argument("--split", default="validation", metavar="validation|development",
                   help="split to evaluate (default: validation)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=None, metavar="FILE", help="a fusion.json model file")
    source.add_argument("--weights", type=Path, default=None, metavar="DIR",
                        help="weights folder with manifest.json listing 'fusion' (default: the shipped weights)")
    p.add_argument("--scores", type=Path, action="append", default=[], metavar="FILE",
                   help="imaging score table (radiology_scores.csv or pathology_scores.csv); repeat for both")
    p.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="folder for the report")
    p.add_argument("--bootstrap", type=positive_int, default=1000, metavar="B",
                   help="bootstrap resamples for the CIs (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--truth", type=Path, default=None, metavar="FILE",
                   help="phantom truth.json (default: truth.json beside the manifest, when present)")
    p.add_argument("--baselines", action="store_true",
                   help="also fit the negative-control baselines on the development cases (first-order MRI "
                        "intensity statistics in the tumor mask; slide optical density and H&E stain intensities "
                        "over tumor tissue), compare each CNN with its baseline, give each model's share of the "
                        "clinical-to-oracle gap (with truth.json) with paired bootstrap CIs, and repeat the "
                        "fusion's penalizer cross-validation; writes baselines.json and baseline_features.csv")
    p.add_argument("--cv-repeats", type=positive_int, default=5, metavar="R",
                   help="repeats of the penalizer cross-validation with --baselines (default: 5)")
    add_json_option(p)
    p.set_defaults(handler=cmd_evaluate)


def _truth(args: argparse.Namespace) -> dict[str, Any] | None:
    from sarcoma_risk.errors import InvalidInput

    path = args.truth or args.manifest.parent / TRUTH_NAME
    if not path.is_file():
        if args.truth is not None:
            raise InvalidInput(f"--truth {path}: no such file")
        return None
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(truth, dict) or "oracle_c_index" not in truth:
        raise InvalidInput(f"{path}: not a phantom cohort truth file (no 'oracle_c_index')")
    return truth


def _baselines(args: argparse.Namespace, model, manifest, tables, split: str) -> dict[str, Any]:
    from sarcoma_risk.baselines.comparison import case_features, feature_table, honest_comparison
    from sarcoma_risk.fileio import atomic_write_json, atomic_write_text

    radiomics, colour, failures = case_features(manifest)
    result = honest_comparison(model, manifest, tables, _truth(args), split=split, n_resamples=args.bootstrap,
                               seed=args.seed, cv_repeats=args.cv_repeats, features=(radiomics, colour))
    result["baselines"]["failures"] = failures
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "baselines.json", result, indent=1)
    atomic_write_text(args.out / "baseline_features.csv", feature_table(radiomics, colour).to_csv(index_label="case_id"))
    comparison = result["comparison"]
    return {"json": str(args.out / "baselines.json"), "c_index": comparison["c_index"],
            "gap_share": comparison.get("gap_share"), "differences": comparison["differences"],
            "penalizer_cv": {sub: {k: cv[k] for k in ("chosen", "most_chosen", "fitted_penalizer")}
                             for sub, cv in result["penalizer_cv"].items()}}


def _print_baselines(summary: dict[str, Any]) -> None:
    shares = summary.get("gap_share") or {}
    print("models against their baselines (Harrell's C, 95% CI; share of the clinical-to-oracle gap):")
    for name, iv in summary["c_index"].items():
        share = shares.get(name)
        gap = "" if share is None or share["estimate"] is None else f"  gap share {share['estimate']:.2f}"
        print(f"  {name:36s} {iv['estimate']:.3f} ({iv['low']:.3f}-{iv['high']:.3f}){gap}")
    for name, iv in summary["differences"].items():
        print(f"  {name:60s} {iv['estimate']:+.3f} ({iv['low']:+.3f} to {iv['high']:+.3f})")
    for sub, cv in summary["penalizer_cv"].items():
        print(f"  penalizer of {sub}: fitted {cv['fitted_penalizer']:g}, repeats chose "
              f"{', '.join(f'{p:g}' for p in cv['chosen'])}")
    print(f"baselines: {summary['json']}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sarcoma_risk.cohort import Split, read_manifest
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.fusion.evaluation import evaluate
    from sarcoma_risk.fusion.loading import load_fusion
    from sarcoma_risk.fusion.report import write_report
    from sarcoma_risk.survival.scores import read_score_tables
    from sarcoma_risk.fusion.table import table_from_manifest

    try:
        split = Split(args.split)
    except ValueError:
        raise InvalidInput(f"--split {args.split!r}: expected development or validation") from None
    model, info = load_fusion(args.model, args.weights)
    manifest = read_manifest(args.manifest)
    tables = read_score_tables(args.scores)
    table = table_from_manifest(manifest, tables, split=split)
    if table.empty:
        raise InvalidInput(f"{args.manifest}: no {split.value} cases")
    notes = []
    if split is Split.DEVELOPMENT:
        notes.append("evaluated on the development cases the model was fitted on: apparent, optimistic "
                     "performance (use --split validation for the held-out figures)")
    for modality, scores in tables.items():
        in_fold = [c for c in table.index if c in scores.entries and scores.entries[c].source != "final_model"
                   and scores.entries[c].score is not None]
        if split is Split.VALIDATION and in_fold:
            notes.append(f"{len(in_fold)} {split.value} {modality} score(s) are not from the final model "
                         f"(source other than final_model in {scores.path.name})")
    result = evaluate(model, table, split=split.value, n_resamples=args.bootstrap, seed=args.seed, truth=_truth(args),
                      notes=notes)
    paths = write_report(result, args.out, title=f"SarcomaRisk fusion: {split.value} report", model_info=info)
    summary: dict[str, Any] = {"report": str(paths["html"]), "json": str(paths["json"]), "n": result.cohort["n"],
                               "events": result.cohort["events"]}
    if result.comparison and result.comparison.metrics:
        summary["harrell_c"] = {name: m["harrell_c"] for name, m in result.comparison.metrics["models"].items()}
        summary["calibration_slope"] = {name: m["calibration_slope"]
                                        for name, m in result.comparison.metrics["models"].items()}
    if result.sequence_sets:
        summary["sequence_sets_harrell_c"] = {name: m["harrell_c"]
                                              for name, m in result.sequence_sets["metrics"]["models"].items()}
    if result.oracle and "combined_to_oracle_ratio" in result.oracle:
        summary["combined_to_oracle_ratio"] = result.oracle["combined_to_oracle_ratio"]
    if args.baselines:
        summary["baselines"] = _baselines(args, model, manifest, tables, split.value)
    if args.json:
        print_json(summary)
        return 0
    if args.baselines:
        _print_baselines(summary["baselines"])
    print(f"evaluated {summary['n']} {split.value} cases ({summary['events']} events)")
    def ci(iv: dict[str, Any]) -> str:
        return "n/a" if iv["estimate"] is None else f"{iv['estimate']:.3f} ({iv['low']:.3f}-{iv['high']:.3f})"

    for name, iv in summary.get("harrell_c", {}).items():
        star = " (combined)" if name == result.combined else ""
        print(f"  Harrell's C {name:40s} {ci(iv)}, calibration slope {ci(summary['calibration_slope'][name])}{star}")
    for name, iv in summary.get("sequence_sets_harrell_c", {}).items():
        print(f"  Harrell's C {name:40s} {ci(iv)} (on the cases with every sequence set's score)")
    if "combined_to_oracle_ratio" in summary:
        r = summary["combined_to_oracle_ratio"]
        print(f"  combined / oracle C-index: {r['estimate']:.3f} ({r['low']:.3f}-{r['high']:.3f})")
    print(f"report: {paths['html']}\ndata:   {paths['json']}")
    return 0
