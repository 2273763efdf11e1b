"""Staging soft tissue sarcoma: the FNCLCC grade from its components and the AJCC 8th stage group.

Rules over clean values only (:mod:`sarcoma_risk.clinical.variables` checks what people type and
calls these to add the grade and the stage to a valid record).
"""

from __future__ import annotations

from sarcoma_risk.errors import InvalidInput

#: The three FNCLCC components the grade is computed from.
GRADE_COMPONENTS = ("differentiation", "mitotic_count", "necrosis")
#: Values computed from the others and added to a valid record (trunk and extremity only).
DERIVED = ("ajcc_t", "ajcc_stage")
#: Sites the AJCC 8th trunk/extremity tables apply to; other sites have their own T and stage tables.
AJCC_TRUNK_EXTREMITY_SITES = ("upper_extremity", "lower_extremity", "trunk")


def mitotic_score(mitoses_per_10hpf: int) -> int:
    """FNCLCC mitotic count score: 0-9 -> 1, 10-19 -> 2, >= 20 -> 3."""
    if mitoses_per_10hpf < 0:
        raise InvalidInput(f"mitotic_count: {mitoses_per_10hpf} must be >= 0")
    return 1 if mitoses_per_10hpf < 10 else 2 if mitoses_per_10hpf < 20 else 3


NECROSIS_SCORE = {"none": 0, "lt50": 1, "ge50": 2}


def fnclcc_grade(differentiation: int, mitotic_count: int, necrosis: str) -> int:
    """FNCLCC grade from its components: score 2-3 -> G1, 4-5 -> G2, 6-8 -> G3."""
    if differentiation not in (1, 2, 3):
        raise InvalidInput(f"differentiation: {differentiation!r} must be 1, 2 or 3")
    if necrosis not in NECROSIS_SCORE:
        raise InvalidInput(f"necrosis: {necrosis!r} must be one of none, lt50, ge50")
    total = differentiation + mitotic_score(mitotic_count) + NECROSIS_SCORE[necrosis]
    return 1 if total <= 3 else 2 if total <= 5 else 3


def ajcc_t_category(tumor_size_cm: float) -> str:
    """AJCC 8th T category for trunk and extremity: T1 <= 5 cm, T2 <= 10, T3 <= 15, T4 > 15."""
    if tumor_size_cm <= 5:
        return "T1"
    if tumor_size_cm <= 10:
        return "T2"
    if tumor_size_cm <= 15:
        return "T3"
    return "T4"


def ajcc_stage(tumor_size_cm: float, grade: int, nodal_status: str = "N0", metastasis: str = "M0",
               site: str = "lower_extremity") -> str | None:
    """AJCC 8th stage group for trunk/extremity sarcoma; None for other sites (they have other tables).

    IA T1 N0 M0 G1; IB T2-4 N0 M0 G1; II T1 N0 M0 G2/3; IIIA T2 N0 M0 G2/3; IIIB T3-4 N0 M0 G2/3;
    IV any N1 or M1.
    """
    if site not in AJCC_TRUNK_EXTREMITY_SITES:
        return None
    if metastasis == "M1" or nodal_status == "N1":
        return "IV"
    t = ajcc_t_category(tumor_size_cm)
    if grade == 1:
        return "IA" if t == "T1" else "IB"
    if t == "T1":
        return "II"
    return "IIIA" if t == "T2" else "IIIB"
