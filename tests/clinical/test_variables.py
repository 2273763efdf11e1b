"""Clinical variables: parsing with clear messages, and checking a chart (with its grade and stage)."""

from __future__ import annotations

import pytest

from sarcoma_risk.clinical.staging import ajcc_stage
from sarcoma_risk.clinical.variables import VARIABLES, check_clinical, validate_clinical
from sarcoma_risk.errors import InvalidClinicalData


def record(**changes) -> dict:
    """A complete chart as a coordinator might type it (aliases, mixed case)."""
    base = {"age_years": "63", "sex": "M", "tumor_size_cm": "11.5", "depth": "Deep", "site": "thigh",
            "subtype": "UPS", "differentiation": "3", "mitotic_count": "24", "necrosis": ">=50%",
            "margin": "R1", "radiotherapy": "pre-op", "chemotherapy": "no", "presentation": "primary"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# ---- validating one chart ------------------------------------------------------------------------


def test_a_chart_with_usual_spellings_is_cleaned_to_canonical_values():
    clean = check_clinical(record())
    assert clean["sex"] == "male" and clean["depth"] == "deep" and clean["site"] == "lower_extremity"
    assert clean["subtype"] == "undifferentiated_pleomorphic_sarcoma"
    assert clean["necrosis"] == "ge50" and clean["radiotherapy"] == "preoperative"
    assert clean["age_years"] == 63.0 and clean["mitotic_count"] == 24
    assert clean["fnclcc_grade"] == 3  # 3 + 3 + 2 = 8
    assert clean["ajcc_t"] == "T3" and clean["ajcc_stage"] == "IIIB"


@pytest.mark.parametrize("site", ["retroperitoneum", "head_neck"])
def test_ajcc_stage_is_not_given_for_sites_with_other_tables(site):
    assert ajcc_stage(12.0, 3, site=site) is None
    clean = check_clinical(record(site=site))
    assert "ajcc_stage" not in clean and "ajcc_t" not in clean


def test_a_given_grade_is_enough_without_its_components():
    clean = check_clinical(record(differentiation=None, mitotic_count=None, necrosis=None, fnclcc_grade="2"))
    assert clean["fnclcc_grade"] == 2


def test_a_given_grade_that_contradicts_its_components_is_refused():
    _, problems = validate_clinical(record(fnclcc_grade="1"))
    assert [p.column for p in problems] == ["fnclcc_grade"]
    assert "3, the grade its components give" in problems[0].expected


def test_a_grade_neither_given_nor_computable_is_reported_once():
    _, problems = validate_clinical(record(necrosis=None))
    assert [p.column for p in problems] == ["fnclcc_grade"]
    assert "or all of differentiation, mitotic_count and necrosis" in problems[0].expected


def test_a_refused_grade_component_does_not_also_report_the_grade_missing():
    _, problems = validate_clinical(record(mitotic_count="many"))
    assert [p.column for p in problems] == ["mitotic_count"]


@pytest.mark.parametrize("column, value, expected", [
    ("age_years", "130", "a number from 0 to 110 years"),
    ("age_years", "-1", "a number from 0 to 110 years"),
    ("tumor_size_cm", "0", "a number from 0.1 to 60 cm"),
    ("tumor_size_cm", "115", "(was it given in mm?)"),
    ("tumor_size_cm", "11,5", "use a decimal point, not a comma"),
    ("tumor_size_cm", "nan", "a number from 0.1 to 60 cm"),
    ("tumor_size_cm", "11.5 cm", "a number from 0.1 to 60 cm"),
    ("mitotic_count", "2.5", "an integer from 0 to 500"),
    ("differentiation", "4", "an integer from 1 to 3"),
])
def test_numbers_out_of_range_or_malformed_name_the_range_and_unit(column, value, expected):
    _, problems = validate_clinical(record(**{column: value}))
    assert problems and problems[0].column == column and problems[0].value == value
    assert expected in problems[0].expected


@pytest.mark.parametrize("column, value, suggestion", [
    ("site", "lower extremety", "lower_extremity"),
    ("subtype", "leiomyosarcom", "leiomyosarcoma"),
    ("margin", "R3", None),
    ("depth", "dep", "deep"),
    ("sex", "femal", "female"),
])
def test_unknown_categories_list_the_valid_ones_and_suggest_the_nearest(column, value, suggestion):
    _, problems = validate_clinical(record(**{column: value}))
    assert [p.column for p in problems] == [column]
    message = problems[0].expected
    assert message.startswith("one of ")
    for category in VARIABLES[column].categories:
        assert category in message
    if suggestion:
        assert f"(did you mean {suggestion!r}?)" in message
    else:
        assert "did you mean" not in message


def test_every_problem_of_a_chart_is_reported_at_once():
    _, problems = validate_clinical(record(age_years="abc", margin="R9", depth=None, sex="x"), row=4, case_id="STS-1")
    assert sorted(p.column for p in problems) == ["age_years", "depth", "margin", "sex"]
    assert all(p.row == 4 and p.case_id == "STS-1" for p in problems)
    assert "(required)" in next(p for p in problems if p.column == "depth").expected
    assert str(problems[0]).startswith("row 4 (case STS-1), column ")


def test_empty_cells_and_nan_count_as_missing_not_as_zero():
    clean, problems = validate_clinical(record(differentiation="", mitotic_count=float("nan"), necrosis=" ",
                                               fnclcc_grade="2"))
    assert not problems
    assert "differentiation" not in clean and "mitotic_count" not in clean


def test_booleans_are_not_taken_for_numbers():
    _, problems = validate_clinical(record(age_years=True))
    assert [p.column for p in problems] == ["age_years"]


def test_check_clinical_raises_with_every_problem_attached():
    with pytest.raises(InvalidClinicalData, match="column 'margin'") as info:
        check_clinical(record(margin="R5", age_years="200"), case_id="STS-9")
    assert {p.column for p in info.value.problems} == {"margin", "age_years"}
