"""One exception base for the whole suite.

Every subclass also inherits the built-in exception that fits, so callers can catch either
``SarcomaRiskError`` or the usual ``ValueError``/``KeyError``/``FileNotFoundError``. Messages name
the file or field, what was found and what is expected.
"""

from __future__ import annotations


class SarcomaRiskError(Exception):
    """Base of every error raised on purpose by SarcomaRisk."""


class InvalidInput(SarcomaRiskError, ValueError):
    """A value or file does not meet what is expected (the message says which and why)."""


class InvalidCaseId(InvalidInput):
    """A case id that does not match the pseudonymous id pattern."""


class InvalidClinicalData(InvalidInput):
    """Clinical values out of range, of an unknown category, or missing."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class InvalidOutcome(InvalidInput):
    """Survival times/events that cannot be used (negative times, NaN, no events...)."""


class InvalidManifest(InvalidInput):
    """A cohort manifest with missing columns, bad rows or unreadable files."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class InvalidImage(InvalidInput):
    """An MRI or mask that cannot be used (unreadable, 2D, NaN, empty mask, no overlap...)."""


class InvalidSlide(InvalidInput):
    """A whole-slide image that cannot be read or used (corrupt, truncated, no MPP, no tissue...)."""


class InvalidAnnotation(InvalidInput):
    """Malformed GeoJSON, or an annotation that lies outside its slide."""


class InvalidModel(InvalidInput):
    """A saved model (JSON or checkpoint) whose content is inconsistent or of the wrong kind."""


class CaseNotFound(SarcomaRiskError, KeyError):
    """No case with this id in the store."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else "case not found"


class StaleRevision(SarcomaRiskError, RuntimeError):
    """A section was changed by someone else since it was read; the update was refused."""


class StoreError(SarcomaRiskError, OSError):
    """The case store cannot be opened or written (path, permissions, read-only mode, corruption)."""


class ReadOnlyStore(StoreError):
    """A write was attempted on a store opened with mode="r"."""


class StoreUnavailable(StoreError):
    """The database or the case-record server cannot be reached now; nothing was written. Try again."""


class AuthenticationRequired(SarcomaRiskError, PermissionError):
    """No API token, or one that is unknown, expired or revoked (HTTP 401)."""


class PermissionDenied(SarcomaRiskError, PermissionError):
    """The authenticated user's role does not allow this (HTTP 403)."""


class WeightsError(SarcomaRiskError, ValueError):
    """A weights file is missing from its manifest, or its content does not match the manifest."""


class WeightsNotFound(WeightsError, FileNotFoundError):
    """A weights file or manifest entry does not exist."""


class TamperedWeights(WeightsError):
    """A weights file whose sha256 differs from the one recorded in its manifest."""


class MissingDependency(SarcomaRiskError, ImportError):
    """An optional dependency (OpenSlide, paquo, QuPath, ...) is not installed; says how to get it."""


class OutputError(SarcomaRiskError, OSError):
    """An output folder that cannot be used: not empty, not writable, or the disk is full."""


class DeviceUnavailable(SarcomaRiskError, RuntimeError):
    """A device (CUDA, MPS) was asked for that this machine or this torch build does not have; says which."""


class ClusterError(SarcomaRiskError, ConnectionError):
    """A Dask cluster that cannot run the work: unreachable, without workers, or with another SarcomaRisk."""
