"""The MRI half of the method: tumor region of the preoperative MRI to a radiology score.

The pipeline has the suite's one shape, one module per step:

- :mod:`~sarcoma_risk.radiology.io`: read DICOM series, NIfTI, NRRD and MHA volumes and the tumor mask
  (labelmap or 3D Slicer ``.seg.nrrd``) with their physical geometry (:mod:`.dicom`, :mod:`.segments`,
  :mod:`.geometry` hold the format and geometry details);
- :mod:`~sarcoma_risk.radiology.preprocess`: crop, isotropic resampling, fixed-size patch, robust
  intensity normalisation, mask channel (parameters in :class:`~sarcoma_risk.radiology.config.PreprocessConfig`);
- :mod:`~sarcoma_risk.radiology.model`: a compact 3D CNN with CBAM channel and spatial attention whose
  one output is a log relative hazard;
- :mod:`~sarcoma_risk.radiology.train`: Cox partial likelihood training with augmentation and early
  stopping (:mod:`.losses`, :mod:`.augment`), on any device, with checkpoints and data-parallel ranks
  (:mod:`sarcoma_risk.runtime`), cross-fitting over a cohort manifest (:mod:`.cohort`, its run summary
  in :mod:`.summary`);
- :mod:`~sarcoma_risk.radiology.infer`: score and Grad-CAM (:mod:`.gradcam`) in the original MRI geometry,
  and the precision check of reduced-precision scoring; :mod:`.record` turns a score into the case record's
  radiology section (``score-mri``, ``score-cohort``).

Importing this package is cheap; torch is imported only by the modules that need it.
"""
