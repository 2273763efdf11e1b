"""Seeded synthetic fusion tables for the fusion unit tests (imported by conftest and the tests).

These are the fusion tests' own data, not the phantom cohort: clinical records validated by
:func:`sarcoma_risk.clinical.variables.check_clinical`, two latent imaging phenotypes, imaging scores that
are the phenotypes plus noise, and recurrence times drawn from a known Cox model (Weibull baseline)
with uniform administrative censoring. The true linear predictor is returned so tests can compare
learned and true risks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sarcoma_risk.clinical.variables import VARIABLES, check_clinical

TRUE_BETA = {"age_years": 0.01, "tumor_size_cm": 0.06, "depth[deep]": 0.4, "fnclcc_grade[2]": 0.6,
             "fnclcc_grade[3]": 1.1, "margin[R1]": 0.5, "presentation[recurrent]": 0.4}
B_RADIOLOGY = 0.8
B_PATHOLOGY = 0.8
#: CoxFusion settings for tests: a small penalizer grid and 3 folds keep a fit around a second.
FAST = {"penalizers": (0.01, 0.1, 1.0), "cv_folds": 3}


def _clinical(rng: np.random.Generator) -> dict:
    grade = int(rng.choice([1, 2, 3], p=[0.25, 0.3, 0.45]))
    record = {
        "age_years": int(np.clip(round(rng.normal(55, 15)), 18, 95)),
        "sex": str(rng.choice(["female", "male"])),
        "tumor_size_cm": round(float(np.clip(np.exp(rng.normal(np.log(8), 0.6)), 1, 35)), 1),
        "depth": "deep" if rng.random() < 0.7 else "superficial",
        "site": str(rng.choice(["lower_extremity", "upper_extremity", "trunk"])),
        "subtype": str(rng.choice(["UPS", "myxofibrosarcoma", "leiomyosarcoma"])),
        "fnclcc_grade": grade,
        "margin": "R1" if rng.random() < 0.25 else "R0",
        "radiotherapy": str(rng.choice(["none", "preoperative", "postoperative"])),
        "chemotherapy": "no",
        "presentation": "recurrent" if rng.random() < 0.15 else "primary",
    }
    return check_clinical(record)


def make_table(n: int = 200, seed: int = 0, *, missing_radiology: float = 0.0, missing_pathology: float = 0.0,
               missing_clinical: float = 0.0, noise: float = 0.5, split: str = "development") -> tuple[pd.DataFrame, np.ndarray]:
    """A fusion table of ``n`` cases and the true linear predictor of each."""
    rng = np.random.default_rng(seed)
    rows, lps = [], []
    for i in range(n):
        clinical = _clinical(rng)
        z_r, z_p = rng.standard_normal(2)
        x = {"age_years": clinical["age_years"] - 55, "tumor_size_cm": clinical["tumor_size_cm"] - 8,
             "depth[deep]": clinical["depth"] == "deep", "fnclcc_grade[2]": clinical["fnclcc_grade"] == 2,
             "fnclcc_grade[3]": clinical["fnclcc_grade"] == 3, "margin[R1]": clinical["margin"] == "R1",
             "presentation[recurrent]": clinical["presentation"] == "recurrent"}
        lp = sum(TRUE_BETA[k] * float(v) for k, v in x.items()) + B_RADIOLOGY * z_r + B_PATHOLOGY * z_p
        event_time = 150.0 * (-np.log(1 - rng.random()) * np.exp(-lp)) ** (1 / 0.9)
        censor = rng.uniform(62, 110)
        row = {"case_id": f"SYN-{seed}-{i:04d}", "centre": "A", "split": split,
               "time_months": round(max(min(event_time, censor), 0.1), 2), "event": int(event_time <= censor)}
        row.update({name: clinical.get(name) for name in VARIABLES})
        if rng.random() < missing_clinical:
            row["margin"] = None
        row["radiology_score"] = z_r + noise * rng.standard_normal() if rng.random() >= missing_radiology else np.nan
        row["pathology_score"] = z_p + noise * rng.standard_normal() if rng.random() >= missing_pathology else np.nan
        rows.append(row)
        lps.append(lp)
    frame = pd.DataFrame(rows).set_index("case_id")
    for name in VARIABLES:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame, np.asarray(lps)
