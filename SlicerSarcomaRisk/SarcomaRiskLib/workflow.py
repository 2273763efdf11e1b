"""The radiologist's workflow: selected nodes in, radiology score and Grad-CAM overlay out.

One :class:`RadiologyScoring` is one run: check the inputs, export them to a temporary folder,
run ``sarcoma-risk score-mri`` in a separate process (which writes the radiology section of the
case record), then load the Grad-CAM back as a volume node shown over the MRI it lies on (the T2
when one is selected, else the T1CE). It can be driven without blocking (``start``, ``poll``,
``finish``: what the Slicer widget does from a timer) or in one call (``run``: scripts and tests).
Bad input is refused before anything is written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sarcoma_risk.errors import InvalidImage, InvalidInput, StoreError
from sarcoma_risk.provenance import sha256_file

from .errors import ScoringCancelled, ScoringFailed
from .export import ExportedInputs, export_inputs
from .overlay import load_gradcam, show_overlay
from .runner import CliProcess, default_python_executable
from .validation import ScoringInputs, check_inputs

#: Seconds a scoring run may take; the first run in a fresh process also imports torch.
DEFAULT_TIMEOUT_S = 600.0
#: The scorer's options as the module's controls, for its error messages.
CONTROL_NAMES = {"--t2fs": "the T2 volume", "--t1ce": "the T1CE volume", "--weights": "the weights folder (Advanced)",
                 "--store": "the case store (Advanced)",
                 "use --device cpu (or auto)": "set Device (Advanced) to cpu or auto"}
#: The ``--device`` choices of the scorer, as the module offers them.
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class RadiologyResult:
    """The outcome of one scoring run.

    ``score`` is the log relative hazard (higher = riskier); ``percentile`` places it in the
    development cohort (0-100); ``model`` names the radiology model that scored the case, the one
    of the sequences given (``radiology-t2fs+t1ce``, ``radiology-t2fs``, ``radiology-t1ce``;
    :mod:`sarcoma_risk.sequences`), and ``model_label`` says it for people ("T2FS + T1CE"); ``section``
    is the radiology section as the scorer reported it. ``reference_node`` is the volume the
    Grad-CAM lies on and is shown over: the T2 when one was selected, else the T1CE.
    """

    case_id: str
    score: float
    percentile: float | None
    tumor_volume_ml: float | None
    sequences: tuple[str, ...]
    model: str
    model_label: str
    gradcam_sha256: str
    gradcam_node: Any
    reference_node: Any
    section: Mapping[str, Any]
    warnings: tuple[str, ...] = field(default=())


class RadiologyScoring:
    """One scoring run over nodes of ``scene``.

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene holding the selected nodes; the Grad-CAM node is added to it.
    inputs : ScoringInputs
        The case id, the T2 and/or T1CE volume, segmentation and segment.
    python_executable : str or None
        The Python that runs the scorer (default: ``PythonSlicer`` when present, else this Python).
    store_path : path or store URL, or None
        The case store passed to the scorer: a SQLite file or the department's server
        (``https://HOST:PORT``, with the token from ``SARCOMA_RISK_TOKEN`` or the per-user token
        file, which the scorer finds itself). None: the scorer's default.
    weights_dir : path or None
        Weights folder passed to the scorer (None: its default).
    timeout_s : float
        Wall-clock limit of the scoring process.
    python_path : sequence of str
        Folders the scoring process needs on ``PYTHONPATH``.
    device : {"auto", "cpu", "cuda", "mps"}
        Where the scorer runs the network (``--device``); auto takes a CUDA GPU when there is one.
    """

    def __init__(self, scene: Any, inputs: ScoringInputs, *, python_executable: str | None = None,
                 store_path: str | Path | None = None, weights_dir: str | Path | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, python_path: Sequence[str] = (), device: str = "auto") -> None:
        if device not in DEVICES:
            raise InvalidInput(f"device: {device!r} is not one of {', '.join(DEVICES)}")
        self.scene = scene
        self.inputs = inputs
        self.python_executable = python_executable or default_python_executable()
        self.store_path = str(store_path) if store_path is not None else None
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        self.timeout_s = timeout_s
        self.python_path = tuple(python_path)
        self.device = device
        self._folder: Path | None = None
        self._exported: ExportedInputs | None = None
        self._process: CliProcess | None = None
        self._revision_before = 0

    # ---- driving it --------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Check and export the inputs, then start the scorer; returns the first log lines.

        Raises :class:`InvalidInput` (or a subclass) with a message for a dialog when the inputs
        are not usable; nothing is written then.
        """
        if self._process is not None:
            raise ScoringFailed("this scoring run was already started; create a new one")
        check_inputs(self.inputs)
        self._revision_before = self._radiology_revision()
        self._folder = Path(tempfile.mkdtemp(prefix="sarcoma-risk-"))
        try:
            self._exported = export_inputs(self.scene, self.inputs, self._folder)
            self._process = CliProcess(self.python_executable, self._arguments(), title="Radiology scoring",
                                       timeout_s=self.timeout_s, python_path=self.python_path).start()
        except BaseException:
            self.close()
            raise
        volumes = " and ".join(name for name, path in (("T2", self._exported.t2), ("T1CE", self._exported.t1ce))
                               if path is not None)
        return [f"warning: {w}" for w in self._exported.warnings()] + [
            f"Exported the {volumes} volume and the tumor segment "
            f"({self._exported.segment_volume_ml:.1f} ml); scoring case {self.inputs.case_id}..."]

    def _arguments(self) -> list[str]:
        exported = self._exported
        args = ["score-mri", "--case", self.inputs.case_id, "--mask", str(exported.mask),
                "--gradcam", str(self._folder / "gradcam.nrrd"), "--device", self.device, "--json"]
        if exported.t2 is not None:
            args += ["--t2fs", str(exported.t2)]
        if exported.t1ce is not None:
            args += ["--t1ce", str(exported.t1ce)]
        if self.store_path is not None:
            args += ["--store", str(self.store_path)]
        if self.weights_dir is not None:
            args += ["--weights", str(self.weights_dir)]
        return args

    def poll(self) -> list[str]:
        """New log lines of the scorer (never blocks)."""
        return self._process.poll() if self._process is not None else []

    @property
    def finished(self) -> bool:
        return self._process is not None and self._process.finished

    def cancel(self) -> None:
        if self._process is not None:
            self._process.cancel()

    def finish(self) -> RadiologyResult:
        """Read the scorer's result, load the Grad-CAM and show it over the reference volume; cleans up.

        Raises :class:`ScoringFailed` (or :class:`ScoringCancelled`, :class:`ScoringTimeout`)
        with the scorer's own error message when it did not succeed.
        """
        if self._process is None:
            raise ScoringFailed("scoring was not started")
        try:
            try:
                output = self._process.json()
            except ScoringCancelled as exc:
                changed = self._radiology_revision() != self._revision_before
                raise ScoringCancelled(
                    f"{exc} " + ("The scorer had already saved its result in the case record."
                                 if changed else "The case record was not changed."), exc.log) from None
            except ScoringFailed as exc:
                raise type(exc)(self._name_exported_files(str(exc)), exc.log) from None
            section = output.get("radiology", output) if isinstance(output, dict) else None
            if not isinstance(section, dict) or not isinstance(section.get("score"), (int, float)):
                raise ScoringFailed(f"Radiology scoring printed no score (got {str(output)[:200]})",
                                    self._process.log)
            saved = (f"The radiology score {section['score']:.3f} was saved in the case record, but its Grad-CAM "
                     "cannot be shown: ")
            gradcam = self._folder / "gradcam.nrrd"
            if not gradcam.is_file():
                raise ScoringFailed(saved + "the scorer wrote no Grad-CAM file", self._process.log)
            sha256 = sha256_file(gradcam)
            expected = section.get("gradcam_sha256")
            if expected and expected != sha256:
                raise ScoringFailed(saved + f"the file's sha256 {sha256[:12]}... differs from the one in the record "
                                    f"({str(expected)[:12]}...)", self._process.log)
            reference = self.inputs.reference
            try:
                node = load_gradcam(self.scene, gradcam, reference=reference, case_id=self.inputs.case_id,
                                    sha256=sha256)
            except InvalidImage as exc:
                raise ScoringFailed(saved + str(exc), self._process.log) from None
            show_overlay(self.scene, reference, node)
            return RadiologyResult(
                case_id=self.inputs.case_id, score=float(section["score"]),
                percentile=_optional_float(section.get("percentile")),
                tumor_volume_ml=_optional_float(section.get("tumor_volume_ml")),
                sequences=tuple(section.get("sequences") or ()), model=str(section.get("model")),
                model_label=_set_label(section.get("sequences")), gradcam_sha256=sha256, gradcam_node=node,
                reference_node=reference, section=section,
                warnings=tuple(self._exported.warnings()) + _gradcam_note(output))
        finally:
            self.close()

    def _name_exported_files(self, message: str) -> str:
        """Name the module's controls where the scorer's message names temporary files or its options."""
        exported = self._exported
        names = {str(exported.mask): f"the tumor segment (exported on the grid of the {exported.reference_role})"}
        for path, name in ((exported.t2, "the T2 volume"), (exported.t1ce, "the T1CE volume")):
            if path is not None:
                names[str(path)] = name
        names.update(CONTROL_NAMES)
        for text, name in names.items():
            message = message.replace(text, name)
        return message

    def wait(self, log: Callable[[str], None] | None = None,
             should_cancel: Callable[[], bool] | None = None) -> None:
        """Block until the scorer ends, passing its log lines to ``log``."""
        if self._process is None:
            raise ScoringFailed("scoring was not started")
        self._process.wait(log=log, should_cancel=should_cancel)

    def run(self, log: Callable[[str], None] | None = None,
            should_cancel: Callable[[], bool] | None = None) -> RadiologyResult:
        """Start, wait (passing log lines to ``log``) and finish in one call."""
        for line in self.start():
            if log is not None:
                log(line)
        self.wait(log=log, should_cancel=should_cancel)
        return self.finish()

    def close(self) -> None:
        """Stop the scorer if it still runs and delete the temporary folder."""
        if self._process is not None:
            self._process.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    @property
    def log(self) -> list[str]:
        return self._process.log if self._process is not None else []

    def _radiology_revision(self) -> int:
        from .status import read_case_status

        try:
            return read_case_status(self.store_path, self.inputs.case_id).revisions.get("radiology", 0)
        except StoreError:  # an unusable store is the scorer's to report, with its own message
            return 0


