"""The phantom cohort generator: multi-centre sarcoma cohorts whose ground truth is known.

:mod:`~sarcoma_risk.synthetic.model` holds the generative model (clinical variables, latent MRI and
pathology phenotypes, Cox hazard with a Weibull baseline, censoring);
:mod:`~sarcoma_risk.synthetic.difficulty` the ``hard`` variant (weak, heterogeneous imaging effects,
centres that differ in case mix and baseline hazard);
:mod:`~sarcoma_risk.synthetic.ceiling` the best a perfect reader of the images could predict (and a reader
of a given quality);
:mod:`~sarcoma_risk.synthetic.cohort` plans the cases, calls the renderers
(:mod:`~sarcoma_risk.synthetic.mri`, :mod:`~sarcoma_risk.synthetic.wsi`) and writes ``manifest.csv``
and ``truth.json``. Importing this package is cheap: each name below loads its module on first use.
"""

from importlib import import_module
from typing import Any

#: Where each public name lives; loaded on first use (module ``__getattr__``), so that importing a
#: light submodule (``model``, ``difficulty``) does not load the renderers' SimpleITK, tifffile and shapely.
_NAMES = {
    "PhantomCohort": "cohort", "Size": "cohort", "SplitRule": "cohort", "generate_cohort": "cohort",
    "plan_cohort": "cohort", "Difficulty": "difficulty", "HardGenerativeModel": "difficulty",
    "GenerativeModel": "model", "SampledCase": "model", "image_ceiling": "ceiling", "reader_ceiling": "ceiling",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_NAMES[name]}"), name)
