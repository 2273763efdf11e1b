"""The phantom cohort generator: multi-centre sarcoma cohorts whose ground truth is known.

:mod:`~sarcoma_risk.synthetic.model` holds the generative model (clinical variables, latent MRI and
pathology phenotypes, Cox hazard with a Weibull baseline, censoring);
:mod:`~sarcoma_risk.synthetic.difficulty` the ``hard`` variant (weak, heterogeneous imaging effects,
centres that differ in case mix and baseline hazard);
:mod:`~sarcoma_risk.synthetic.cohort` plans the cases, calls the renderers
(:mod:`~sarcoma_risk.synthetic.mri`, :mod:`~sarcoma_risk.synthetic.wsi`) and writes ``manifest.csv``
and ``truth.json``. Importing this package is cheap: the renderers and lifelines are imported when
a cohort is generated.
"""

from sarcoma_risk.synthetic.cohort import (
    PhantomCohort,
    Size,
    SplitRule,
    generate_cohort,
    plan_cohort,
)
from sarcoma_risk.synthetic.difficulty import Difficulty, HardGenerativeModel
from sarcoma_risk.synthetic.model import GenerativeModel, SampledCase

__all__ = ["Difficulty", "GenerativeModel", "HardGenerativeModel", "PhantomCohort", "SampledCase", "Size", "SplitRule", "generate_cohort", "plan_cohort"]
