"""The module's workflow: what runs after Compute, what runs next, and what the panel is told.

A :class:`WorkflowController` starts the radiology scoring, polls the running process on each
tick of a timer (the widget's ``QTimer``; a loop in tests), passes the process's log lines on in
the order they were written and, once the scoring succeeded, starts the fusion when the case record
holds what the full fusion model needs (clinical data and the pathology score). It tells the panel
what happened through a :class:`WorkflowView`; it never blocks and never opens a dialog itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .errors import ScoringCancelled, ScoringFailed
from .runner import CliProcess
from .status import read_case_status
from .validation import ScoringInputs
from .workflow import DEFAULT_TIMEOUT_S, RadiologyResult, RadiologyScoring, start_fusion

#: Lines of a failed scorer's log repeated just above its error, so the cause is in view.
FAILURE_LOG_LINES = 20

#: What the controller runs: a scoring run, or a plain command (fusion).
Job = RadiologyScoring | CliProcess


class WorkflowView(Protocol):
    """What the controller asks of the panel (the Slicer widget; a recorder in tests)."""

    def log(self, line: str) -> None:
        """Append one line to the module's log."""

    def show_log(self) -> None:
        """Open the log, where a failure's details are."""

    def show_error(self, message: str, details: str) -> None:
        """Tell the user that a run failed (a dialog in Slicer), with the log as details."""

    def running_changed(self, running: bool) -> None:
        """A job started or ended: update the controls; call :meth:`WorkflowController.tick` while running."""

    def scored(self, result: RadiologyResult) -> None:
        """Show a new radiology result (parameter node, slice views)."""

    def record_changed(self) -> None:
        """The case record changed: refresh the list of cases and the case's status."""


class WorkflowController:
    """Runs the module's jobs one at a time over nodes of ``scene`` and reports to ``view``.

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene holding the selected nodes; the Grad-CAM node is added to it.
    view : WorkflowView
        The panel to report to.
    python_executable : str or None
        The Python that runs the ``sarcoma-risk`` commands (default: ``PythonSlicer`` when present).
    python_path : sequence of str
        Folders the commands need on ``PYTHONPATH`` (where an installed extension keeps the core).
    """

    def __init__(self, scene: Any, view: WorkflowView, *, python_executable: str | None = None,
                 python_path: Sequence[str] = ()) -> None:
        self.scene = scene
        self.view = view
        self.python_executable = python_executable
        self.python_path = tuple(python_path)
        self._job: Job | None = None
        self._on_finished: Callable[[Any], None] | None = None
        # The run's case store (a path or a server URL) and weights: fusion reads the record the
        # scoring has just written, even when the settings change while the scorer runs.
        self._store_path: str | None = None
        self._weights_dir: Path | None = None

    @property
    def running(self) -> bool:
        """True while a job (scoring or fusion) runs."""
        return self._job is not None

    # ---- what the panel forwards -------------------------------------------------------------

    def compute(self, inputs: ScoringInputs, *, store_path: str | Path | None = None,
                weights_dir: str | Path | None = None, timeout_s: float | None = None, device: str = "auto") -> None:
        """Check and export the inputs and start the scorer (on ``device``); then poll with :meth:`tick`.

        Raises :class:`InvalidInput` (or a subclass) when the selection cannot be scored, and
        :class:`ScoringFailed` when a job already runs or the scorer cannot start; nothing runs then.
        """
        if self.running:
            raise ScoringFailed("a scoring run is already in progress; wait for it to finish or cancel it")
        job = RadiologyScoring(self.scene, inputs, python_executable=self.python_executable,
                               store_path=store_path, weights_dir=weights_dir,
                               timeout_s=timeout_s or DEFAULT_TIMEOUT_S, python_path=self.python_path,
                               device=device)
        lines = job.start()
        self._store_path, self._weights_dir = job.store_path, job.weights_dir
        for line in lines:
            self.view.log(line)
        self._run(job, self._scoring_finished)

    def tick(self) -> None:
        """Pass on the running job's new log lines; once it has ended, act on its outcome."""
        job = self._job
        if job is None:
            return
        for line in job.poll():
            self.view.log(line)
        if not job.finished:
            return
        on_finished = self._on_finished
        self._job = self._on_finished = None
        self.view.running_changed(False)
        on_finished(job)

    def cancel(self) -> None:
        """Ask the running job to stop; its end is reported by :meth:`tick` as usual."""
        if self._job is not None:
            self.view.log("Cancelling...")
            self._job.cancel()

    def stop(self) -> None:
        """Stop the running job at once and forget it, reporting nothing (the scene or panel is closing)."""
        job, self._job, self._on_finished = self._job, None, None
        if job is not None:
            job.cancel()
            job.close()

    # ---- what runs next ----------------------------------------------------------------------

    def _run(self, job: Job, on_finished: Callable[[Any], None]) -> None:
        self._job = job
        self._on_finished = on_finished
        self.view.running_changed(True)

    def _scoring_finished(self, job: RadiologyScoring) -> None:
        try:
            result = job.finish()
        except ScoringCancelled as exc:  # the user's choice: said in the log, no dialog
            self.view.log(str(exc))
            return
        except (RuntimeError, ValueError, OSError) as exc:  # SarcomaRisk errors derive from these
            log = list(getattr(exc, "log", []))
            for line in log[-FAILURE_LOG_LINES:]:
                self.view.log(line)
            self.view.show_log()
            self.view.show_error(f"Radiology scoring failed.\n\n{exc}", "\n".join(log))
            return
        self.view.scored(result)
        for warning in result.warnings:
            self.view.log(f"warning: {warning}")
        self.view.log(f"Saved the radiology score of case {result.case_id} in the case record (scored by the "
                      f"{result.model_label} model, {result.model}).")
        self.view.record_changed()
        self._start_fusion_if_ready(result.case_id)

    def _start_fusion_if_ready(self, case_id: str) -> None:
        """Fuse when the record holds all three modalities, as the published model needs."""
        try:
            status = read_case_status(self._store_path, case_id)
        except (ValueError, OSError):  # an unusable store: the status box already says so
            return
        if not status.ready_for_fusion:
            return
        self.view.log("The record holds clinical data and the pathology score: computing the fused risk...")
        try:
            job = start_fusion(case_id, python_executable=self.python_executable, store_path=self._store_path,
                               weights_dir=self._weights_dir, python_path=self.python_path)
        except RuntimeError as exc:  # CliProcess's messages begin with its title: "Fusion could not start ..."
            self.view.log(str(exc))
            return
        self._run(job, self._fusion_finished)

    def _fusion_finished(self, job: CliProcess) -> None:
        try:
            job.json()
        except RuntimeError as exc:  # the radiology result stands; the status box says fusion is missing
            self.view.log(str(exc))  # "Fusion failed: ...", "Fusion stopped with exit code ..."
            self.view.show_log()
        finally:
            job.close()
        self.view.record_changed()
