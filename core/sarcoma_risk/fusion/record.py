"""The fusion section of one case record, computed from whatever modalities the record holds.

The case is scored by the sub-model of its modalities (clinical values complete for the model's
features, a radiology score, a pathology score). The section says which sub-model scored it, which
modalities it used and why others were left out, and its provenance fingerprints the record
sections it read by content (sha256 and revision), never by file name.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.model import CoxFusion, survival_key
from sarcoma_risk.fusion.table import CLINICAL, MODALITY_ORDER, is_missing, row_from_record
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records.schema import CaseRecord, content_sha256

MODEL_NAME = "fusion"


def _missing_modalities(model: CoxFusion, record: CaseRecord, row: Mapping[str, Any]) -> dict[str, str]:
    """Why each modality the model knows is unavailable for this record."""
    why: dict[str, str] = {}
    if CLINICAL in model.modalities:
        if record.clinical is None:
            why[CLINICAL] = "no clinical section"
        else:
            absent = [f for f in model.clinical_features if is_missing(row.get(f))]
            if absent:
                why[CLINICAL] = f"clinical data incomplete (missing: {', '.join(absent)})"
    for modality in MODALITY_ORDER:
        if modality == CLINICAL or modality not in model.modalities:
            continue
        section = getattr(record, modality)
        if section is None:
            why[modality] = f"no {modality} section"
        elif is_missing(row.get(f"{modality}_score")):
            why[modality] = f"the {modality} section has no score"
    return why


def fusion_section(model: CoxFusion, record: CaseRecord, *, model_version: str,
                   weights_sha256: str | None) -> dict[str, Any]:
    """The ``fusion`` section for ``record`` (not written; see ``sarcoma-risk fuse``).

    Raises :class:`InvalidInput` when the record has no modality the model can use.
    """

    row = row_from_record(record)
    missing = _missing_modalities(model, record, row)
    if all(m in missing for m in model.modalities):
        raise InvalidInput(
            f"case {record.case_id}: nothing to score: " + "; ".join(missing[m] for m in model.modalities)
            + ". Add clinical data (sarcoma-risk clinical set/import) or run the radiology/pathology scoring first")
    frame = pd.DataFrame([row], index=[record.case_id])
    prediction = model.predict(frame).iloc[0]
    submodel = prediction["submodel"]
    used = model.submodels_[submodel].modalities
    available = [m for m in model.modalities if m not in missing]
    notes = [f"{m} not used: {missing[m]}" for m in model.modalities if m in missing]
    if set(used) != set(available):
        notes.append(f"the {'+'.join(available)} sub-model was not fitted (too few development cases); "
                     f"scored by the {submodel} sub-model")
    survival = {}
    for h in model.horizons:
        value = float(prediction[survival_key(h)])
        survival[f"{h:g}"] = value if math.isfinite(value) else None
        if not math.isfinite(value):
            notes.append(f"survival at {h:g} months is not estimable (beyond the development follow-up)")
    inputs = {m: {"sha256": content_sha256(getattr(record, m)), "revision": record.revision(m)} for m in used}
    sub = model.submodels_[submodel]
    provenance = Provenance(
        model_name=MODEL_NAME, model_version=model_version, weights_sha256=weights_sha256, inputs=inputs,
        parameters={"submodel": submodel, "horizons_months": [float(h) for h in model.horizons],
                    "cutoff": sub.cutoff.value, "cutoff_method": sub.cutoff.method})
    return {
        "risk": float(prediction["risk"]),
        "group": str(prediction["group"]),
        "model": submodel,
        "modalities_used": list(used),
        "survival": survival,
        "percentile": float(prediction["percentile"]),
        "notes": notes,
        "provenance": provenance.to_dict(),
    }
