"""Cox fusion of clinical features with the radiology and pathology scores, risk groups, validation.

Modules, one job each (importing this package imports none of them):

==============  =================================================================================
model           :class:`~sarcoma_risk.fusion.model.CoxFusion`: one Cox sub-model per modality subset
submodel        one fitted sub-model and its development figures, as typed data
modelcheck      checking a saved CoxFusion (JSON) field by field; its format tag
cox             one fitted Cox model as plain numbers (lifelines underneath)
selection       the ridge penalizer by cross-validation
groups          risk-group cutoffs (median, maximally selected log-rank) and group comparison
table           the fusion table (outcome, clinical values, imaging scores) from a manifest or a record
metrics         Uno's C, cumulative/dynamic AUC, Brier score, with case weights (Harrell's C and the
                imaging score tables are survival primitives: :mod:`sarcoma_risk.survival`)
bootstrap       95% bootstrap intervals of every metric, all resamples at once
calibration     predicted vs Kaplan-Meier observed survival at a horizon
decision        decision curves (net benefit)
nomogram        the nomogram of a sub-model as data
evaluation      every figure of the validation report, as data
plots, report   matplotlib figures (Agg) and the self-contained HTML + JSON report
record          the fusion section of one case record
loading         loading a saved model (file or verified weights registry)
==============  =================================================================================
"""
