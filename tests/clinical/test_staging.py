"""FNCLCC grade and AJCC 8th stage against hand-worked tables."""

from __future__ import annotations

import pytest

from sarcoma_risk.clinical.staging import ajcc_stage, ajcc_t_category, fnclcc_grade, mitotic_score
from sarcoma_risk.errors import InvalidInput


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
