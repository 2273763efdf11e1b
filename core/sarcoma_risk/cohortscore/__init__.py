"""Cohort-scale scoring: every MRI and slide of a cohort manifest into the case records (``score-cohort``).

One module per job:

- :mod:`.jobs`: the units of a run (a case's radiology or pathology section) and their jobs (the MRI,
  each slide), planned from the manifest with what each record already holds;
- :mod:`.worker`: one job on a worker, scored exactly as ``score-mri``/``score-slide`` score one case,
  or skipped when the record already holds its result (same input content, same weights);
- :mod:`.engine`: where the jobs run: in this process (the default) or on a Dask cluster;
- :mod:`.writer`: the one place that opens the case store and writes the units;
- :mod:`.runlog`: the run-metadata JSON (versions, arguments, weights, each unit's outcome);
- :mod:`.run`: :func:`~.run.score_cohort`, the whole run.

Importing this package is cheap: torch, OpenSlide and Dask are imported where they are used.
"""
