"""The honest comparison: CNN sub-models against hand-made baselines and the oracle, on the same cases.

1. First-order radiomics (:mod:`~sarcoma_risk.baselines.radiomics`) and slide colour features
   (:mod:`~sarcoma_risk.baselines.colour`) of every case of the manifest.
2. Each becomes a score like an imaging model's: a ridge Cox model
   (:class:`~sarcoma_risk.baselines.model.BaselineCox`) fit on the development cases, out-of-fold
   there (cross-fitting, as the CNN scores are), fitted on all of them for the validation cases.
3. A :class:`~sarcoma_risk.fusion.model.CoxFusion` with the fitted fusion's parameters is fit on the
   baseline scores, so "radiomics alone", "clinical + radiomics", "clinical + colour" and "clinical +
   both baselines" are built exactly as the CNN sub-models are.
4. On the evaluated cases that have every score and a true linear predictor: Harrell's C of each
   model, its share of the clinical-to-oracle gap, and paired differences (each CNN minus its
   baseline, combined minus clinical) on one set of bootstrap resamples (:mod:`sarcoma_risk.fusion.gap`).
5. Repeated, seeded cross-validation of the fusion's penalizer choice
   (:mod:`sarcoma_risk.fusion.repeated_cv`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.baselines.colour import colour_features
from sarcoma_risk.baselines.model import BaselineCox, crossfit_risk
from sarcoma_risk.baselines.radiomics import first_order_features
from sarcoma_risk.errors import InvalidInput, SarcomaRiskError
from sarcoma_risk.fusion.bootstrap import interval, resample_counts
from sarcoma_risk.fusion.gap import gap_report
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.repeated_cv import fusion_penalizer_stability
from sarcoma_risk.fusion.selection import DEFAULT_PENALIZERS
from sarcoma_risk.fusion.table import (
    CLINICAL,
    DURATION,
    EVENT,
    PATHOLOGY,
    RADIOLOGY,
    RADIOLOGY_INPUTS,
    input_column,
    table_from_manifest,
)
from sarcoma_risk.survival.concordance import harrell_c_weighted

log = logging.getLogger(__name__)

RADIOMICS, COLOUR = "radiomics_baseline", "colour_baseline"
#: Report name -> (which fusion, its sub-model): "cnn" is the fitted fusion, "baseline" the one on baselines.
MODELS: dict[str, tuple[str, str]] = {
    "clinical": ("cnn", "clinical"),
    "radiology_cnn": ("cnn", "radiology"),
    "pathology_cnn": ("cnn", "pathology"),
    "clinical+radiology_cnn": ("cnn", "clinical+radiology"),
    "clinical+pathology_cnn": ("cnn", "clinical+pathology"),
    "combined": ("cnn", "clinical+radiology+pathology"),
    RADIOMICS: ("baseline", "radiology"),
    COLOUR: ("baseline", "pathology"),
    f"clinical+{RADIOMICS}": ("baseline", "clinical+radiology"),
    f"clinical+{COLOUR}": ("baseline", "clinical+pathology"),
    "clinical+baselines": ("baseline", "clinical+radiology+pathology"),
}
DIFFERENCES: dict[str, tuple[str, str]] = {
    "radiology_cnn_minus_radiomics_baseline": ("radiology_cnn", RADIOMICS),
    "pathology_cnn_minus_colour_baseline": ("pathology_cnn", COLOUR),
    "clinical+radiology_cnn_minus_clinical+radiomics_baseline": ("clinical+radiology_cnn", f"clinical+{RADIOMICS}"),
    "clinical+pathology_cnn_minus_clinical+colour_baseline": ("clinical+pathology_cnn", f"clinical+{COLOUR}"),
    "combined_minus_clinical+baselines": ("combined", "clinical+baselines"),
    "combined_minus_clinical": ("combined", "clinical"),
}
ORACLE = "oracle"


def _safe(compute: Callable[[], dict[str, float]], case_id: str, what: str, failures: dict[str, str]):
    try:
        return compute()
    except (SarcomaRiskError, OSError, RuntimeError, ValueError) as exc:  # one bad case is reported, not fatal
        failures[case_id] = f"{what}: {exc}"
        log.warning("%s: %s baseline features failed: %s", case_id, what, exc)
        return None


def case_features(manifest) -> tuple[Any, Any, dict[str, str]]:
    """First-order radiomics and colour features of every case of a manifest (DataFrames by case_id)."""
    radiomics, colour, failures = {}, {}, {}
    for case in manifest.cases:
        if case.has_mri:
            row = _safe(lambda: first_order_features(case.mri_t2fs, case.tumor_seg, case.mri_t1ce,
                                                     segment=case.tumor_segment), case.case_id, "radiomics", failures)
            if row is not None:
                radiomics[case.case_id] = row
        if case.has_slides:
            row = _safe(lambda: colour_features(case.slides, case.annotations), case.case_id, "colour", failures)
            if row is not None:
                colour[case.case_id] = row
    return (pd.DataFrame.from_dict(radiomics, orient="index"), pd.DataFrame.from_dict(colour, orient="index"),
            failures)


def baseline_scores(features, table, *, folds: int = 5, seed: int = 0,
                    penalizers: Sequence[float] = DEFAULT_PENALIZERS, selection_folds: int = 5) -> dict[str, float]:
    """Out-of-fold scores of the development cases and final-model scores of the others, by case id.

    ``table`` is the fusion table of the whole manifest (``split`` and outcome columns); only
    development cases with features train the model. ``folds``: the cross-fitting folds;
    ``penalizers`` and ``selection_folds``: each model's penalizer grid and its cross-validation folds.
    """
    have = [c for c in table.index if c in features.index]
    dev = [c for c in have if table.at[c, "split"] == "development"]
    other = [c for c in have if table.at[c, "split"] != "development"]
    if len(dev) < 10:
        raise InvalidInput(f"baseline: {len(dev)} development case(s) with features; need at least 10")
    x_dev = features.loc[dev]
    time, event = table.loc[dev, DURATION].to_numpy(float), table.loc[dev, EVENT].to_numpy(float).astype(bool)
    out = dict(zip(dev, crossfit_risk(x_dev, time, event, folds=folds, seed=seed, penalizers=penalizers,
                                      selection_folds=selection_folds)))
    if other:
        final = BaselineCox(penalizers, selection_folds, seed).fit(x_dev, time, event)
        out.update(zip(other, final.predict(features.loc[other])))
    return {k: float(v) for k, v in out.items()}


def compared_radiology_input(model) -> str:
    """The radiology input the CNNs are compared on: the first of the fusion's radiology inputs (largest
    sequence set first) that has a radiology-only sub-model."""
    name = next((n for n in RADIOLOGY_INPUTS if n in model.submodels_), None)
    if name is None:
        raise InvalidInput("honest comparison: the fusion model has no radiology-only sub-model to compare")
    return name


def with_radiology(submodel: str, radiology: str) -> str:
    """A sub-model name of :data:`MODELS` with the compared radiology input: ``clinical+radiology[t2fs]``."""
    return "+".join(radiology if part == RADIOLOGY else part for part in submodel.split("+"))


def honest_comparison(model, manifest, tables: Mapping[str, Any], truth: Mapping[str, Any] | None, *,
                      split: str = "validation", n_resamples: int = 1000, seed: int = 0, cv_repeats: int = 5,
                      cv_folds: int | None = None, cv_submodels: Sequence[str] = ("clinical+radiology+pathology",),
                      features=None, references: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """The whole comparison (module docstring) on ``split`` of ``manifest``; JSON-ready.

    Parameters
    ----------
    model : CoxFusion
        The fitted fusion (CNN scores), fit on the development split. The baselines' Cox models choose
        their penalizer from its ``penalizers`` by ``cv_folds``-fold cross-validation, as it does.
    manifest : Manifest
    tables : mapping
        The imaging score tables (``read_score_tables``) the fusion was fitted and is evaluated with.
    truth : mapping or None
        A phantom truth.json; without it there is no oracle and no gap share.
    n_resamples, seed : int
        Bootstrap resamples (shared by every model) and their seed; ``seed`` also seeds the baselines' folds.
    cv_repeats, cv_folds, cv_submodels :
        Repeated cross-validation of these fusion sub-models' penalizer: ``cv_repeats`` x
        ``cv_folds``-fold (default: the fusion's own folds), seeds from the fusion's seed on.
    features : (radiomics, colour) DataFrames, optional
        Precomputed :func:`case_features` (else computed here).
    references : mapping of str to (mapping of case id to float), optional
        More risk scores (higher = riskier) known from the truth rather than fitted, by case id, scored
        beside the models on the same cases and resamples: each gets its C-index and, with a truth, its
        share of the gap (e.g. ``{"image_ceiling": ...}``, :func:`sarcoma_risk.synthetic.ceiling.image_ceiling`).
    """
    failures: dict[str, str] = {}
    if features is None:
        radiomics, colour, failures = case_features(manifest)
    else:
        radiomics, colour = features
    table = table_from_manifest(manifest, tables)
    radiology = compared_radiology_input(model)
    baseline_table = table.copy()
    for name in RADIOLOGY_INPUTS:  # the radiomics score stands in the place of the compared CNN score only
        baseline_table[input_column(name)] = np.nan
    # The baselines choose their penalizer as the fusion does (its grid, its folds): the same footing.
    selection = {"seed": seed, "penalizers": model.penalizers, "selection_folds": int(model.cv_folds)}
    scores = {radiology: baseline_scores(radiomics, table, **selection),
              PATHOLOGY: baseline_scores(colour, table, **selection)}
    for name, values in scores.items():
        baseline_table[input_column(name)] = [values.get(c, np.nan) for c in table.index]
    development = table[table["split"] == "development"]
    baseline_fusion = CoxFusion(**model.get_params()).fit(baseline_table.loc[development.index])

    evaluated = table[table["split"] == split]
    fusions = {"cnn": (model, evaluated), "baseline": (baseline_fusion, baseline_table.loc[evaluated.index])}
    complete = np.ones(len(evaluated), dtype=bool)
    for fusion, frame in fusions.values():
        complete &= np.array([set(m) >= {CLINICAL, radiology, PATHOLOGY} for m in fusion.available_inputs(frame)])
    lp = {c["case_id"]: c["lp"] for c in (truth or {}).get("cases", []) if "case_id" in c and "lp" in c}
    if truth is not None:
        complete &= np.array([c in lp for c in evaluated.index])
    cases = evaluated.index[complete]
    if len(cases) < 10:
        raise InvalidInput(f"honest comparison: {len(cases)} {split} case(s) have every score; need at least 10")
    submodels = {name: (which, with_radiology(sub, radiology)) for name, (which, sub) in MODELS.items()}
    risks = {name: fusions[which][0].predict(fusions[which][1].loc[cases], submodel=sub)["risk"].to_numpy(float)
             for name, (which, sub) in submodels.items() if sub in fusions[which][0].submodels_}
    for name, by_case in (references or {}).items():
        if name in risks or name == ORACLE:
            raise InvalidInput(f"honest comparison: reference score {name!r} has the name of a compared model; "
                               "give it another name")
        missing = [c for c in cases if c not in by_case]
        if missing:
            raise InvalidInput(f"honest comparison: reference score {name!r} lacks {len(missing)} evaluated case(s), "
                               f"e.g. {', '.join(map(str, missing[:3]))}; give a value for every {split} case")
        risks[name] = np.array([by_case[c] for c in cases], dtype=float)
    time = evaluated.loc[cases, DURATION].to_numpy(float)
    event = evaluated.loc[cases, EVENT].to_numpy(float).astype(bool)
    result: dict[str, Any] = {"split": split, "radiology_input": radiology, "cases": "evaluated cases with clinical data, both CNN scores and both "
                              "baseline scores" + (" and a true linear predictor" if truth is not None else "")}
    if truth is not None:
        risks[ORACLE] = np.array([lp[c] for c in cases], dtype=float)
        differences = {k: v for k, v in DIFFERENCES.items() if all(s in risks for s in v)}
        result["comparison"] = gap_report(time, event, risks, clinical="clinical", oracle=ORACLE,
                                          differences=differences, n_resamples=n_resamples, seed=seed)
    else:
        counts = resample_counts(len(cases), n_resamples, seed)
        boot = {n: harrell_c_weighted(time, event, r, counts) for n, r in risks.items()}
        point = {n: float(harrell_c_weighted(time, event, r)[0]) for n, r in risks.items()}
        result["comparison"] = {
            "c_index": {n: interval(point[n], boot[n]) for n in risks},
            "differences": {k: interval(point[a] - point[b], boot[a] - boot[b])
                            for k, (a, b) in DIFFERENCES.items() if a in risks and b in risks},
            "n": int(len(cases)), "events": int(event.sum()), "n_resamples": n_resamples, "seed": seed}
    folds = int(model.cv_folds) if cv_folds is None else cv_folds
    # Keyed as asked ("clinical+radiology+pathology"); computed on the compared radiology input's sub-model.
    result["penalizer_cv"] = {name: fusion_penalizer_stability(model, development, sub, repeats=cv_repeats,
                                                               folds=folds, seed=int(model.seed))
                              for name, sub in ((n, with_radiology(n, radiology)) for n in cv_submodels)
                              if sub in model.submodels_}
    result["baselines"] = {
        "radiomics": {"features": list(radiomics.columns), "cases": int(len(radiomics)),
                      "method": "SimpleITK LabelIntensityStatisticsImageFilter inside the tumor mask "
                                "(pyradiomics: no wheel for this environment)"},
        "colour": {"features": list(colour.columns), "cases": int(len(colour)),
                   "method": "optical density and Ruifrok-Johnston H&E deconvolution over tumor tissue at 2 um/px"},
        "penalizers": {sub: s.cox.penalizer for sub, s in baseline_fusion.submodels_.items()},
        "penalizer_grid": list(selection["penalizers"]), "selection_folds": selection["selection_folds"],
        "failures": failures,
    }
    return result


def feature_table(radiomics, colour):
    """One DataFrame of both feature sets (for a CSV beside the report)."""
    return pd.concat([radiomics.add_prefix("mri_"), colour.add_prefix("slide_")], axis=1).sort_index()
