"""The shipped weights: trained end to end on a phantom cohort, validated, described and registered.

:mod:`~sarcoma_risk.release.config` holds every setting of the run (cohort, radiology, pathology,
fusion, evaluation); :mod:`~sarcoma_risk.release.train_all` runs the existing training and
evaluation commands in order (``sarcoma-risk train all``, ``make weights``);
:mod:`~sarcoma_risk.release.assemble` copies the weight files into the output folder and registers
them with their training data and validation figures, and the release's own record
(:mod:`~sarcoma_risk.release.record`); :mod:`~sarcoma_risk.release.validation_cohort`
keeps what the demo needs to draw the validation cohort's Kaplan-Meier curves;
:mod:`~sarcoma_risk.release.model_card` writes ``MODEL_CARD.md``.
"""
