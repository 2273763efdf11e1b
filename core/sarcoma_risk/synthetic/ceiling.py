"""The image ceiling: the best linear predictor a perfect reader of a phantom's images could form.

The hazard of a phantom case depends on its true phenotypes ``z_r`` (MRI) and ``z_p`` (pathology),
but an image of the ``hard`` phantom shows ``z + readout_sd * e`` (:func:`~sarcoma_risk.synthetic.
difficulty.shown_phenotype`, one error ``e`` per MRI and per slide). So even a reader that recovers
the shown phenotype exactly cannot reach the oracle (the true linear predictor). Its best predictor
given the chart and the images is the posterior mean of the linear predictor::

    ceiling = lp_clinical + b_mri * E[z_r | clinical, shown MRI] + b_pathology * E[z_p | clinical, shown slides]

The generative model draws each phenotype given the clinical record as ``z = m + s * u`` with ``u``
standard normal (:meth:`~sarcoma_risk.synthetic.model.GenerativeModel.phenotype_prior`; hard: ``m = r *
standardized FNCLCC score``, ``s = sqrt(1 - r^2)``; standard: the same with the grade), ``z_r`` and
``z_p`` independent given the record, and every image's readout error independent of everything
else. With ``k`` images of a phenotype, the mean ``y`` of what they show is ``z`` plus noise of
variance ``readout_sd^2 / k``, and::

    E[z | clinical, y] = m + w * (y - m),   w = s^2 / (s^2 + readout_sd^2 / k)

A case without that modality (``k = 0``) gets the prior mean ``m``. Where the images show the phenotype
itself (the standard phantom, ``readout_sd = 0``) ``w = 1`` and the ceiling of a case with every
modality is its true linear predictor.

It is an upper bound for any image model: it assumes the reader recovers the shown phenotype exactly,
although the renderers add more that a reader must see through (regional heterogeneity, intensity and
stain nuisance, per-case variation of the rendered curves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.synthetic.difficulty import model_for, readout_stream, render_difficulty, shown_phenotype
from sarcoma_risk.synthetic.model import GenerativeModel

if TYPE_CHECKING:  # the cohort module loads the renderers; the ceiling needs only the plans
    from sarcoma_risk.synthetic.cohort import CasePlan


def posterior_phenotype(prior_mean: float, prior_sd: float, shown: Sequence[float], readout_sd: float) -> float:
    """``E[z | shown]`` for ``z ~ N(prior_mean, prior_sd^2)`` and each shown value ``z + readout_sd * e``
    (independent errors); the prior mean when nothing is shown (module docstring)."""
    if not shown:
        return prior_mean
    mean_shown = float(np.mean(shown))
    if readout_sd == 0:
        return mean_shown  # the images show the phenotype itself
    variance = prior_sd * prior_sd
    weight = variance / (variance + readout_sd * readout_sd / len(shown))
    return prior_mean + weight * (mean_shown - prior_mean)


def image_ceiling(plans: Sequence["CasePlan"], model: GenerativeModel | None = None) -> np.ndarray:
    """The image ceiling of every planned case (module docstring), in the order of ``plans``.

    Parameters
    ----------
    plans : sequence of CasePlan
        Planned cases (:func:`~sarcoma_risk.synthetic.cohort.plan_cohort`); nothing is rendered.
    model : GenerativeModel, optional
        The model the plans were drawn from (default: the default model of each plan's difficulty,
        as ``plan_cohort`` uses when given none).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Log relative hazard a perfect reader of the images would predict; higher = riskier, on the
        scale of ``sample.lp``.
    """
    if not plans:
        raise InvalidInput("image ceiling: no planned cases; plan at least one with plan_cohort")
    defaults: dict[str, GenerativeModel] = {}
    out = np.empty(len(plans))
    for i, plan in enumerate(plans):
        base = model or defaults.setdefault(plan.difficulty, model_for(plan.difficulty))
        case_model = base.for_centre(plan.centre)
        render = render_difficulty(plan.difficulty)
        sample = plan.sample
        (mean_r, sd_r), (mean_p, sd_p) = case_model.phenotype_prior(sample.clinical)
        shown_mri = [] if plan.mri_seed is None else [shown_phenotype(sample.z_r, render, readout_stream(plan.mri_seed))]
        shown_slides = [shown_phenotype(sample.z_p, render, readout_stream(s.seed)) for s in plan.slides]
        z_r = posterior_phenotype(mean_r, sd_r, shown_mri, render.readout_sd)
        z_p = posterior_phenotype(mean_p, sd_p, shown_slides, render.readout_sd)
        out[i] = sample.lp_clinical + case_model.b_mri * z_r + case_model.b_pathology * z_p
    return out
