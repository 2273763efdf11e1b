"""Clinical variables: parsing with clear messages, FNCLCC grade and AJCC 8th stage against hand-worked tables."""

from __future__ import annotations

import pytest

from sarcoma_risk.clinical import (
    VARIABLES,
    ajcc_stage,
    ajcc_t_category,
    check_clinical,
    fnclcc_grade,
    mitotic_score,
    validate_clinical,
)
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput


def record(**changes) -> dict:
    """A complete chart as a coordinator might type it (aliases, mixed case)."""
    base = {"age_years": "63", "sex": "M", "tumor_size_cm": "11.5", "depth": "Deep", "site": "thigh",
            "subtype": "UPS", "differentiation": "3", "mitotic_count": "24", "necrosis": ">=50%",
            "margin": "R1", "radiotherapy": "pre-op", "chemotherapy": "no", "presentation": "primary"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# ---- FNCLCC grade (worked by hand: differentiation + mitotic score + necrosis score) -------------


@pytest.mark.parametrize("mitoses, score", [(0, 1), (9, 1), (10, 2), (19, 2), (20, 3), (150, 3)])
def test_mitotic_score_changes_exactly_at_10_and_20_mitoses(mitoses, score):
    assert mitotic_score(mitoses) == score


@pytest.mark.parametrize("differentiation, mitoses, necrosis, grade", [
    (1, 0, "none", 1),   # 1 + 1 + 0 = 2
    (1, 9, "lt50", 1),   # 1 + 1 + 1 = 3
    (2, 9, "lt50", 2),   # 2 + 1 + 1 = 4
    (1, 10, "none", 1),  # 1 + 2 + 0 = 3
    (2, 10, "none", 2),  # 2 + 2 + 0 = 4
    (2, 19, "lt50", 2),  # 2 + 2 + 1 = 5
    (3, 19, "lt50", 3),  # 3 + 2 + 1 = 6
    (1, 20, "none", 2),  # 1 + 3 + 0 = 4
    (2, 20, "lt50", 3),  # 2 + 3 + 1 = 6
    (3, 20, "ge50", 3),  # 3 + 3 + 2 = 8
    (1, 0, "ge50", 2),   # 1 + 1 + 2 = 4
    (3, 5, "ge50", 3),   # 3 + 1 + 2 = 6
])
def test_fnclcc_grade_matches_the_hand_worked_sum(differentiation, mitoses, necrosis, grade):
    assert fnclcc_grade(differentiation, mitoses, necrosis) == grade


@pytest.mark.parametrize("args, match", [((4, 1, "none"), "differentiation"), ((2, -1, "none"), "mitotic_count"),
                                         ((2, 1, "most"), "necrosis")])
def test_fnclcc_grade_refuses_impossible_components(args, match):
    with pytest.raises(InvalidInput, match=match):
        fnclcc_grade(*args)


# ---- AJCC 8th, trunk and extremity -----------------------------------------------------------------


@pytest.mark.parametrize("size, t", [(0.5, "T1"), (5.0, "T1"), (5.01, "T2"), (10.0, "T2"), (10.01, "T3"),
                                     (15.0, "T3"), (15.01, "T4"), (40.0, "T4")])
def test_ajcc_t_category_boundaries_are_5_10_and_15_cm_inclusive(size, t):
    assert ajcc_t_category(size) == t


@pytest.mark.parametrize("size, grade, n, m, stage", [
    (5.0, 1, "N0", "M0", "IA"),     # T1 G1
    (5.1, 1, "N0", "M0", "IB"),     # T2 G1
    (15.1, 1, "N0", "M0", "IB"),    # T4 G1
    (5.0, 2, "N0", "M0", "II"),     # T1 G2
    (4.0, 3, "N0", "M0", "II"),     # T1 G3
    (5.1, 2, "N0", "M0", "IIIA"),   # T2 G2
    (10.0, 3, "N0", "M0", "IIIA"),  # T2 G3
    (10.1, 2, "N0", "M0", "IIIB"),  # T3 G2
    (15.0, 3, "N0", "M0", "IIIB"),  # T3 G3
    (16.0, 2, "N0", "M0", "IIIB"),  # T4 G2
    (3.0, 1, "N1", "M0", "IV"),     # any N1
    (3.0, 1, "N0", "M1", "IV"),     # any M1
])
def test_ajcc_stage_matches_the_hand_worked_table(size, grade, n, m, stage):
    assert ajcc_stage(size, grade, n, m, "lower_extremity") == stage


@pytest.mark.parametrize("site", ["retroperitoneum", "head_neck"])
def test_ajcc_stage_is_not_given_for_sites_with_other_tables(site):
    assert ajcc_stage(12.0, 3, site=site) is None
    clean = check_clinical(record(site=site))
    assert "ajcc_stage" not in clean and "ajcc_t" not in clean


# ---- validating one chart ------------------------------------------------------------------------


def test_a_chart_with_usual_spellings_is_cleaned_to_canonical_values():
    clean = check_clinical(record())
    assert clean["sex"] == "male" and clean["depth"] == "deep" and clean["site"] == "lower_extremity"
    assert clean["subtype"] == "undifferentiated_pleomorphic_sarcoma"
    assert clean["necrosis"] == "ge50" and clean["radiotherapy"] == "preoperative"
    assert clean["age_years"] == 63.0 and clean["mitotic_count"] == 24
    assert clean["fnclcc_grade"] == 3  # 3 + 3 + 2 = 8
    assert clean["ajcc_t"] == "T3" and clean["ajcc_stage"] == "IIIB"


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
