"""The module's workflow decisions, driven as the widget drives them, on a real slicer-core scene.

The controller runs the real ``sarcoma-risk score-mri`` and ``fuse`` commands in separate processes
with a tiny radiology model trained on the phantom cohort. The widget's part is played by a view
that records what it is told, and by a loop that calls ``tick`` as the widget's timer does.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store
from sarcoma_risk.weights import WeightRegistry

CASE = "STS-0042"
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
#: Seconds between two ticks: the widget's timer interval (POLL_INTERVAL_MS in SarcomaRisk.py).
TICK_S = 0.2
#: What a finished scoring run logs last.
SAVED = (f"Saved the radiology score of case {CASE} in the case record (scored by the T2FS + T1CE model, "
         "radiology-t2fs+t1ce).")
#: Lines the launcher of the ordering test writes before the scorer starts.
LAUNCHER_LINES = 500


class RecordingView:
    """The panel as the controller sees it: every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def log(self, line: str) -> None:
        self.calls.append(("log", line))

    def show_log(self) -> None:
        self.calls.append(("show_log",))

    def show_error(self, message: str, details: str) -> None:
        self.calls.append(("show_error", message, details))

    def running_changed(self, running: bool) -> None:
        self.calls.append(("running", running))

    def scored(self, result) -> None:
        self.calls.append(("scored", result))

    def record_changed(self) -> None:
        self.calls.append(("record_changed",))

    @property
    def lines(self) -> list[str]:
        return [call[1] for call in self.calls if call[0] == "log"]

    @property
    def events(self) -> list[str]:
        """Everything but the log lines, e.g. ``["running=True", "running=False", "scored", ...]``."""
        return [f"running={call[1]}" if call[0] == "running" else call[0] for call in self.calls if call[0] != "log"]


def tick_until_idle(controller, limit_s: float = 300.0) -> None:
    """Tick as the widget's timer does (only while something runs) until nothing runs."""
    deadline = time.monotonic() + limit_s
    while controller.running:
        assert time.monotonic() < deadline, "the job did not end in time"
        controller.tick()
        time.sleep(TICK_S)


def provenance() -> dict:
    return Provenance("test", "0", None).to_dict()


def add_clinical_and_pathology(store: Path, *, pathology: bool = True) -> None:
    """A record with the chart and (unless told otherwise) the slide's score, as the coordinator and QuPath leave it."""
    with open_store(store, mode="a") as s:
        s.put_section(CASE, "clinical", {"values": {"age_years": 61, "tumor_size_cm": 9.5, "depth": "deep",
                                                    "fnclcc_grade": 3, "margin": "R1", "presentation": "primary",
                                                    "radiotherapy": "postoperative"},
                                         "provenance": provenance()})
        if pathology:
            s.put_section(CASE, "pathology", {"slides": [], "score": 0.3, "provenance": provenance()})


def case_ids(store: Path) -> list[str]:
    if not store.exists():
        return []
    with open_store(store, mode="r") as s:
        return s.case_ids()


def sections(store: Path) -> dict:
    with open_store(store, mode="r") as s:
        record = s.get(CASE)
    return {name: record.section(name) for name in ("clinical", "radiology", "pathology", "fusion")}


@pytest.fixture
def controller(scene):
    from SarcomaRiskLib import WorkflowController

    workflow = WorkflowController(scene, RecordingView(), python_executable=sys.executable)
    yield workflow
    workflow.stop()


@pytest.fixture
def inputs(loaded_case, segment_id):
    from SarcomaRiskLib import ScoringInputs

    t2, t1ce, segmentation = loaded_case
    return ScoringInputs(CASE, t2, segmentation, segment_id(segmentation, "Tumor"), t1ce)


@pytest.fixture(scope="module")
def weights_with_fusion(radiology_weights, tmp_path_factory):
    """The tiny radiology model and the shipped fusion model in one weights folder, as a release has them."""
    folder = tmp_path_factory.mktemp("weights_with_fusion")
    shutil.copytree(radiology_weights, folder, dirs_exist_ok=True)
    shipped = WeightRegistry(SHIPPED_WEIGHTS).entry("fusion")
    shutil.copy(SHIPPED_WEIGHTS / shipped["file"], folder / shipped["file"])
    WeightRegistry(folder).register("fusion", shipped["file"], kind=shipped["kind"], version=shipped["version"],
                                    config=shipped["config"])
    return folder


