"""Honest baselines: hand-made imaging features in a Cox model, the negative controls the CNNs must beat.

:mod:`~sarcoma_risk.baselines.radiomics` computes first-order intensity statistics inside the tumor
mask (SimpleITK's label intensity statistics; pyradiomics has no wheel for this environment, so it
is not used); :mod:`~sarcoma_risk.baselines.colour` computes optical-density and H&E-deconvolved
stain statistics over the tumor tissue of a slide; :mod:`~sarcoma_risk.baselines.model` fits a
ridge Cox model on them (fit on the development centre, cross-fitted there, scored on validation);
:mod:`~sarcoma_risk.baselines.comparison` puts them beside the fusion's sub-models and the oracle.
"""
