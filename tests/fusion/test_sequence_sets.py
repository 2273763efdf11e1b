"""Fusion with one radiology input per MRI sequence set: sub-models per set, a score used only by its own set's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarcoma_risk.clinical.variables import VARIABLES, check_clinical
from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.fusion.evaluation import evaluate
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.record import fusion_section
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records.schema import CaseRecord

from .fusion_synthetic import FAST, make_table

BOTH, T2 = "radiology_score[t2fs+t1ce]", "radiology_score[t2fs]"


def with_sequence_sets(table, seed: int, *, t2: bool = True):
    """The table's radiology score as the T2FS + T1CE model's, and a noisier T2FS-only model's score."""
    rng = np.random.default_rng(seed)
    out = table.copy()
    out[BOTH] = out["radiology_score"]
    out[T2] = out["radiology_score"] + 1.0 * rng.standard_normal(len(out)) if t2 else np.nan
    out["radiology_score"] = np.nan
    return out


@pytest.fixture(scope="module")
def tables():
    development, _ = make_table(240, seed=1, missing_pathology=0.1)
    validation, _ = make_table(200, seed=2, split="validation")
    return with_sequence_sets(development, 11), with_sequence_sets(validation, 12)


@pytest.fixture(scope="module")
def fitted(tables):
    return CoxFusion(**FAST).fit(tables[0])


def record(row, sequences):
    provenance = Provenance("test", "0", None).to_dict()
    values = check_clinical({name: row[name] for name in VARIABLES if row[name] is not None})
    column = BOTH if sequences == ["t2fs", "t1ce"] else T2
    return CaseRecord("SET-1", clinical={"values": values, "provenance": provenance},
                      radiology={"score": float(row[column]), "sequences": sequences, "provenance": provenance},
                      pathology={"score": float(row["pathology_score"]), "slides": [], "provenance": provenance})


def test_every_subset_with_radiology_is_fitted_once_per_sequence_set(fitted):
    names = set(fitted.submodels_)
    for radiology in ("radiology[t2fs+t1ce]", "radiology[t2fs]"):
        assert {radiology, f"clinical+{radiology}", f"{radiology}+pathology",
                f"clinical+{radiology}+pathology"} <= names
    assert not any(n in names for n in ("radiology", "clinical+radiology+pathology"))
    assert set(fitted.score_scaling_) == {"radiology[t2fs+t1ce]", "radiology[t2fs]", "pathology"}


def test_the_noisier_t2fs_only_score_gets_its_own_smaller_weight(fitted):
    both = fitted.submodels_["clinical+radiology[t2fs+t1ce]+pathology"].cox
    t2 = fitted.submodels_["clinical+radiology[t2fs]+pathology"].cox
    beta_both = dict(zip(both.columns, both.beta))[BOTH]
    beta_t2 = dict(zip(t2.columns, t2.beta))[T2]
    assert 0 < beta_t2 < 0.8 * beta_both


def test_a_case_with_every_sequence_set_is_scored_by_the_both_sequences_submodel(fitted, tables):
    prediction = fitted.predict(tables[1])
    assert set(prediction["submodel"]) == {"clinical+radiology[t2fs+t1ce]+pathology"}
    assert set(prediction["modalities_available"]) == {"clinical+radiology+pathology"}


def test_a_t2fs_only_record_is_scored_by_the_t2fs_submodel_and_the_section_says_so(fitted, tables):
    row = tables[1].iloc[0]
    section = fusion_section(fitted, record(row, ["t2fs"]), model_version="test", weights_sha256=None)
    assert section["model"] == "clinical+radiology[t2fs]+pathology"
    assert section["modalities_used"] == ["clinical", "radiology", "pathology"]
    assert section["radiology_sequences"] == "t2fs" and section["notes"] == []
    expected = fitted.predict(tables[1].iloc[[0]].assign(**{BOTH: np.nan}))["risk"].iloc[0]
    assert section["risk"] == pytest.approx(expected)
    both = fusion_section(fitted, record(row, ["t2fs", "t1ce"]), model_version="test", weights_sha256=None)
    assert both["model"] == "clinical+radiology[t2fs+t1ce]+pathology" and both["radiology_sequences"] == "t2fs+t1ce"


def test_a_t2fs_only_score_is_never_used_by_a_submodel_of_both_sequences(tables):
    only_both = CoxFusion(**FAST).fit(with_sequence_sets(make_table(240, seed=1, missing_pathology=0.1)[0], 11,
                                                         t2=False))
    section = fusion_section(only_both, record(tables[1].iloc[0].fillna({T2: 0.4}), ["t2fs"]), model_version="test",
                             weights_sha256=None)
    assert section["model"] == "clinical+pathology" and section["radiology_sequences"] is None
    assert section["notes"] == ["radiology not used: its score is a radiology[t2fs] score and the fusion model has no "
                                "sub-model for it (it was fitted on: radiology[t2fs+t1ce])"]


def test_the_model_with_sequence_sets_round_trips_through_json(fitted, tables):
    again = CoxFusion.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.predict(tables[1])["risk"], fitted.predict(tables[1])["risk"])
    data = fitted.to_dict()
    data["score_scaling"]["radiology[t2]"] = data["score_scaling"].pop("radiology[t2fs]")
    with pytest.raises(InvalidModel, match=r"fusion.score_scaling.radiology\[t2\]: unknown imaging input"):
        CoxFusion.from_dict(data)


def test_the_evaluation_compares_the_both_sequences_models_and_reports_each_set(fitted, tables):
    result = evaluate(fitted, tables[1], split="validation", n_resamples=30, seed=0)
    assert result.combined == "clinical+radiology[t2fs+t1ce]+pathology"
    assert list(result.comparison.metrics["models"]) == ["clinical", "radiology[t2fs+t1ce]", "pathology",
                                                         result.combined]
    sets = result.sequence_sets["metrics"]["models"]
    assert list(sets) == ["radiology[t2fs+t1ce]", "clinical+radiology[t2fs+t1ce]+pathology", "radiology[t2fs]",
                          "clinical+radiology[t2fs]+pathology"]
    assert sets["radiology[t2fs+t1ce]"]["harrell_c"]["estimate"] > sets["radiology[t2fs]"]["harrell_c"]["estimate"]
    slope = result.comparison.metrics["models"][result.combined]["calibration_slope"]
    assert slope["low"] < slope["estimate"] < slope["high"] and slope["n_resamples"] == 30
