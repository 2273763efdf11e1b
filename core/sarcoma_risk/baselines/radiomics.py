"""First-order radiomics: intensity statistics of each MRI sequence inside the tumor mask.

Scanners differ in intensity scale and offset, so each sequence is first divided by the median of
the non-tumor foreground of its own image (voxels above a quarter of the image's 99th percentile,
outside the mask), the crude normalisation a first-order study would use. Then SimpleITK's
``LabelIntensityStatisticsImageFilter`` gives, inside the mask: mean, standard deviation, median,
skewness and kurtosis. No texture, shape or learned feature: a negative control.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.radiology.io import read_case

STATISTICS = ("mean", "sd", "median", "skewness", "kurtosis")


def _normalised(image, mask_array: np.ndarray, where: str):
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    foreground = array > 0.25 * np.percentile(array, 99)
    reference = array[foreground & ~mask_array]
    if reference.size == 0 or not np.median(reference) > 0:
        raise InvalidInput(f"{where}: no foreground outside the tumor mask to normalise the intensities by")
    out = sitk.GetImageFromArray(array / float(np.median(reference)))
    out.CopyInformation(image)
    return out


def first_order_features(t2fs: str | Path, mask: str | Path, t1ce: str | Path | None = None, *,
                         segment: str | None = None) -> dict[str, float]:
    """``{"<sequence>_<statistic>": value}`` for T2FS (and T1CE when given) inside the tumor mask.

    Statistics: :data:`STATISTICS`, on intensities normalised by the non-tumor foreground median.
    """
    case = read_case(t2fs, mask, t1ce, segment=segment)
    mask_image = sitk.Cast(case.mask > 0, sitk.sitkUInt8)
    mask_array = sitk.GetArrayViewFromImage(mask_image).astype(bool)
    if not mask_array.any():
        raise InvalidInput(f"{mask}: the tumor mask is empty; first-order features need tumor voxels")
    features: dict[str, float] = {}
    for name, image in case.images.items():
        stats = sitk.LabelIntensityStatisticsImageFilter()
        stats.Execute(mask_image, _normalised(image, mask_array, f"{t2fs if name == 't2fs' else t1ce}"))
        values = {"mean": stats.GetMean(1), "sd": stats.GetStandardDeviation(1), "median": stats.GetMedian(1),
                  "skewness": stats.GetSkewness(1), "kurtosis": stats.GetKurtosis(1)}
        features.update({f"{name}_{k}": float(v) for k, v in values.items()})
    return features
