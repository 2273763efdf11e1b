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

The reader ceiling (:func:`reader_ceiling`) asks the same of readers that are not perfect: what a case
score whose Pearson r with the latent phenotype is ``r`` (the figure ``bench_cohort`` reports for each
CNN) could give at best. Such a read is ``z + d`` with ``var(d) = 1/r^2 - 1`` (``z`` has variance 1 in
the reference population), the images' readout error included, so no reader exceeds
:func:`max_reader_pearson`. Fused with the true coefficients and the posterior mean, as above with
``var(d)`` for ``readout_sd^2 / k``, it bounds what any fusion of scores that good can reach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.synthetic.difficulty import (
    RenderDifficulty,
    model_for,
    readout_stream,
    render_difficulty,
    shown_phenotype,
)
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
    return _ceiling(plans, model, None, "image ceiling").predictor


#: Key of a reader's own error stream, beside the seed of the first image it reads (kept apart from the
#: renderers' streams, so the reads never move what an image shows).
READER_STREAM_KEY = 2727


@dataclass(frozen=True)
class ReaderCeiling:
    """:func:`reader_ceiling` of planned cases, in their order.

    ``predictor``: the log relative hazard the readers' reads allow at best (scale of ``sample.lp``).
    ``mri_read``, ``pathology_read``: each reader's read of the case in phenotype units (higher = the
    riskier phenotype); NaN where the case has no such image.
    """

    predictor: np.ndarray
    mri_read: np.ndarray
    pathology_read: np.ndarray


def max_reader_pearson(difficulty: RenderDifficulty, images: int = 1) -> float:
    """The highest Pearson r with the latent phenotype that a reader of ``images`` images can reach: they
    show the phenotype plus a readout error of variance ``readout_sd^2 / images``."""
    return 1.0 / math.sqrt(1.0 + difficulty.readout_sd ** 2 / images)


def reader_ceiling(plans: Sequence["CasePlan"], mri_pearson: float, pathology_pearson: float,
                   model: GenerativeModel | None = None) -> ReaderCeiling:
    """The best predictor from an MRI reader and a slide reader of the given quality (module docstring).

    Parameters
    ----------
    plans : sequence of CasePlan
        Planned cases, as for :func:`image_ceiling`.
    mri_pearson, pathology_pearson : float
        Each reader's Pearson r with its latent phenotype, from 0 (reads nothing; the case keeps the
        prior mean) to :func:`max_reader_pearson` of one image (reads what the images show exactly).
    model : GenerativeModel, optional
        As for :func:`image_ceiling`.

    Returns
    -------
    ReaderCeiling
        The predictor and both readers' reads. A read adds the reader's own error, drawn from a stream
        of the case's first image of that modality, to what the images show; so the reads repeat
        exactly by plan, whatever the order or subset of ``plans``.
    """
    pearson = {"mri": mri_pearson, "pathology": pathology_pearson}
    for difficulty in sorted({plan.difficulty for plan in plans}):
        highest = max_reader_pearson(render_difficulty(difficulty))
        for modality, r in pearson.items():
            if not 0.0 <= r <= highest:
                raise InvalidInput(f"reader ceiling: {modality} reader Pearson r {r!r} must lie between 0 and "
                                   f"{highest:.4f}, what a perfect reader of one {difficulty} image reaches")
    return _ceiling(plans, model, pearson, "reader ceiling")


def _read(shown: Sequence[float], prior: tuple[float, float], readout_sd: float, pearson: float | None,
          seed: int | None) -> tuple[float, float]:
    """(posterior mean of the phenotype, the read) of one modality of one case; ``pearson`` None: a
    perfect reader of what the images show."""
    mean, sd = prior
    if not shown:
        return mean, math.nan
    if pearson is None:
        return posterior_phenotype(mean, sd, shown, readout_sd), float(np.mean(shown))
    own_error = np.random.default_rng([int(seed), READER_STREAM_KEY]).standard_normal()
    if pearson == 0.0:
        return mean, float(own_error)  # a read that carries nothing of the phenotype
    error_variance = 1.0 / pearson ** 2 - 1.0  # of the read about z: the readout's share and the reader's own
    own_variance = max(error_variance - readout_sd ** 2 / len(shown), 0.0)
    read = float(np.mean(shown)) + math.sqrt(own_variance) * own_error
    return posterior_phenotype(mean, sd, [read], math.sqrt(error_variance)), read


def _ceiling(plans: Sequence["CasePlan"], model: GenerativeModel | None, pearson: dict[str, float] | None,
             what: str) -> ReaderCeiling:
    if not plans:
        raise InvalidInput(f"{what}: no planned cases; plan at least one with plan_cohort")
    defaults: dict[str, GenerativeModel] = {}
    out = np.empty((3, len(plans)))
    for i, plan in enumerate(plans):
        base = model or defaults.setdefault(plan.difficulty, model_for(plan.difficulty))
        case_model = base.for_centre(plan.centre)
        render = render_difficulty(plan.difficulty)
        sample = plan.sample
        prior_r, prior_p = case_model.phenotype_prior(sample.clinical)
        shown_mri = [] if plan.mri_seed is None else [shown_phenotype(sample.z_r, render, readout_stream(plan.mri_seed))]
        shown_slides = [shown_phenotype(sample.z_p, render, readout_stream(s.seed)) for s in plan.slides]
        r_mri, r_pathology = (None, None) if pearson is None else (pearson["mri"], pearson["pathology"])
        z_r, out[1, i] = _read(shown_mri, prior_r, render.readout_sd, r_mri, plan.mri_seed)
        z_p, out[2, i] = _read(shown_slides, prior_p, render.readout_sd, r_pathology,
                               plan.slides[0].seed if plan.slides else None)
        out[0, i] = sample.lp_clinical + case_model.b_mri * z_r + case_model.b_pathology * z_p
    return ReaderCeiling(*out)
