"""Clinical records as Cox model columns: reference levels and standardization learned on development data.

:class:`ClinicalEncoder` is saved and reloaded as plain JSON (:meth:`ClinicalEncoder.to_dict`,
:meth:`ClinicalEncoder.from_dict`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput, InvalidModel

#: Features the fusion model uses by default and their reference levels (the usual baseline in
#: sarcoma nomograms: the lower-risk level), so hazard ratios read as "versus the reference".
DEFAULT_FEATURES: tuple[str, ...] = (
    "age_years", "tumor_size_cm", "depth", "fnclcc_grade", "margin", "presentation", "radiotherapy",
)
REFERENCE_LEVELS: dict[str, str] = {
    "sex": "female", "depth": "superficial", "site": "lower_extremity",
    "subtype": "undifferentiated_pleomorphic_sarcoma", "margin": "R0", "radiotherapy": "none",
    "chemotherapy": "no", "presentation": "primary", "fnclcc_grade": "1", "nodal_status": "N0", "metastasis": "M0",
}
#: Numeric variables treated as categories in a Cox model.
CATEGORICAL_NUMBERS = ("fnclcc_grade",)
ENCODER_FORMAT = "sarcoma-risk-clinical-encoder/1"


class ClinicalEncoder:
    """Clinical records -> Cox design matrix.

    Numeric variables are standardized with the mean and standard deviation of the development data;
    categorical ones are one-hot coded against a reference level: the conventional baseline of
    :data:`REFERENCE_LEVELS` (the lower-risk level) when the development data hold it at least
    ``min_level_count`` times, else the most frequent level. Levels seen fewer than
    ``min_level_count`` times are pooled with the reference (their hazard cannot be estimated), and
    so are levels first seen after fitting. Column names read ``variable`` or ``variable[level]``.

    Parameters
    ----------
    features : sequence of str
        Clinical variable names (see :data:`VARIABLES`).
    min_level_count : int
        Smallest development count for a level to get its own column.
    """

    def __init__(self, features: Sequence[str] = DEFAULT_FEATURES, min_level_count: int = 5) -> None:
        self.features = tuple(features)
        self.min_level_count = min_level_count

    def _check_params(self) -> None:
        unknown = [f for f in self.features if f not in VARIABLES]
        if unknown:
            raise InvalidInput(f"features: unknown clinical variable(s) {unknown}; known: {', '.join(VARIABLES)}")
        if not self.features or len(set(self.features)) != len(self.features):
            raise InvalidInput(f"features: {list(self.features)} must be a non-empty list without repeats")
        if isinstance(self.min_level_count, bool) or not isinstance(self.min_level_count, int) or self.min_level_count < 1:
            raise InvalidInput(f"min_level_count: {self.min_level_count!r} must be a whole number >= 1")

    @staticmethod
    def _is_categorical(name: str) -> bool:
        return VARIABLES[name].kind == "category" or name in CATEGORICAL_NUMBERS

    def _values(self, records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
        values = []
        for i, rec in enumerate(records):
            value = rec.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise InvalidClinicalData(f"record {i}: {name} is missing; the clinical model needs it")
            if self._is_categorical(name):
                # A grade read back from a table may be 2.0; it is the level "2".
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                values.append(str(value))
            else:
                try:
                    values.append(float(value))
                except (TypeError, ValueError):
                    raise InvalidClinicalData(f"record {i}: {name} = {value!r} is not a number") from None
        return values

    def fit(self, records: Sequence[Mapping[str, Any]]) -> "ClinicalEncoder":
        """Learn standardization, reference levels and levels from validated development records; returns self."""
        self._check_params()
        if len(records) < 2:
            raise InvalidClinicalData(f"need at least 2 development records to fit the encoder, got {len(records)}")
        numeric: dict[str, tuple[float, float]] = {}
        levels: dict[str, list[str]] = {}
        reference: dict[str, str] = {}
        for name in self.features:
            values = self._values(records, name)
            if self._is_categorical(name):
                counts: dict[str, int] = {}
                for v in values:
                    counts[v] = counts.get(v, 0) + 1
                reference[name], levels[name] = self._choose_levels(name, counts)
            else:
                mean = sum(values) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                numeric[name] = (mean, sd if sd > 0 else 1.0)  # a constant column stays 0, not NaN
        self.numeric_, self.levels_, self.reference_ = numeric, levels, reference
        return self

    def _choose_levels(self, name: str, counts: Mapping[str, int]) -> tuple[str, list[str]]:
        """Reference level and the levels with their own column, from the development level counts."""
        ref = REFERENCE_LEVELS.get(name)
        if counts.get(ref, 0) < self.min_level_count:
            ref = max(counts, key=lambda k: (counts[k], k))
        return ref, sorted(k for k, c in counts.items() if k != ref and c >= self.min_level_count)

    def sufficient_statistics(self, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """What :meth:`from_statistics` needs, as sums that add up across centres.

        ``{"levels": {feature: {level: count}}, "numeric": {feature: (n, sum, sum of squares)}}``.
        """
        self._check_params()
        levels: dict[str, dict[str, int]] = {}
        numeric: dict[str, tuple[int, float, float]] = {}
        for name in self.features:
            values = self._values(records, name)
            if self._is_categorical(name):
                levels[name] = {v: values.count(v) for v in sorted(set(values))}
            else:
                arr = [float(v) for v in values]
                numeric[name] = (len(arr), math.fsum(arr), math.fsum(v * v for v in arr))
        return {"levels": levels, "numeric": numeric}

    @classmethod
    def from_statistics(cls, features: Sequence[str], min_level_count: int,
                        statistics: Mapping[str, Mapping[str, Any]]) -> "ClinicalEncoder":
        """A fitted encoder from summed :meth:`sufficient_statistics` (the same rule as :meth:`fit`)."""
        enc = cls(features, min_level_count)
        enc._check_params()
        numeric: dict[str, tuple[float, float]] = {}
        levels: dict[str, list[str]] = {}
        reference: dict[str, str] = {}
        for name in enc.features:
            if cls._is_categorical(name):
                counts = {str(k): int(v) for k, v in statistics["levels"][name].items() if int(v) > 0}
                if sum(counts.values()) < 2:
                    raise InvalidClinicalData(f"{name}: {sum(counts.values())} development record(s); need at least 2")
                reference[name], levels[name] = enc._choose_levels(name, counts)
            else:
                n, total, squares = statistics["numeric"][name]
                if n < 2:
                    raise InvalidClinicalData(f"{name}: {n} development record(s); need at least 2")
                mean = total / n
                sd = math.sqrt(max(squares - n * mean * mean, 0.0) / (n - 1))
                numeric[name] = (mean, sd if sd > 0 else 1.0)
        enc.numeric_, enc.levels_, enc.reference_ = numeric, levels, reference
        return enc

    def _check_fitted(self) -> None:
        if not hasattr(self, "numeric_"):
            raise InvalidModel("ClinicalEncoder: not fitted; call fit() or from_dict() first")

    @property
    def columns_(self) -> list[str]:
        """Design-matrix column names, in order."""
        self._check_fitted()
        cols = []
        for name in self.features:
            if name in self.numeric_:
                cols.append(name)
            else:
                cols.extend(f"{name}[{level}]" for level in self.levels_[name])
        return cols

    def transform(self, records: Sequence[Mapping[str, Any]]):
        """Design matrix as a pandas DataFrame with :attr:`columns_`, one row per record."""

        self._check_fitted()
        data: dict[str, list[float]] = {}
        for name in self.features:
            values = self._values(records, name)
            if name in self.numeric_:
                mean, sd = self.numeric_[name]
                data[name] = [(v - mean) / sd for v in values]
            else:
                for level in self.levels_[name]:
                    data[f"{name}[{level}]"] = [1.0 if v == level else 0.0 for v in values]
        return pd.DataFrame(data, columns=self.columns_, index=range(len(records)))

    def to_dict(self) -> dict[str, Any]:
        """The fitted encoder as plain JSON data (see :meth:`from_dict`)."""
        self._check_fitted()
        return {
            "format": ENCODER_FORMAT,
            "features": list(self.features),
            "min_level_count": self.min_level_count,
            "numeric": {k: list(v) for k, v in self.numeric_.items()},
            "levels": {k: list(v) for k, v in self.levels_.items()},
            "reference": dict(self.reference_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClinicalEncoder":
        """Rebuild a fitted encoder; raises :class:`InvalidModel` for anything inconsistent."""
        if not isinstance(data, Mapping) or data.get("format") != ENCODER_FORMAT:
            raise InvalidModel(f"clinical encoder: expected an object with format {ENCODER_FORMAT!r}")
        try:
            enc = cls(list(data["features"]), data["min_level_count"])
            enc._check_params()
            enc.numeric_ = {str(k): (float(v[0]), float(v[1])) for k, v in data["numeric"].items()}
            enc.levels_ = {str(k): [str(x) for x in v] for k, v in data["levels"].items()}
            enc.reference_ = {str(k): str(v) for k, v in data["reference"].items()}
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            raise InvalidModel(f"clinical encoder: malformed ({type(exc).__name__}: {exc})") from None
        stray = sorted((set(enc.numeric_) | set(enc.levels_) | set(enc.reference_)) - set(enc.features))
        if stray:
            raise InvalidModel(f"clinical encoder: entries for {stray}, which are not among its features")
        for name in enc.features:
            categorical = cls._is_categorical(name)
            if categorical and (name not in enc.levels_ or name not in enc.reference_ or name in enc.numeric_):
                raise InvalidModel(f"clinical encoder: categorical feature {name!r} needs levels and a reference")
            if not categorical and (name not in enc.numeric_ or name in enc.levels_):
                raise InvalidModel(f"clinical encoder: numeric feature {name!r} needs a mean and standard deviation")
            if not categorical and not (math.isfinite(enc.numeric_[name][0]) and enc.numeric_[name][1] > 0
                                        and math.isfinite(enc.numeric_[name][1])):
                raise InvalidModel(f"clinical encoder: {name!r} needs a finite mean and a standard deviation > 0")
            if categorical and enc.reference_[name] in enc.levels_[name]:
                raise InvalidModel(f"clinical encoder: {name!r} lists its reference level among its columns")
        return enc
