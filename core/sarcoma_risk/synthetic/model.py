"""The generative model of the phantom cohort: clinical variables, latent phenotypes, Cox hazard.

One case is drawn from one :class:`numpy.random.Generator`, always in the same order, so a case
depends only on its own seed (see :mod:`sarcoma_risk.synthetic.cohort` for how seeds are spawned):

1. Clinical variables of an adult with a localized extremity/trunk soft tissue sarcoma, with
   realistic marginals and correlations: histologic subtype first, FNCLCC grade given the subtype
   (about 20/30/50 % G1/G2/G3 overall), FNCLCC components consistent with the grade, tumor size
   lognormal with a median growing with grade (about 8 cm overall), deep location more likely for
   larger tumors (about 70 %), margin mostly R0, radiotherapy and chemotherapy more likely for higher
   grades. Every record passes :func:`sarcoma_risk.clinical.variables.validate_clinical`.
2. Latent phenotypes ``z_r`` (MRI) and ``z_p`` (pathology): mean 0, variance 1, each correlated with
   the grade (``phenotype_grade_correlation``, about 0.3), independent of each other given the grade.
   The renderers turn them into image content; they are never written to the manifest.
3. Recurrence time from a proportional hazards model with a Weibull baseline::

       h(t | x) = h0(t) * exp(LP),   h0(t) = (k / lambda) * (t / lambda) ** (k - 1)
       LP = sum_j beta_j * (x_j - centre_j) + b_r * z_r + b_p * z_p

   so ``T = lambda * (-log U * exp(-LP)) ** (1 / k)``. Covariates are named like the columns of
   :class:`sarcoma_risk.clinical.encoder.ClinicalEncoder` (``fnclcc_grade[3]``, ``margin[R1]``, ...), numeric
   ones raw (centring only moves the baseline). Log hazard ratios are in the range published for
   local/distant recurrence after surgery for STS (grade, size, margin and depth dominate; age small;
   radiotherapy protective).
4. Censoring: an administrative follow-up window drawn uniformly between ``followup_min_months`` and
   ``followup_max_months`` plus random loss to follow-up (exponential). Observed time is the minimum,
   rounded to 0.01 month.

With the defaults about a third of cases recur within 5 years (checked by the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.clinical.variables import check_clinical
from sarcoma_risk.errors import InvalidInput, InvalidModel

MODEL_FORMAT = "sarcoma-risk-phantom-model/1"
MRI_PHENOTYPE = "mri_phenotype"
PATHOLOGY_PHENOTYPE = "pathology_phenotype"

# ---- clinical distributions --------------------------------------------------------------------
# Subtype frequencies of adult extremity/trunk STS series (UPS and myxofibrosarcoma the commonest,
# liposarcomas together about a quarter), and the grade distribution within each subtype
# (well-differentiated liposarcoma always low grade, UPS and pleomorphic liposarcoma nearly always
# high grade, synovial sarcoma never G1). Together: about 20/29/51 % G1/G2/G3.
SUBTYPES: dict[str, tuple[float, tuple[float, float, float]]] = {
    "undifferentiated_pleomorphic_sarcoma": (0.22, (0.00, 0.15, 0.85)),
    "myxofibrosarcoma": (0.14, (0.20, 0.35, 0.45)),
    "myxoid_liposarcoma": (0.10, (0.45, 0.45, 0.10)),
    "well_differentiated_liposarcoma": (0.09, (1.00, 0.00, 0.00)),
    "dedifferentiated_liposarcoma": (0.05, (0.00, 0.30, 0.70)),
    "pleomorphic_liposarcoma": (0.03, (0.00, 0.10, 0.90)),
    "leiomyosarcoma": (0.12, (0.15, 0.40, 0.45)),
    "synovial_sarcoma": (0.07, (0.00, 0.40, 0.60)),
    "mpnst": (0.05, (0.05, 0.30, 0.65)),
    "other": (0.13, (0.15, 0.40, 0.45)),
}
SITES = {"lower_extremity": 0.60, "upper_extremity": 0.15, "trunk": 0.25}
#: Median largest diameter (cm) by grade; lognormal spread ``SIZE_LOG_SD``.
SIZE_MEDIAN_CM = {1: 6.0, 2: 7.5, 3: 9.0}
SIZE_LOG_SD = 0.6
SIZE_RANGE_CM = (1.0, 35.0)
#: FNCLCC (differentiation, mitotic score, necrosis score) triples, grouped by the grade they give.
_NECROSIS_BY_SCORE = ("none", "lt50", "ge50")
_MITOTIC_RANGES = {1: (0, 9), 2: (10, 19), 3: (20, 60)}


def _grade_of(total: int) -> int:
    return 1 if total <= 3 else 2 if total <= 5 else 3


FNCLCC_TRIPLES: dict[int, tuple[tuple[int, int, int], ...]] = {
    g: tuple((d, m, n) for d in (1, 2, 3) for m in (1, 2, 3) for n in (0, 1, 2) if _grade_of(d + m + n) == g)
    for g in (1, 2, 3)
}

#: Log hazard ratios (per unit of the covariate). Numeric covariates are per year / per cm.
DEFAULT_COEFFICIENTS: dict[str, float] = {
    "age_years": 0.010,  # HR 1.10 per decade
    "tumor_size_cm": 0.040,  # HR 1.22 per 5 cm
    "depth[deep]": 0.45,
    "fnclcc_grade[2]": 0.65,
    "fnclcc_grade[3]": 1.10,
    "margin[R1]": 0.55,
    "margin[R2]": 1.10,
    "radiotherapy[preoperative]": -0.35,
    "radiotherapy[postoperative]": -0.35,
    "presentation[recurrent]": 0.45,
    "subtype[myxofibrosarcoma]": 0.35,  # infiltrative growth, local recurrence-prone
    "nodal_status[N1]": 0.70,
}
#: Numeric covariates are centred here, so the baseline hazard is that of a 55-year-old with an
#: 8 cm tumor and every categorical covariate at its reference level.
DEFAULT_CENTRES: dict[str, float] = {"age_years": 55.0, "tumor_size_cm": 8.0}


@dataclass(frozen=True)
class SampledCase:
    """One draw of the generative model (no images): clinical record, latents, outcome.

    ``lp`` is the true linear predictor (log relative hazard, higher = riskier); ``time_months`` and
    ``event`` are what a study would observe; ``event_time_months`` and ``censor_time_months`` are
    the latent times behind them.
    """

    clinical: dict[str, Any]
    covariates: dict[str, float]
    z_r: float
    z_p: float
    lp: float
    lp_clinical: float
    event_time_months: float
    censor_time_months: float
    time_months: float
    event: bool


@dataclass(frozen=True)
class GenerativeModel:
    """The known truth of a phantom cohort.

    Parameters
    ----------
    coefficients : mapping of str to float
        Log hazard ratio of each clinical covariate (names as :data:`DEFAULT_COEFFICIENTS`).
    b_mri, b_pathology : float
        Log hazard ratio per standard deviation of the MRI / pathology latent phenotype.
    weibull_shape : float
        Shape ``k`` of the Weibull baseline; below 1 the hazard falls with time, as recurrence after
        sarcoma surgery does (most within 2-3 years).
    weibull_scale_months : float
        Scale ``lambda`` of the baseline for the reference patient, in months.
    followup_min_months, followup_max_months : float
        Administrative censoring window: each case is followed for a uniform time in this range.
    loss_rate_per_month : float
        Rate of the exponential loss to follow-up (0.002 loses about 11 % within 5 years).
    phenotype_grade_correlation : float
        Correlation of each latent phenotype with the FNCLCC grade (0 <= r < 1).
    centres : mapping of str to float
        Centring of numeric covariates in the linear predictor.
    """

    coefficients: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COEFFICIENTS))
    b_mri: float = 0.8
    b_pathology: float = 0.8
    weibull_shape: float = 0.85
    weibull_scale_months: float = 1000.0
    followup_min_months: float = 60.0
    followup_max_months: float = 96.0
    loss_rate_per_month: float = 0.002
    phenotype_grade_correlation: float = 0.3
    centres: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CENTRES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.coefficients) - set(DEFAULT_COEFFICIENTS))
        if unknown:
            raise InvalidModel(f"generative model: unknown covariate(s) {unknown}; known: {', '.join(DEFAULT_COEFFICIENTS)}")
        checks = [
            (self.weibull_shape > 0, "weibull_shape must be > 0"),
            (self.weibull_scale_months > 0, "weibull_scale_months must be > 0"),
            (0 < self.followup_min_months <= self.followup_max_months,
             "need 0 < followup_min_months <= followup_max_months"),
            (self.loss_rate_per_month >= 0, "loss_rate_per_month must be >= 0"),
            (0 <= self.phenotype_grade_correlation < 1, "phenotype_grade_correlation must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidModel(f"generative model: {message}")
        values = [*self.coefficients.values(), self.b_mri, self.b_pathology, *self.centres.values()]
        if not all(math.isfinite(float(v)) for v in values):
            raise InvalidModel("generative model: coefficients and centres must be finite numbers")

    # ---- clinical --------------------------------------------------------------------------------

    def sample_clinical(self, rng: np.random.Generator) -> dict[str, Any]:
        """One validated clinical record (canonical values, as :func:`check_clinical` returns them)."""
        names = list(SUBTYPES)
        subtype = names[rng.choice(len(names), p=self.subtype_weights())]
        grade = int(rng.choice(3, p=SUBTYPES[subtype][1])) + 1
        triples = FNCLCC_TRIPLES[grade]
        differentiation, mitotic_score, necrosis_score = triples[rng.integers(len(triples))]
        low, high = _MITOTIC_RANGES[mitotic_score]
        mitotic_count = int(rng.integers(low, high + 1))
        size = float(np.clip(SIZE_MEDIAN_CM[grade] * self.size_factor() * math.exp(SIZE_LOG_SD * rng.standard_normal()), *SIZE_RANGE_CM))
        size = round(size, 1)
        # Larger tumors are more often deep (about 70 % overall).
        p_deep = 1.0 / (1.0 + math.exp(-(0.85 + 1.2 * (math.log(size) - math.log(8.0)))))
        deep = rng.random() < p_deep
        site_names = list(SITES)
        site = site_names[rng.choice(len(site_names), p=list(SITES.values()))]
        # Myxofibrosarcoma infiltrates along fascia: positive margins are commoner.
        p_margin = (0.60, 0.35, 0.05) if subtype == "myxofibrosarcoma" else (0.78, 0.19, 0.03)
        margin = ("R0", "R1", "R2")[rng.choice(3, p=p_margin)]
        p_rt = (0.35, 0.70, 0.75)[grade - 1] + (0.10 if deep else -0.10)
        rt = rng.random() < p_rt
        rt_timing = "preoperative" if rng.random() < 0.5 else "postoperative"
        chemo = rng.random() < (0.05, 0.15, 0.30)[grade - 1]
        record = {
            "age_years": int(np.clip(round(55.0 + 15.0 * rng.standard_normal()), 18, 95)),
            "sex": "male" if rng.random() < 0.55 else "female",
            "tumor_size_cm": size,
            "depth": "deep" if deep else "superficial",
            "site": site,
            "subtype": subtype,
            "differentiation": differentiation,
            "mitotic_count": mitotic_count,
            "necrosis": _NECROSIS_BY_SCORE[necrosis_score],
            "fnclcc_grade": grade,
            "margin": margin,
            "radiotherapy": rt_timing if rt else "none",
            "chemotherapy": "yes" if chemo else "no",
            "presentation": "recurrent" if rng.random() < 0.10 else "primary",
            "nodal_status": "N1" if rng.random() < 0.02 else "N0",
            # A cohort of patients operated on for localized disease: no distant metastasis at diagnosis.
            "metastasis": "M0",
        }
        return check_clinical(record)

    def subtype_weights(self) -> list[float]:
        """Probability of each subtype of :data:`SUBTYPES`, in its order (the case mix)."""
        return [SUBTYPES[s][0] for s in SUBTYPES]

    def size_factor(self) -> float:
        """Multiplier of the median tumor size (1: :data:`SIZE_MEDIAN_CM` as it is)."""
        return 1.0

    def for_centre(self, centre: str) -> "GenerativeModel":
        """The model a case of ``centre`` is drawn from; every centre shares this one.

        A subclass may give centres their own case mix and baseline hazard
        (:class:`sarcoma_risk.synthetic.difficulty.HardGenerativeModel`).
        """
        return self

    def covariates(self, clinical: Mapping[str, Any]) -> dict[str, float]:
        """The model's covariates of a clinical record, named like the coefficients."""
        out: dict[str, float] = {}
        for name in self.coefficients:
            variable, _, level = name.partition("[")
            if variable not in clinical:
                raise InvalidInput(f"clinical record: {variable} is missing; the generative model needs it")
            value = clinical[variable]
            if level:
                out[name] = 1.0 if str(value) == level.rstrip("]") else 0.0
            else:
                out[name] = float(value)
        return out

    def clinical_lp(self, covariates: Mapping[str, float]) -> float:
        """The clinical part of the linear predictor (centred numeric covariates)."""
        return float(sum(beta * (covariates[name] - self.centres.get(name, 0.0))
                         for name, beta in self.coefficients.items()))

    def linear_predictor(self, covariates: Mapping[str, float], z_r: float, z_p: float) -> float:
        """True log relative hazard: clinical part + ``b_mri * z_r + b_pathology * z_p``."""
        return self.clinical_lp(covariates) + self.b_mri * z_r + self.b_pathology * z_p

    # ---- latents and outcome ------------------------------------------------------------------------

    def sample_phenotypes(self, rng: np.random.Generator, grade: int) -> tuple[float, float]:
        """``(z_r, z_p)``: mean 0, variance 1, each with correlation ``r`` to the grade."""
        # Standardize the grade with its population mean and SD under SUBTYPES, so the mixture
        # keeps mean 0 and variance 1 and corr(z, grade) = r exactly in the population.
        (shared, scale), _ = self._grade_prior(grade)
        noise = rng.standard_normal(2)
        return float(shared + scale * noise[0]), float(shared + scale * noise[1])

    def _grade_prior(self, grade: int) -> tuple[tuple[float, float], tuple[float, float]]:
        mean, sd = GRADE_MEAN, GRADE_SD
        r = self.phenotype_grade_correlation
        shared = r * (grade - mean) / sd
        scale = math.sqrt(1.0 - r * r)
        return (shared, scale), (shared, scale)

    def case_phenotypes(self, rng: np.random.Generator, clinical: Mapping[str, Any]) -> tuple[float, float]:
        """``(z_r, z_p)`` of a case with this clinical record (here: through its grade only)."""
        return self.sample_phenotypes(rng, clinical["fnclcc_grade"])

    def phenotype_prior(self, clinical: Mapping[str, Any]) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((mean, sd) of z_r, (mean, sd) of z_p)`` given the clinical record, as :meth:`case_phenotypes`
        draws them: each is ``mean + sd * e`` with its own standard normal ``e``, independent of the
        other's given the record (here the mean is ``r * standardized grade``, ``sd = sqrt(1 - r^2)``)."""
        return self._grade_prior(clinical["fnclcc_grade"])

    def sample_times(self, rng: np.random.Generator, lp: float) -> tuple[float, float]:
        """``(event_time, censor_time)`` in months for a case with linear predictor ``lp``."""
        u = 1.0 - rng.random()  # in (0, 1]: log(u) is finite
        event_time = self.weibull_scale_months * (-math.log(u) * math.exp(-lp)) ** (1.0 / self.weibull_shape)
        followup = rng.uniform(self.followup_min_months, self.followup_max_months)
        if self.loss_rate_per_month > 0:
            loss = rng.exponential(1.0 / self.loss_rate_per_month)
        else:
            rng.exponential(1.0)  # keep the number of draws fixed
            loss = math.inf
        return float(event_time), float(min(followup, loss))

    def sample_case(self, rng: np.random.Generator) -> SampledCase:
        """One case: clinical record, latent phenotypes, linear predictor, observed outcome."""
        clinical = self.sample_clinical(rng)
        z_r, z_p = self.case_phenotypes(rng, clinical)
        covariates = self.covariates(clinical)
        lp_clinical = self.clinical_lp(covariates)
        lp = lp_clinical + self.b_mri * z_r + self.b_pathology * z_p
        event_time, censor_time = self.sample_times(rng, lp)
        observed = min(event_time, censor_time)
        # 0.01 month is the resolution written to the manifest; a time must stay > 0.
        time = max(round(observed, 2), 0.01)
        return SampledCase(clinical, covariates, z_r, z_p, lp, lp_clinical, event_time, censor_time,
                           time, bool(event_time <= censor_time))

    def baseline_survival(self, t_months: float | np.ndarray) -> float | np.ndarray:
        """S0(t) of the reference patient (LP = 0)."""
        return np.exp(-(np.asarray(t_months, dtype=float) / self.weibull_scale_months) ** self.weibull_shape)

    # ---- persistence ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["coefficients"] = dict(self.coefficients)
        data["centres"] = dict(self.centres)
        return {"format": MODEL_FORMAT, **data,
                "baseline": "weibull: h0(t) = (k / lambda) * (t / lambda) ** (k - 1), t in months",
                "linear_predictor": "sum beta_j * (x_j - centre_j) + b_mri * z_r + b_pathology * z_p"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GenerativeModel":
        if not isinstance(data, Mapping) or data.get("format") != MODEL_FORMAT:
            raise InvalidModel(f"generative model: expected format {MODEL_FORMAT!r}")
        names = [f for f in cls.__dataclass_fields__]
        try:
            return cls(**{k: data[k] for k in names})
        except (KeyError, TypeError) as exc:
            raise InvalidModel(f"generative model: malformed ({exc!r})") from exc


def _grade_moments() -> tuple[float, float]:
    probs = np.zeros(3)
    for weight, by_grade in SUBTYPES.values():
        probs += weight * np.asarray(by_grade)
    grades = np.array([1.0, 2.0, 3.0])
    mean = float(probs @ grades)
    return mean, float(math.sqrt(probs @ (grades - mean) ** 2))


GRADE_MEAN, GRADE_SD = _grade_moments()