def test_log_lines_reach_the_view_in_the_order_the_process_wrote_them(scene, inputs, radiology_weights, tmp_path):
    """Through a launcher that writes many lines before it starts Python, as PythonSlicer is a launcher.

    The lines come faster than the timer ticks, so each tick passes on a batch of them.
    """
    from SarcomaRiskLib import WorkflowController

    launcher = tmp_path / "PythonLauncher"
    launcher.write_text(f'#!/bin/sh\nfor i in $(seq 1 {LAUNCHER_LINES}); do echo "launcher line $i" >&2; done\n'
                        f'exec "{sys.executable}" "$@"\n')
    launcher.chmod(0o755)
    controller = WorkflowController(scene, RecordingView(), python_executable=str(launcher))
    try:
        controller.compute(inputs, store_path=tmp_path / "cases.sqlite", weights_dir=radiology_weights,
                           timeout_s=300)
        tick_until_idle(controller)
    finally:
        controller.stop()

    lines = controller.view.lines
    assert lines[0].startswith("Exported the T2") and lines[-1] == SAVED
    # Then the launcher's lines, all of them and in order (the scorer's own log, if any, follows them).
    assert lines[1:LAUNCHER_LINES + 1] == [f"launcher line {i}" for i in range(1, LAUNCHER_LINES + 1)]


def test_a_scored_case_without_a_pathology_score_shows_its_result_and_starts_no_fusion(controller, inputs,
                                                                                      radiology_weights, tmp_path):
    store = tmp_path / "cases.sqlite"
    add_clinical_and_pathology(store, pathology=False)
    controller.compute(inputs, store_path=store, weights_dir=radiology_weights, timeout_s=300)
    assert controller.running and controller.view.events == ["running=True"]
    tick_until_idle(controller)

    view = controller.view
    assert view.events == ["running=True", "running=False", "scored", "record_changed"]
    result = next(call[1] for call in view.calls if call[0] == "scored")
    assert result.case_id == CASE and result.gradcam_node is not None
    assert view.lines[0].startswith("Exported the T2 and T1CE volume and the tumor segment")
    assert view.lines[-1] == SAVED
    saved = sections(store)
    assert saved["radiology"]["score"] == result.score and saved["fusion"] is None


def test_a_t1ce_alone_is_scored_and_the_log_names_the_t1ce_model(controller, loaded_case, segment_id,
                                                                 radiology_weights, tmp_path):
    from SarcomaRiskLib import ScoringInputs, panel_controls

    _, t1ce, segmentation = loaded_case
    inputs = ScoringInputs(CASE, None, segmentation, segment_id(segmentation, "Tumor"), t1ce)
    assert panel_controls(case_id=CASE, t2=None, t1ce=t1ce, segmentation=segmentation, segment_id=inputs.segment_id,
                          running=False).compute_enabled
    store = tmp_path / "cases.sqlite"
    controller.compute(inputs, store_path=store, weights_dir=radiology_weights, timeout_s=300)
    tick_until_idle(controller)

    view = controller.view
    assert view.events == ["running=True", "running=False", "scored", "record_changed"]
    assert view.lines[0].startswith("Exported the T1CE volume and the tumor segment")
    assert view.lines[-1] == (f"Saved the radiology score of case {CASE} in the case record (scored by the T1CE only "
                              "model, radiology-t1ce).")
    result = next(call[1] for call in view.calls if call[0] == "scored")
    assert result.reference_node is t1ce and sections(store)["radiology"]["model"] == "radiology-t1ce"


def test_scoring_is_followed_by_fusion_when_the_record_holds_clinical_data_and_the_pathology_score(
        controller, inputs, weights_with_fusion, tmp_path):
    from SarcomaRiskLib import read_case_status

    store = tmp_path / "cases.sqlite"
    add_clinical_and_pathology(store)
    controller.compute(inputs, store_path=store, weights_dir=weights_with_fusion, timeout_s=300)
    tick_until_idle(controller)

    view = controller.view
    assert view.events == ["running=True", "running=False", "scored", "record_changed",
                           "running=True", "running=False", "record_changed"]
    saved_at = view.lines.index(SAVED)
    assert view.lines[saved_at + 1] == ("The record holds clinical data and the pathology score: "
                                        "computing the fused risk...")
    fusion = sections(store)["fusion"]
    assert fusion["modalities_used"] == ["clinical", "radiology", "pathology"]
    assert fusion["provenance"]["inputs"]["radiology"]["revision"] == 1  # the score just computed
    status = read_case_status(store, CASE)
    assert status.fusion_current and status.lines()[-1].startswith("Fused risk: ")


