"""The department at work on one case through the server: three processes, three people, one record.

A coordinator imports the clinical data; then at the same time a 3D Slicer process (the module's own
logic on an MRML scene, which runs ``score-mri`` in its own process) writes the radiology section
and a QuPath process (the bridge's ``score-image`` path) writes the pathology section, each with
their own API token; then the coordinator fuses the case with the shipped weights (``sarcoma-risk
fuse``) and exports the records. The server is the real ``sarcoma-risk serve`` on PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from sarcoma_risk.records.postgres import PostgresStore
from serverutil import ServerProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights"


def _as(token: str) -> None:
    os.environ["SARCOMA_RISK_TOKEN"] = token  # how each person's tools find their own token


def slicer_process(url: str, token: str, case_dir: str, log: str) -> None:
    """The radiologist's 3D Slicer: the module's logic scores the MRI and writes the radiology section."""
    from sarcoma_risk.demo.radiology import score_mri_in_slicer

    _as(token)
    case = _case(case_dir)
    with open(log, "w", encoding="utf-8") as out:
        score_mri_in_slicer(case, store=url, weights=WEIGHTS, log=lambda line: out.write(line + "\n"))


def qupath_process(url: str, token: str, case_dir: str, out_dir: str) -> None:
    """The pathologist's QuPath bridge: scores the slide and writes the pathology section."""
    from sarcoma_risk.demo.pathology import score_slide_with_bridge

    _as(token)
    score_slide_with_bridge(_case(case_dir), store=url, weights=WEIGHTS, out_dir=Path(out_dir))


def _case(case_dir: str):
    """The demo case the test rendered (its paths, as the test saved them)."""
    from sarcoma_risk.demo.case import DemoCase

    data = json.loads(Path(case_dir, "case.json").read_text())
    return DemoCase(**{k: Path(v) if k in {"t2fs", "t1ce", "segmentation", "slide", "annotation", "clinical_csv"}
                       and v is not None else v for k, v in data.items()})


def coordinator(url: str, token: str, *argv: str) -> int:
    from sarcoma_risk.cli import main

    _as(token)
    return main([*argv, "--store", url])


def test_slicer_and_qupath_write_one_case_at_once_through_the_server_and_the_coordinator_fuses_and_exports_it(
        postgres_url, tmp_path, monkeypatch):
    from sarcoma_risk.demo.case import make_demo_case

    case = make_demo_case(tmp_path / "case")
    (tmp_path / "case" / "case.json").write_text(json.dumps(
        {k: str(v) if isinstance(v, Path) else v for k, v in vars(case).items()}))
    with PostgresStore(postgres_url, "a") as store:
        tokens = {name: store.add_user(name, role) for name, role in (
            ("r.slicer", "radiologist"), ("p.qupath", "pathologist"), ("c.coordinator", "coordinator"))}
    server = ServerProcess(postgres_url, tmp_path / "server.log").start()
    try:
        assert coordinator(server.url, tokens["c.coordinator"], "clinical", "import", str(case.clinical_csv)) == 0
        ctx = multiprocessing.get_context("spawn")
        tools = [ctx.Process(target=slicer_process, args=(server.url, tokens["r.slicer"], str(tmp_path / "case"),
                                                          str(tmp_path / "slicer.log"))),
                 ctx.Process(target=qupath_process, args=(server.url, tokens["p.qupath"], str(tmp_path / "case"),
                                                          str(tmp_path / "qupath")))]
        for tool in tools:
            tool.start()
        for tool in tools:
            tool.join(timeout=600)
        assert [tool.exitcode for tool in tools] == [0, 0], (tmp_path / "slicer.log").read_text()[-2000:]

        assert coordinator(server.url, tokens["c.coordinator"], "fuse", "--case", case.case_id,
                           "--weights", str(WEIGHTS)) == 0
        assert coordinator(server.url, tokens["c.coordinator"], "cases", "export", "--out",
                           str(tmp_path / "cases.csv")) == 0
        assert coordinator(server.url, tokens["c.coordinator"], "cases", "export", "--out",
                           str(tmp_path / "cases.json")) == 0
        # The radiologist's module now shows the coordinator's fused risk, which it may not write itself.
        monkeypatch.syspath_prepend(str(ROOT / "SlicerSarcomaRisk"))
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", tokens["r.slicer"])
        from SarcomaRiskLib import read_case_status

        status = read_case_status(server.url, case.case_id)
    finally:
        server.stop()

    with PostgresStore(postgres_url, "r") as store:
        record = store.get(case.case_id)
        audit = store.history(case.case_id)
    assert record.revisions == {"clinical": 1, "radiology": 1, "pathology": 1, "fusion": 1}
    # the sub-model of the sequence set Slicer's scorer read (T2FS + T1CE)
    assert record.fusion["model"] == "clinical+radiology[t2fs+t1ce]+pathology"
    # Fusion read the sections the two tools wrote (their revisions are in its provenance).
    assert {m: v["revision"] for m, v in record.fusion["provenance"]["inputs"].items()} == {
        "clinical": 1, "radiology": 1, "pathology": 1}
    writers = {e["section"]: e["user"] for e in audit if e["section"]}
    assert writers == {"clinical": "c.coordinator", "radiology": "r.slicer", "pathology": "p.qupath",
                       "fusion": "c.coordinator"}
    assert {e["host"] for e in audit} == {"127.0.0.1"}
    with open(tmp_path / "cases.csv", newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["case_id"], row["fusion.group"]) == (case.case_id, record.fusion["group"])
    assert float(row["radiology.score"]) == pytest.approx(record.radiology["score"])
    assert float(row["pathology.score"]) == pytest.approx(record.pathology["score"])
    assert json.loads((tmp_path / "cases.json").read_text())[0]["fusion"] == record.fusion
    assert status.fusion_current and not status.fusion_allowed and not status.missing
    assert any(line.startswith("Fused risk: " + record.fusion["group"].upper()) for line in status.lines())
