"""ClinicalEncoder: reference levels, rare-level pooling, standardization, and the JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarcoma_risk.clinical.encoder import ENCODER_FORMAT, ClinicalEncoder
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput, InvalidModel

FEATURES = ("age_years", "tumor_size_cm", "depth", "fnclcc_grade", "margin")


def development_records() -> list[dict]:
    """20 charts: margin R0 x10, R1 x8, R2 x2 (rare); depth deep x14, superficial x6; grade 1/2/3."""
    rng = np.random.default_rng(7)
    records = []
    for i in range(20):
        records.append({
            "age_years": float(40 + i * 2),
            "tumor_size_cm": float(rng.uniform(2, 20)),
            "depth": "superficial" if i < 6 else "deep",
            "fnclcc_grade": [1, 2, 3][i % 3],
            "margin": "R0" if i < 10 else ("R1" if i < 18 else "R2"),
        })
    return records


@pytest.fixture
def fitted() -> ClinicalEncoder:
    return ClinicalEncoder(FEATURES, min_level_count=5).fit(development_records())


def test_categorical_variables_are_coded_against_the_conventional_reference(fitted):
    assert fitted.reference_ == {"depth": "superficial", "fnclcc_grade": "1", "margin": "R0"}
    assert fitted.columns_ == ["age_years", "tumor_size_cm", "depth[deep]", "fnclcc_grade[2]", "fnclcc_grade[3]",
                               "margin[R1]"]


def test_a_level_rarer_than_min_level_count_is_pooled_with_the_reference(fitted):
    design = fitted.transform(development_records())
    assert "margin[R2]" not in design.columns
    r2_rows = design.iloc[18:20]
    assert (r2_rows["margin[R1]"] == 0).all()  # coded like R0, the reference


def test_the_reference_falls_back_to_the_most_frequent_level_when_the_conventional_one_is_rare():
    records = development_records()
    for rec in records:
        rec["depth"] = "deep"
    records[0]["depth"] = "superficial"
    enc = ClinicalEncoder(FEATURES, min_level_count=5).fit(records)
    assert enc.reference_["depth"] == "deep"
    assert not any(c.startswith("depth[") for c in enc.columns_)


def test_numeric_variables_are_standardized_on_the_development_data(fitted):
    design = fitted.transform(development_records())
    assert design["age_years"].mean() == pytest.approx(0, abs=1e-12)
    assert design["age_years"].std(ddof=1) == pytest.approx(1)
    mean, sd = fitted.numeric_["age_years"]
    assert mean == pytest.approx(59.0)
    later = fitted.transform([{**development_records()[0], "age_years": mean + 2 * sd}])
    assert later["age_years"].iloc[0] == pytest.approx(2.0)


def test_a_level_first_seen_after_fitting_is_coded_as_the_reference(fitted):
    row = fitted.transform([{**development_records()[0], "margin": "R2", "fnclcc_grade": 2.0}])
    assert row[["margin[R1]"]].to_numpy().tolist() == [[0.0]]
    assert row["fnclcc_grade[2]"].iloc[0] == 1.0  # a grade read back as 2.0 is still level "2"


def test_the_encoder_survives_a_json_round_trip_with_identical_output(fitted):
    data = json.loads(json.dumps(fitted.to_dict()))
    assert data["format"] == ENCODER_FORMAT
    again = ClinicalEncoder.from_dict(data)
    records = development_records()
    assert again.columns_ == fitted.columns_
    np.testing.assert_array_equal(again.transform(records).to_numpy(), fitted.transform(records).to_numpy())


def test_a_missing_value_is_refused_when_fitting_and_transforming(fitted):
    records = development_records()
    records[3] = {k: v for k, v in records[3].items() if k != "margin"}
    with pytest.raises(InvalidClinicalData, match="record 3: margin is missing"):
        ClinicalEncoder(FEATURES).fit(records)
    with pytest.raises(InvalidClinicalData, match="record 3: margin is missing"):
        fitted.transform(records)


def test_an_unfitted_encoder_says_so():
    with pytest.raises(InvalidModel, match="not fitted"):
        ClinicalEncoder().transform(development_records())
    with pytest.raises(InvalidModel, match="not fitted"):
        ClinicalEncoder().to_dict()


@pytest.mark.parametrize("params, match", [
    ({"features": ["age_years", "bmi"]}, "unknown clinical variable.*bmi"),
    ({"features": ["age_years", "age_years"]}, "without repeats"),
    ({"features": FEATURES, "min_level_count": 0}, "min_level_count"),
])
def test_bad_parameters_are_refused_when_fitting(params, match):
    with pytest.raises(InvalidInput, match=match):
        ClinicalEncoder(**params).fit(development_records())


def _broken(fitted: ClinicalEncoder, change) -> dict:
    data = json.loads(json.dumps(fitted.to_dict()))
    change(data)
    return data


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(format="something-else/1"), "expected an object with format"),
    (lambda d: d.pop("levels"), "malformed"),
    (lambda d: d["numeric"].update(age_years=[50.0, 0.0]), "standard deviation > 0"),
    (lambda d: d["numeric"].update(age_years=[50.0]), "malformed"),
    (lambda d: d["numeric"].update(margin=[0.0, 1.0]), "categorical feature 'margin'"),
    (lambda d: d["levels"]["margin"].append("R0"), "reference level among its columns"),
    (lambda d: d["reference"].pop("depth"), "categorical feature 'depth' needs levels and a reference"),
    (lambda d: d["numeric"].pop("tumor_size_cm"), "numeric feature 'tumor_size_cm'"),
    (lambda d: d["levels"].update(site=["trunk"]), "not among its features"),
    (lambda d: d.update(features=["age_years", "bmi"]), "unknown clinical variable"),
    (lambda d: d.update(min_level_count="five"), "min_level_count"),
])
def test_an_inconsistent_saved_encoder_is_refused_as_invalid_model(fitted, change, match):
    with pytest.raises(InvalidModel, match=match):
        ClinicalEncoder.from_dict(_broken(fitted, change))


def test_something_that_is_not_an_object_is_refused_as_invalid_model():
    with pytest.raises(InvalidModel):
        ClinicalEncoder.from_dict(["not", "a", "dict"])