def start_fusion(case_id: str, *, python_executable: str | None = None, store_path: str | Path | None = None,
                 weights_dir: str | Path | None = None, timeout_s: float = 120.0,
                 python_path: Sequence[str] = ()) -> CliProcess:
    """Start ``sarcoma-risk fuse --case ID --json`` (fused risk from whatever the record holds)."""
    args = ["fuse", "--case", case_id, "--json"]
    if store_path is not None:
        args += ["--store", str(store_path)]
    if weights_dir is not None:
        args += ["--weights", str(weights_dir)]
    return CliProcess(python_executable or default_python_executable(), args, title="Fusion",
                      timeout_s=timeout_s, python_path=python_path).start()


def _set_label(sequences: Any) -> str:
    """How people call the sequence set of the model that scored ("T2FS + T1CE"), from the section's sequences."""
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.sequences import SET_LABELS, set_name

    try:
        return SET_LABELS[set_name(sequences or ())]
    except InvalidInput:  # a section of an earlier release: its sequences as given
        return " + ".join(str(s).upper() for s in sequences or ()) or "unknown sequences"


def _optional_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _gradcam_note(output: Any) -> tuple[str, ...]:
    """The scorer's reason why the Grad-CAM is 0 everywhere, as a warning to show (none when it shows something)."""
    note = output.get("gradcam_note") if isinstance(output, dict) else None
    return (str(note),) if note else ()
