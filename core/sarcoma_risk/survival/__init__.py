"""Survival primitives shared by radiology, pathology, fusion and the phantom cohort.

One job per module (importing this package imports none of them):

============  ====================================================================================
outcome       the outcome type (months > 0, event) and the one validator every fitter and metric calls
concordance   Harrell's C (one argument order: time, event, risk; NaN when no pair is comparable),
              for many case weightings at once, and the pairwise matrices other metrics build on
folds         stratified folds and stratified splits, strata dealt in the sorted order of their labels
crossfit      the cross-fitting loop: each case scored by a model fitted on the other folds
scores        the imaging score tables (``<modality>_scores.csv``) cross-fitting hands to fusion:
              writer and reader
============  ====================================================================================
"""
