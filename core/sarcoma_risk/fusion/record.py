"""The fusion section of one case record, computed from whatever modalities the record holds.

The case is scored by the sub-model of its modalities (clinical values complete for the model's
features, a radiology score, a pathology score). A radiology score counts as the score of the
sequence set its model read (the section's ``sequences``): only sub-models fitted on that set's
scores use it. The section says which sub-model scored it, which modalities it used (and which
radiology model, ``radiology_sequences``) and why others were left out, and its provenance
fingerprints the record sections it read by content (sha256 and revision), never by file name.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.model import CoxFusion, survival_key
from sarcoma_risk.fusion.table import (
    CLINICAL,
    PATHOLOGY,
    RADIOLOGY,
    input_column,
    input_sequences,
    is_missing,
    modality_of,
    record_radiology_input,
    row_from_record,
    submodel_name,
)
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
    for name in (record_radiology_input(record.radiology), PATHOLOGY):
        modality = modality_of(name)
        if modality not in model.modalities:
            continue
        section = getattr(record, modality)
        if section is None:
            why[modality] = f"no {modality} section"
        elif is_missing(row.get(input_column(name))):
            why[modality] = f"the {modality} section has no score"
        elif not any(name in sub.modalities for sub in model.submodels_.values()):
            # e.g. a T1CE-only score for a model fitted on the scores of the model that read both sequences
            fitted = sorted({i for sub in model.submodels_.values() for i in sub.modalities if modality_of(i) == modality})
            why[modality] = (f"its score is a {name} score and the fusion model has no sub-model for it (it was "
                             f"fitted on: {', '.join(fitted) or 'none'})")
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
    inputs = model.submodels_[submodel].modalities
    used = [modality_of(m) for m in inputs]
    available = model.available_inputs(frame)[0]
    notes = [f"{m} not used: {missing[m]}" for m in model.modalities if m in missing]
    usable = [m for m in available if modality_of(m) not in missing]  # the others are explained above
    if set(inputs) != set(usable):
        notes.append(f"the {submodel_name(usable)} sub-model was not fitted (too few development cases); "
                     f"scored by the {submodel} sub-model")
    radiology_sequences = next((input_sequences(m) for m in inputs if modality_of(m) == RADIOLOGY), None)
    survival = {}
    for h in model.horizons:
        value = float(prediction[survival_key(h)])
        survival[f"{h:g}"] = value if math.isfinite(value) else None
        if not math.isfinite(value):
            notes.append(f"survival at {h:g} months is not estimable (beyond the development follow-up)")
    sections = {m: {"sha256": content_sha256(getattr(record, m)), "revision": record.revision(m)} for m in used}
    sub = model.submodels_[submodel]
    provenance = Provenance(
        model_name=MODEL_NAME, model_version=model_version, weights_sha256=weights_sha256, inputs=sections,
        parameters={"submodel": submodel, "horizons_months": [float(h) for h in model.horizons],
                    "cutoff": sub.cutoff.value, "cutoff_method": sub.cutoff.method})
    return {
        "risk": float(prediction["risk"]),
        "group": str(prediction["group"]),
        "model": submodel,
        "modalities_used": list(used),
        "radiology_sequences": radiology_sequences,
        "survival": survival,
        "percentile": float(prediction["percentile"]),
        "notes": notes,
        "provenance": provenance.to_dict(),
    }
