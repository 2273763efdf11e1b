"""How hard the phantom is: ``standard`` (the original phantom) or ``hard`` (weaker, noisier, realistic).

The standard phantom renders each latent phenotype almost deterministically and gives it a strong
effect (0.8 per SD of log hazard): first-order intensity statistics read it with r of about 0.9, so
every model looks good. ``hard`` keeps the same clinical model and renderers but:

* **weak imaging effects**: ``b_mri = b_pathology = 0.35`` per SD of log hazard, the size the
  published radiomics and pathomics signatures suggest once grade is accounted for;
* **phenotypes tied to the recorded FNCLCC components**: the MRI phenotype is correlated with the
  necrosis score (MRI sees necrosis), the pathology phenotype with the mitotic score (the slide shows
  mitoses and atypia), so part of what the images show is already in the chart;
* **phenotypes in spatial structure, not in intensity or colour**: the MRI phenotype moves the grain
  of the viable tumor's texture, the margin and the edema, with the tumor's first-order moments held
  level; the pathology phenotype moves nuclear pleomorphism, elongation and fascicle disorder, with
  nuclear density, area and darkness held level (:mod:`~sarcoma_risk.synthetic.mri`,
  :mod:`~sarcoma_risk.synthetic.wsi`). First-order statistics and colour, the baselines' features,
  see almost nothing of either, so a CNN has to earn its place;
* **imperfect and heterogeneous readout**: the images show the phenotype plus a per-case readout
  error (``readout_sd``, biology the hazard does not depend on), varying region by region inside
  the tumor (``regional_sd``, a smooth field over the MRI volume and the slide), with per-case
  nuisance (``nuisance_sd``: intrinsic tumor signal on MRI, stain strength on the slide);
* **centre B differs in case mix and baseline hazard**, not only scanner and stain: every centre
  but the first (the reference, "A") is a referral centre with a higher-grade subtype mix, larger
  tumors and a higher baseline hazard (``centre_hazard_ratio``).

Rendering and sampling draw the extra randomness from their own streams, so ``standard`` stays
byte-identical by seed to the phantom before difficulties existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.synthetic.model import FNCLCC_TRIPLES, SUBTYPES, GenerativeModel

#: The centre whose case mix and baseline are the model's own; every other centre is a referral centre.
REFERENCE_CENTRE = "A"
NECROSIS_SCORES = {"none": 0, "lt50": 1, "ge50": 2}


class Difficulty(str, Enum):
    """How hard the phantom cohort is (module docstring)."""

    STANDARD = "standard"
    HARD = "hard"


@dataclass(frozen=True)
class RenderDifficulty:
    """How the renderers blur the phenotype; all zero renders the standard phantom.

    ``readout_sd``: SD (phenotype units) of a per-case error between the phenotype in the hazard and
    the one the images show. ``regional_sd``: SD of a smooth regional field added to it inside the
    tumor (intratumoral heterogeneity). ``nuisance_sd``: log-SD of per-case signal variation that
    has nothing to do with the phenotype (MRI tumor intensity, slide stain strength).
    """

    readout_sd: float = 0.0
    regional_sd: float = 0.0
    nuisance_sd: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.readout_sd or self.regional_sd or self.nuisance_sd)

    def to_dict(self) -> dict[str, float]:
        return {"readout_sd": self.readout_sd, "regional_sd": self.regional_sd, "nuisance_sd": self.nuisance_sd}


RENDER: dict[Difficulty, RenderDifficulty] = {
    Difficulty.STANDARD: RenderDifficulty(),
    Difficulty.HARD: RenderDifficulty(readout_sd=0.3, regional_sd=0.5, nuisance_sd=0.15),
}


def render_difficulty(difficulty: Difficulty | str) -> RenderDifficulty:
    return RENDER[check_choice(difficulty, Difficulty, "difficulty")]


#: Key of the renderers' extra stream (beside the image's seed), kept apart from their standard draws.
READOUT_STREAM_KEY = 1515


def readout_stream(seed: int) -> np.random.Generator:
    """The stream of a rendered image's ``hard`` draws: the readout error first (:func:`shown_phenotype`),
    then what the renderer draws after it (nuisance, regional field).

    ``seed`` is the image's renderer seed (an MRI's or one slide's, as planned by
    :func:`sarcoma_risk.synthetic.cohort.plan_case`).
    """
    return np.random.default_rng([int(seed), READOUT_STREAM_KEY])


def shown_phenotype(phenotype: float, difficulty: RenderDifficulty, stream: np.random.Generator) -> float:
    """The phenotype an image shows: ``phenotype + readout_sd * e``, ``e`` the next standard normal of
    ``stream`` (the first one of :func:`readout_stream`, as both renderers call it).

    A difficulty that is not active renders the phenotype itself and draws nothing. The renderers and
    :mod:`sarcoma_risk.synthetic.ceiling` call this one function, so what an image shows and what the
    ceiling assumes it shows cannot drift apart.
    """
    if not difficulty.active:
        return phenotype
    return phenotype + difficulty.readout_sd * float(stream.standard_normal())


def _score_moments() -> dict[str, tuple[float, float]]:
    """Population mean and SD of the FNCLCC necrosis and mitotic scores under the reference case mix."""
    probs: dict[str, dict[int, float]] = {"necrosis": {}, "mitotic": {}}
    for weight, by_grade in SUBTYPES.values():
        for grade, p_grade in zip((1, 2, 3), by_grade):
            triples = FNCLCC_TRIPLES[grade]
            for _, mitotic, necrosis in triples:
                share = weight * p_grade / len(triples)
                probs["necrosis"][necrosis] = probs["necrosis"].get(necrosis, 0.0) + share
                probs["mitotic"][mitotic] = probs["mitotic"].get(mitotic, 0.0) + share
    out = {}
    for name, dist in probs.items():
        mean = sum(k * p for k, p in dist.items())
        out[name] = (mean, math.sqrt(sum(p * (k - mean) ** 2 for k, p in dist.items())))
    return out


SCORE_MOMENTS = _score_moments()


def mitotic_score(count: int) -> int:
    """FNCLCC mitotic score of a count per 10 HPF: 1 (0-9), 2 (10-19), 3 (20+)."""
    return 1 if count <= 9 else 2 if count <= 19 else 3


@dataclass(frozen=True)
class HardGenerativeModel(GenerativeModel):
    """The generative model of the ``hard`` phantom (module docstring).

    Parameters (besides :class:`GenerativeModel`'s)
    ----------
    necrosis_correlation : float
        Correlation of the MRI phenotype with the standardized FNCLCC necrosis score.
    mitosis_correlation : float
        Correlation of the pathology phenotype with the standardized FNCLCC mitotic score.
    referral_grade_tilt : float
        Case mix of non-reference centres: subtype weights times ``1 + tilt * P(G3 | subtype)``.
    referral_size_factor : float
        Median tumor size of non-reference centres relative to the reference.
    centre_hazard_ratio : float
        Baseline hazard of non-reference centres relative to the reference.
    centre : str or None
        The centre this instance draws for (set by :meth:`for_centre`; None: the reference).
    """

    b_mri: float = 0.35
    b_pathology: float = 0.35
    necrosis_correlation: float = 0.45
    mitosis_correlation: float = 0.45
    referral_grade_tilt: float = 1.0
    referral_size_factor: float = 1.2
    centre_hazard_ratio: float = 1.6
    centre: str | None = field(default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("necrosis_correlation", "mitosis_correlation"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidModel(f"generative model: {name} must be in [0, 1)")
        for name in ("referral_size_factor", "centre_hazard_ratio"):
            if not getattr(self, name) > 0:
                raise InvalidModel(f"generative model: {name} must be > 0")
        if self.referral_grade_tilt < 0:
            raise InvalidModel("generative model: referral_grade_tilt must be >= 0")

    @property
    def referral(self) -> bool:
        return self.centre is not None and self.centre != REFERENCE_CENTRE

    def for_centre(self, centre: str) -> "HardGenerativeModel":
        # The baseline scale of a Weibull with hazard ratio HR: lambda * HR ** (-1 / k).
        base = replace(self, centre=None) if self.centre is not None else self
        if centre == REFERENCE_CENTRE:
            return base
        scale = base.weibull_scale_months * base.centre_hazard_ratio ** (-1.0 / base.weibull_shape)
        return replace(base, centre=centre, weibull_scale_months=scale)

    def subtype_weights(self) -> list[float]:
        weights = super().subtype_weights()
        if not self.referral:
            return weights
        tilted = [w * (1.0 + self.referral_grade_tilt * SUBTYPES[s][1][2]) for w, s in zip(weights, SUBTYPES)]
        total = sum(tilted)
        return [w / total for w in tilted]

    def size_factor(self) -> float:
        return self.referral_size_factor if self.referral else 1.0

    def case_phenotypes(self, rng: np.random.Generator, clinical: Mapping[str, Any]) -> tuple[float, float]:
        """``z_r`` correlated with the necrosis score, ``z_p`` with the mitotic score (each variance 1
        under the reference case mix)."""
        noise = rng.standard_normal(2)
        (mean_r, sd_r), (mean_p, sd_p) = self.phenotype_prior(clinical)
        return float(mean_r + sd_r * noise[0]), float(mean_p + sd_p * noise[1])

    def phenotype_prior(self, clinical: Mapping[str, Any]) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((mean, sd) of z_r, (mean, sd) of z_p)`` given the clinical record: ``mean = r * s`` with ``s``
        the score standardized by :data:`SCORE_MOMENTS` (the reference case mix, in every centre) and
        ``sd = sqrt(1 - r^2)``; ``r`` is ``necrosis_correlation`` for z_r, ``mitosis_correlation`` for z_p."""
        out = []
        for score, (mean, sd), r in (
                (NECROSIS_SCORES[clinical["necrosis"]], SCORE_MOMENTS["necrosis"], self.necrosis_correlation),
                (mitotic_score(int(clinical["mitotic_count"])), SCORE_MOMENTS["mitotic"], self.mitosis_correlation)):
            out.append((r * (score - mean) / sd, math.sqrt(1.0 - r * r)))
        return out[0], out[1]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["difficulty"] = Difficulty.HARD.value
        data["phenotypes"] = ("z_r correlated with the FNCLCC necrosis score, z_p with the mitotic score "
                              "(necrosis_correlation, mitosis_correlation)")
        data["centre_effects"] = (f"centres other than {REFERENCE_CENTRE!r}: subtype weights x (1 + "
                                  "referral_grade_tilt x P(G3 | subtype)), median size x referral_size_factor, "
                                  "baseline hazard x centre_hazard_ratio")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HardGenerativeModel":
        base = GenerativeModel.from_dict(data)
        try:
            extra = {k: data[k] for k in ("necrosis_correlation", "mitosis_correlation", "referral_grade_tilt",
                                          "referral_size_factor", "centre_hazard_ratio")}
        except KeyError as exc:
            raise InvalidModel(f"generative model: hard difficulty without {exc}") from None
        fields_ = {k: getattr(base, k) for k in GenerativeModel.__dataclass_fields__}
        return cls(**fields_, **extra, centre=data.get("centre"))


def model_for(difficulty: Difficulty | str) -> GenerativeModel:
    """The default generative model of a difficulty."""
    difficulty = check_choice(difficulty, Difficulty, "difficulty")
    return HardGenerativeModel() if difficulty is Difficulty.HARD else GenerativeModel()