def test_a_fusion_that_fails_is_logged_and_the_radiology_result_stands(controller, inputs, radiology_weights,
                                                                       tmp_path):
    store = tmp_path / "cases.sqlite"
    add_clinical_and_pathology(store)
    controller.compute(inputs, store_path=store, weights_dir=radiology_weights, timeout_s=300)  # no fusion model
    tick_until_idle(controller)

    view = controller.view
    assert view.events == ["running=True", "running=False", "scored", "record_changed",
                           "running=True", "running=False", "show_log", "record_changed"]
    assert view.lines[-1].startswith("Fusion failed: ") and "no model 'fusion'" in view.lines[-1]
    assert "Fusion failed: Fusion" not in view.lines[-1]  # said once
    saved = sections(store)
    assert saved["radiology"] is not None and saved["fusion"] is None


def test_a_failing_scorer_reports_its_error_with_its_log_in_order_and_compute_is_enabled_again(
        controller, inputs, radiology_weights, tmp_path, private_tempdir):
    from SarcomaRiskLib import panel_controls

    tampered = tmp_path / "tampered"
    shutil.copytree(radiology_weights, tampered)
    with open(tampered / "radiology-t2fs+t1ce.pt", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    store = tmp_path / "cases.sqlite"
    add_clinical_and_pathology(store)
    before = sections(store)
    controller.compute(inputs, store_path=store, weights_dir=tampered, timeout_s=300)
    tick_until_idle(controller)

    view = controller.view
    assert view.events == ["running=True", "running=False", "show_log", "show_error"]
    _, message, details = view.calls[-1]
    assert message.startswith("Radiology scoring failed.\n\nRadiology scoring failed: ") and "sha256" in message
    log = details.split("\n")
    assert any(line.startswith("error: ") for line in log)
    # Every line of the scorer was passed on while it ran, in its order; its last lines come again
    # just above the error.
    assert view.lines == [view.lines[0], *log, *log[-20:]]
    assert sections(store) == before and list(private_tempdir.iterdir()) == []
    controls = panel_controls(case_id=inputs.case_id, t2=inputs.t2, segmentation=inputs.segmentation,
                              segment_id=inputs.segment_id, running=controller.running)
    assert controls.compute_enabled and not controls.cancel_enabled and controls.inputs_enabled


def test_cancel_stops_the_scorer_and_says_that_the_record_was_not_changed(controller, inputs, radiology_weights,
                                                                          tmp_path, private_tempdir):
    store = tmp_path / "cases.sqlite"
    controller.compute(inputs, store_path=store, weights_dir=radiology_weights, timeout_s=300)
    cancelled_at = time.monotonic()
    controller.cancel()
    tick_until_idle(controller)

    assert time.monotonic() - cancelled_at < 10
    view = controller.view
    assert view.events == ["running=True", "running=False"]
    assert view.lines[-1] == "Radiology scoring was cancelled. The case record was not changed."
    assert "Cancelling..." in view.lines
    assert CASE not in case_ids(store)
    assert list(private_tempdir.iterdir()) == []
    controller.cancel()  # nothing runs any more: nothing happens
    assert view.events == ["running=True", "running=False"]


def test_stop_ends_a_run_at_once_reports_nothing_and_a_second_compute_is_refused_only_while_one_runs(
        controller, inputs, radiology_weights, tmp_path, private_tempdir):
    from SarcomaRiskLib import ScoringFailed

    store = tmp_path / "cases.sqlite"
    controller.compute(inputs, store_path=store, weights_dir=radiology_weights, timeout_s=300)
    with pytest.raises(ScoringFailed, match="already in progress"):
        controller.compute(inputs, store_path=store, weights_dir=radiology_weights)
    controller.stop()
    assert not controller.running and list(private_tempdir.iterdir()) == []
    controller.tick()
    assert controller.view.events == ["running=True"]
    assert CASE not in case_ids(store)


def test_bad_input_is_refused_before_anything_runs_or_is_reported(controller, loaded_case, tmp_path):
    from SarcomaRiskLib import ScoringInputs

    _, _, segmentation = loaded_case
    with pytest.raises(InvalidInput, match="T2 volume and T1CE volume: no volume selected"):
        controller.compute(ScoringInputs(CASE, None, segmentation, "Tumor"), store_path=tmp_path / "c.sqlite")
    assert not controller.running and controller.view.calls == []
    assert not (tmp_path / "c.sqlite").exists()
