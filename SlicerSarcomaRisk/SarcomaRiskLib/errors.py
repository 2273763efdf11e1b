"""Errors of the Slicer adapter that have no counterpart in the core.

Input problems use the core's classes (``InvalidInput``, ``InvalidImage``, ``InvalidCaseId``), so a
dialog shows the same message the command line would print. What is left is the separate scoring
process: it can fail, run out of time, or be cancelled by the user.
"""

from __future__ import annotations

from sarcoma_risk.errors import SarcomaRiskError


class ScoringFailed(SarcomaRiskError, RuntimeError):
    """The scoring process ended with an error; the message says what it reported.

    ``log`` holds the process's last lines of output for the details pane of a dialog.
    """

    def __init__(self, message: str, log: list[str] | None = None) -> None:
        super().__init__(message)
        self.log = list(log or [])


class ScoringTimeout(ScoringFailed, TimeoutError):
    """The scoring process ran past its time limit and was stopped."""


class ScoringCancelled(ScoringFailed):
    """The user stopped the scoring process before it finished."""
