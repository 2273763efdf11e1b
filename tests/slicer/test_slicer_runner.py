"""The separate-process runner, with real ``sarcoma-risk`` commands."""

from __future__ import annotations

import sys
import time

import pytest

from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store


def run(arguments, **kwargs):
    from SarcomaRiskLib import CliProcess

    lines = []
    process = CliProcess(sys.executable, arguments, title="Test command", **kwargs).start()
    try:
        process.wait(log=lines.append)
    finally:
        process.close()
    return process, lines


def test_the_command_result_comes_back_as_json(tmp_path):
    store = tmp_path / "cases.sqlite"
    with open_store(store, mode="a") as s:
        s.put_section("STS-0007", "clinical", {"values": {"age": 50}, "provenance": Provenance("t", "0", None).to_dict()})
    process, _ = run(["cases", "list", "--store", str(store), "--json"])
    assert [row["case_id"] for row in process.json()] == ["STS-0007"]


def test_a_failing_command_raises_its_own_error_line_and_keeps_the_log(tmp_path):
    from SarcomaRiskLib import ScoringFailed

    missing = tmp_path / "nowhere.sqlite"
    process, lines = run(["cases", "show", "STS-0001", "--store", str(missing)])
    with pytest.raises(ScoringFailed, match=r"^Test command failed: .*nowhere\.sqlite: no case store here") as info:
        process.stdout()
    assert any(line.startswith("error: ") for line in info.value.log)
    assert lines == info.value.log  # every line was streamed to the caller as well


def test_log_lines_stream_while_the_process_runs_and_cancel_stops_it(tmp_path):
    from SarcomaRiskLib import CliProcess, ScoringCancelled

    process = CliProcess(sys.executable, ["synth", "--out", str(tmp_path / "cohort"), "--cases", "40", "--seed", "3"],
                         title="Cohort generation").start()
    try:
        first_line_at = None
        deadline = time.monotonic() + 60
        while first_line_at is None and time.monotonic() < deadline and not process.finished:
            if process.poll():
                first_line_at = time.monotonic()
            time.sleep(0.02)
        assert first_line_at is not None and not process.finished, "no output arrived while it was running"
        process.cancel()
        process.wait()
        assert time.monotonic() - first_line_at < 10
        with pytest.raises(ScoringCancelled, match="Cohort generation was cancelled"):
            process.stdout()
    finally:
        process.close()


def test_a_process_past_its_time_limit_is_stopped(tmp_path):
    from SarcomaRiskLib import ScoringTimeout

    started = time.monotonic()
    process, _ = run(["synth", "--out", str(tmp_path / "cohort"), "--cases", "40", "--seed", "3"], timeout_s=0.5)
    assert time.monotonic() - started < 10
    with pytest.raises(ScoringTimeout, match=r"took longer than 0\.5 s and was stopped") as info:
        process.stdout()
    assert isinstance(info.value, TimeoutError)


def test_a_missing_python_executable_is_reported(tmp_path):
    from SarcomaRiskLib import CliProcess, ScoringFailed

    with pytest.raises(ScoringFailed, match="could not start .*PythonSlicer"):
        CliProcess(str(tmp_path / "PythonSlicer"), ["cases", "list"], title="Scoring").start()
