"""Checking a saved CoxFusion model (JSON) field by field before it predicts anything.

A model file edited by hand, truncated or produced by another version must fail loudly with the
field that is wrong, never predict nonsense. Every message starts with the JSON path of the field.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.clinical.encoder import ClinicalEncoder
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.fusion.cox import CoxParameters
from sarcoma_risk.fusion.groups import Cutoff
from sarcoma_risk.fusion.selection import PenalizerCV
from sarcoma_risk.fusion.submodel import DevelopmentFit, SubModel
from sarcoma_risk.fusion.table import CLINICAL, IMAGING_INPUTS, RADIOLOGY, input_column, modality_of, submodel_name

# What a saved model must hold is defined here, beside its checks; the model imports it from here.
#: Format tag of a saved CoxFusion (``to_dict`` writes it; a file with another tag is refused).
FUSION_FORMAT = "sarcoma-risk-cox-fusion/1"
#: Percentiles of the development risk kept to place a new case (0, 1, ..., 100), one value each.
PERCENTILES = np.arange(101)


def _require(data: Mapping[str, Any], key: str, kind: type | tuple, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise InvalidModel(f"{where}.{key}: missing")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidModel(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidModel(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def check_fusion_dict(cls, data: Mapping[str, Any]):
    """Build a fitted ``cls`` (CoxFusion) from its dict, checking everything."""
    if not isinstance(data, Mapping):
        raise InvalidModel(f"fusion model: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FUSION_FORMAT:
        raise InvalidModel(f"fusion model: format {data.get('format')!r}; expected {FUSION_FORMAT!r}")
    params = _require(data, "params", Mapping, "fusion")
    try:
        model = cls(**{k: params[k] for k in (
            "clinical_features", "penalizers", "cv_folds", "cv_metric", "cutoff", "min_group_share", "horizons",
            "min_events", "min_level_count", "modalities", "seed")})
        model._check_params()
    except KeyError as exc:
        raise InvalidModel(f"fusion.params.{exc.args[0]}: missing") from None
    except (InvalidInput, TypeError, ValueError) as exc:
        raise InvalidModel(f"fusion.params: {exc}") from None

    encoder_data = data.get("encoder")
    model.encoder_ = None
    if encoder_data is not None:
        try:
            model.encoder_ = ClinicalEncoder.from_dict(encoder_data)
        except InvalidModel as exc:
            raise InvalidModel(f"fusion.encoder: {exc}") from None
        for feature, (mean, _sd) in model.encoder_.numeric_.items():
            _finite(mean, f"fusion.encoder.numeric.{feature}[0]")
        if tuple(model.encoder_.features) != tuple(model.clinical_features):
            raise InvalidModel(f"fusion.encoder.features {list(model.encoder_.features)} differ from "
                               f"fusion.params.clinical_features {list(model.clinical_features)}")
    model.score_scaling_ = {}
    for name, scaling in _require(data, "score_scaling", Mapping, "fusion").items():
        where = f"fusion.score_scaling.{name}"
        if name not in IMAGING_INPUTS:
            raise InvalidModel(f"{where}: unknown imaging input (expected one of {', '.join(IMAGING_INPUTS)})")
        mean = _finite(_require(scaling, "mean", (int, float), where), f"{where}.mean")
        sd = _finite(_require(scaling, "sd", (int, float), where), f"{where}.sd")
        if sd <= 0:
            raise InvalidModel(f"{where}.sd: must be > 0, got {sd}")
        model.score_scaling_[name] = (mean, sd)

    model.ranges_ = {}
    for name, bounds in _require(data, "ranges", Mapping, "fusion").items():
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise InvalidModel(f"fusion.ranges.{name}: expected [low, high]")
        low, high = (_finite(b, f"fusion.ranges.{name}") for b in bounds)
        if low > high:
            raise InvalidModel(f"fusion.ranges.{name}: low {low} > high {high}")
        model.ranges_[name] = (low, high)
    submodels = _require(data, "submodels", Mapping, "fusion")
    if not submodels:
        raise InvalidModel("fusion.submodels: empty; a fitted model has at least one sub-model")
    model.submodels_ = {name: _check_submodel(model, name, sub, PERCENTILES) for name, sub in submodels.items()}
    model.skipped_ = dict(data.get("skipped") or {})
    development = _require(data, "development", Mapping, "fusion")
    model.n_development_ = int(_finite(development.get("n"), "fusion.development.n"))
    model.events_development_ = int(_finite(development.get("events"), "fusion.development.events"))
    available = development.get("available", {})
    if not isinstance(available, Mapping):
        raise InvalidModel("fusion.development.available: expected an object of counts per modality")
    model.available_development_ = {m: int(_finite(v, f"fusion.development.available.{m}")) for m, v in available.items()}
    return model


def _check_submodel(model, name: str, sub: Any, percentiles: np.ndarray) -> SubModel:
    where = f"fusion.submodels.{name}"
    if not isinstance(sub, Mapping):
        raise InvalidModel(f"{where}: expected an object")
    modalities = _require(sub, "modalities", list, where)
    bases = [modality_of(m) if isinstance(m, str) else m for m in modalities]
    if not modalities or any(m != CLINICAL and m not in IMAGING_INPUTS for m in modalities) \
            or any(b not in model.modalities for b in bases) or len(set(bases)) != len(bases):
        raise InvalidModel(f"{where}.modalities: {modalities}; expected inputs of distinct modalities of "
                           f"{list(model.modalities)} (radiology as {RADIOLOGY} or {RADIOLOGY}[<sequence set>])")
    if submodel_name(modalities) != name:
        raise InvalidModel(f"{where}: the name does not match its modalities {modalities} "
                           f"(expected {submodel_name(modalities)!r})")
    cox = CoxParameters.from_dict(_require(sub, "cox", Mapping, where), f"{where}.cox")
    allowed: set[str] = set()
    if CLINICAL in modalities:
        if model.encoder_ is None:
            raise InvalidModel(f"{where}: uses clinical data but fusion.encoder is null")
        allowed.update(model.encoder_.columns_)
    for modality in modalities:
        if modality != CLINICAL:
            if modality not in model.score_scaling_:
                raise InvalidModel(f"{where}: uses {modality} but fusion.score_scaling has no {modality!r}")
            allowed.add(input_column(modality))
    unknown = [c for c in cox.columns if c not in allowed]
    if unknown:
        raise InvalidModel(f"{where}.cox.columns: {unknown} are not produced by its modalities "
                           f"(possible: {sorted(allowed)})")
    dropped = sub.get("dropped_columns", [])
    if not isinstance(dropped, list) or not all(isinstance(c, str) for c in dropped):
        raise InvalidModel(f"{where}.dropped_columns: expected a list of column names")
    cross_validation = PenalizerCV.from_dict(_require(sub, "cross_validation", Mapping, where),
                                             f"{where}.cross_validation")
    cutoff = Cutoff.from_dict(_require(sub, "cutoff", Mapping, where), f"{where}.cutoff")
    development = _require(sub, "development", Mapping, where)
    try:
        pct = np.asarray(development.get("risk_percentiles", []), dtype=float)
    except (TypeError, ValueError):
        pct = np.empty(0)
    if pct.shape != percentiles.shape or not np.isfinite(pct).all() or (np.diff(pct) < 0).any():
        raise InvalidModel(f"{where}.development.risk_percentiles: expected {percentiles.size} non-decreasing "
                           "finite numbers")
    for key in ("n", "events", "apparent_harrell_c"):
        _finite(development.get(key), f"{where}.development.{key}")
    fit = DevelopmentFit(development["n"], development["events"], development["apparent_harrell_c"],
                         tuple(development["risk_percentiles"]))
    return SubModel(tuple(modalities), cox, tuple(dropped), cross_validation, cutoff, fit)
