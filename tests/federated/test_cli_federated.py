"""``sarcoma-risk federated``: the one-command simulation, then ``evaluate``; the real gRPC transport on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.release.model_card import _fusion_training

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def three_centre_manifest(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    assert main(["synth", "--out", str(out), "--cases", "150", "--centres", "A,B,C", "--split", "random",
                 "--validation-fraction", "0.2", "--table-only", "--seed", "3"]) == 0
    return out / "manifest.csv"


def test_simulate_writes_registered_weights_that_evaluate_reads(three_centre_manifest, tmp_path, capsys):
    weights = tmp_path / "weights"
    assert main(["federated", "simulate", "--manifest", str(three_centre_manifest), "--out", str(weights),
                 "--min-centre-events", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    federated = summary["training_data"]["federated"]
    assert federated["centres"] == ["A", "B", "C"] and federated["refused"] == {}
    assert (weights / "federated_run.json").is_file()
    entry = json.loads((weights / "manifest.json").read_text())["models"]["fusion"]
    card = _fusion_training(entry)  # the model card's sentence on how the fusion model was trained
    assert card.startswith("trained federated (flwr 1.32.1) across centres A, B, C without pooling their cases")
    assert "stratified by centre" in card and f"{federated['rounds']} rounds" in card
    report = tmp_path / "report"
    assert main(["evaluate", "--manifest", str(three_centre_manifest), "--weights", str(weights), "--out", str(report),
                 "--bootstrap", "10", "--json"]) == 0
    evaluated = json.loads((report / "report.json").read_text())
    assert evaluated["model"]["sha256"] == summary["sha256"]  # the federated weights were the ones evaluated
    assert json.loads(capsys.readouterr().out)["n"] > 0


def test_simulate_refuses_a_centre_with_too_few_events_and_says_so(three_centre_manifest, tmp_path, capsys):
    assert main(["federated", "simulate", "--manifest", str(three_centre_manifest), "--out", str(tmp_path / "w"),
                 "--min-centre-events", "10"]) == 0
    out = capsys.readouterr().out
    assert "refused: centre C: 6 development event(s); a centre needs at least 10" in out


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_server_and_three_clients_fit_over_grpc_on_loopback(three_centre_manifest, tmp_path):
    fleet, control, appio, *client_ports = _free_ports(6)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "core"), str(REPO)]),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cli = [sys.executable, "-m", "sarcoma_risk.cli", "federated"]
    server = subprocess.Popen([*cli, "server", "--out", str(tmp_path / "w"), "--insecure", "--address", "127.0.0.1",
                               "--port", str(fleet), "--control-port", str(control), "--serverappio-port", str(appio),
                               "--min-centres", "3", "--min-centre-events", "5", "--wait-timeout", "120",
                               "--time-limit", "240", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    clients = [subprocess.Popen([*cli, "client", "--manifest", str(three_centre_manifest), "--centre", centre,
                                 "--server", f"127.0.0.1:{fleet}", "--insecure", "--clientappio-port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
               for centre, port in zip("ABC", client_ports)]
    try:
        output, _ = server.communicate(timeout=400)
    finally:
        for process in [server, *clients]:  # each in its own session: stop it and what it started
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in clients:
            process.wait(timeout=30)
    text = output.decode(errors="replace")
    assert server.returncode == 0, text[-3000:]
    summary = json.loads(text[text.index("{"):])
    assert summary["training_data"]["federated"]["centres"] == ["A", "B", "C"]
    assert (tmp_path / "w" / "fusion.json").is_file()
    time.sleep(0)
