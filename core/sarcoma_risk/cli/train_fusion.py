"""``sarcoma-risk train fusion``: fit the Cox fusion model on the development split of a manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, positive_int, print_json

MODEL_FILE = "fusion.json"


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas, e.g. 0.01,0.1,1") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register_train(train: argparse._SubParsersAction) -> None:
    p = train.add_parser(
        "fusion", help="fit the Cox fusion model (clinical + imaging scores) on the development split",
        description="Fit one Cox model per available subset of {clinical, radiology, pathology} on the development "
                    "cases of the manifest, with the ridge penalizer chosen by cross-validation and the risk-group "
                    "cutoff fixed on the development cases. Imaging scores come from the score tables written by "
                    "the imaging train commands (--scores, one per modality); development scores must be "
                    "out-of-fold. Writes DIR/fusion.json and registers it in DIR/manifest.json as 'fusion'.")
    p.add_argument("--manifest", type=Path, required=True, help="cohort manifest (manifest.csv)")
    p.add_argument("--scores", type=Path, action="append", default=[], metavar="FILE",
                   help="imaging score table (radiology_scores.csv or pathology_scores.csv); repeat for both")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="weights folder to write into")
    p.add_argument("--cutoff", default="median", metavar="median|maxstat",
                   help="risk-group cutoff: development median, or maximally selected log-rank (default: median)")
    p.add_argument("--min-group-share", type=float, default=0.2, metavar="F",
                   help="with --cutoff maxstat: smallest share of development cases in a group (default: 0.2)")
    p.add_argument("--features", type=_names, default=None, metavar="A,B,...",
                   help="clinical variables of the model (default: age_years, tumor_size_cm, depth, fnclcc_grade, "
                        "margin, presentation, radiotherapy)")
    p.add_argument("--penalizers", type=_floats, default=None, metavar="P1,P2,...",
                   help="ridge penalizers tried by cross-validation (default: 0.001 to 1)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--cv-metric", default="partial_likelihood", metavar="partial_likelihood|c_index",
                   help="cross-validation criterion (default: partial_likelihood)")
    p.add_argument("--min-events", type=positive_int, default=10,
                   help="fit a sub-model only with at least this many development events (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds (default: 0)")
    p.add_argument("--allow-in-sample-scores", action="store_true",
                   help="accept development imaging scores that are not out-of-fold (the fit will be optimistic; "
                        "recorded in the model card)")
    add_json_option(p)
    p.set_defaults(handler=cmd_train_fusion)


def cmd_train_fusion(args: argparse.Namespace) -> int:
    from sarcoma_risk.clinical.encoder import DEFAULT_FEATURES
    from sarcoma_risk.cohort import Split, read_manifest
    from sarcoma_risk.fusion.loading import KIND, REGISTRY_NAME
    from sarcoma_risk.fusion.model import CoxFusion
    from sarcoma_risk.survival.scores import check_out_of_fold, read_score_tables
    from sarcoma_risk.fusion.selection import DEFAULT_PENALIZERS
    from sarcoma_risk.fusion.table import table_from_manifest
    from sarcoma_risk.provenance import fingerprint, software_version
    from sarcoma_risk.fileio import atomic_write_json
    from sarcoma_risk.weights import WeightRegistry

    manifest = read_manifest(args.manifest)
    tables = read_score_tables(args.scores)
    development = table_from_manifest(manifest, tables, split=Split.DEVELOPMENT)
    not_oof = check_out_of_fold(tables, development.index, allow_in_sample=args.allow_in_sample_scores)
    model = CoxFusion(clinical_features=args.features or DEFAULT_FEATURES,
                      penalizers=args.penalizers or DEFAULT_PENALIZERS, cv_folds=args.folds, cv_metric=args.cv_metric,
                      cutoff=args.cutoff, min_group_share=args.min_group_share, min_events=args.min_events,
                      seed=args.seed)
    model.fit(development)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / MODEL_FILE, model.to_dict())
    training_data = {
        "manifest_sha256": fingerprint(args.manifest)["sha256"],
        "split": Split.DEVELOPMENT.value,
        "n": model.n_development_, "events": model.events_development_,
        "centres": sorted(development["centre"].unique().tolist()),
        "score_tables": {m: {"sha256": fingerprint(t.path)["sha256"], "not_out_of_fold": not_oof.get(m, 0)}
                         for m, t in tables.items()},
        "honest_out_of_fold": not any(not_oof.values()),
    }
    entry = WeightRegistry(args.out).register(
        REGISTRY_NAME, MODEL_FILE, kind=KIND, version=software_version(), config=model.get_params(),
        training_data=training_data)
    summary = {
        "model": str(args.out / MODEL_FILE), "sha256": entry["sha256"], "training_data": training_data,
        "submodels": {name: {"n": s.development.n, "events": s.development.events,
                             "penalizer": s.cox.penalizer, "cutoff": s.cutoff.value,
                             "apparent_harrell_c": s.development.apparent_harrell_c}
                      for name, s in model.submodels_.items()},
        "skipped": model.skipped_,
    }
    if args.json:
        print_json(summary)
        return 0
    print(f"fusion model: {len(model.submodels_)} sub-model(s) fitted on {model.n_development_} development cases "
          f"({model.events_development_} events); written to {args.out / MODEL_FILE}")
    for name, s in summary["submodels"].items():
        print(f"  {name:30s} n={s['n']:4d} events={s['events']:4d} penalizer={s['penalizer']:g} "
              f"cutoff={s['cutoff']:.3f} apparent C={s['apparent_harrell_c']:.3f}")
    for name, why in model.skipped_.items():
        print(f"  {name:30s} not fitted: {why}")
    if not training_data["honest_out_of_fold"]:
        print("warning: development imaging scores were not all out-of-fold; the fit is optimistic", file=sys.stderr)
    return 0
