"""``sarcoma-risk federated``: the one-command simulation, then ``evaluate``; the real gRPC transport on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.federated.deploy import stop_group
from sarcoma_risk.release.model_card import _federated_cnn, _fusion_training

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


@pytest.fixture(scope="module")
def two_centre_mri_manifest(tmp_path_factory):
    """18 tiny phantom cases with images over centres A and B, 14 of them development (about 15 s)."""
    out = tmp_path_factory.mktemp("mri_cohort")
    assert main(["synth", "--out", str(out), "--cases", "18", "--centres", "A,B", "--split", "random",
                 "--validation-fraction", "0.1", "--seed", "2"]) == 0
    return out / "manifest.csv"


def test_simulate_trains_the_radiology_cnn_with_fedprox_into_registered_weights(two_centre_mri_manifest, tmp_path,
                                                                                capsys):
    from sarcoma_risk.radiology.checkpoint import load_model

    weights = tmp_path / "weights"
    assert main(["federated", "simulate", "--model", "radiology", "--manifest", str(two_centre_mri_manifest),
                 "--out", str(weights), "--preset", "tiny", "--rounds", "2", "--strategy", "fedprox", "--proximal-mu", "0.01",
                 "--min-centre-events", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # The same file, registry entry and sha256 check as 'train radiology', as the model of its sequence set
    model, entry = load_model(weights, "t2fs+t1ce")
    assert entry["sha256"] == summary["sha256"] and entry["version"].endswith("+federated")
    federated = entry["training_data"]["federated"]
    assert federated["rounds"] == 2 and federated["centres"] == 2 and entry["training_data"]["n"] == 14
    card = _federated_cnn(entry)
    assert card.startswith("trained federated (flwr 1.32.1) across 2 centres without pooling their images: "
                           "FedProx (mu 0.01), weighted by each centre's number of cases, 1 local epoch(s) a round, "
                           "2 rounds")
    assert len(model.members) == 1 and model.reference_source == "in_sample"  # one model, not a mean of folds
    assert len(model.reference_scores) == 14  # the development distribution, from the centres' histograms
    assert abs(float(model.reference_scores.mean())) < 0.05  # centred on the pooled mean (0.02-wide bins)


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


def _write_certificates(folder: Path) -> None:
    """A test CA and a server certificate for 127.0.0.1 signed by it (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SarcomaRisk test CA")])

    def build(subject, public_key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)))

    ca = build(ca_name, ca_key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    server = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key.public_key()).add_extension(
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
    ).sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


@pytest.mark.slow
def test_server_and_three_clients_fit_over_grpc_with_tls_on_loopback(three_centre_manifest, tmp_path):
    # TLS here; the plain transport (--insecure) is the radiology CNN's test below: one run of each is
    # enough, each costs a minute or so of the suite (a deployed round waits on Flower's 3 s polls).
    fleet, control, appio, *client_ports = _free_ports(6)
    _write_certificates(tmp_path)
    server_flags = ["--ssl-certfile", str(tmp_path / "server.pem"), "--ssl-keyfile", str(tmp_path / "server.key"),
                    "--ssl-ca-certfile", str(tmp_path / "ca.pem")]
    client_flags = ["--root-certificates", str(tmp_path / "ca.pem")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "core"), str(REPO)]),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cli = [sys.executable, "-m", "sarcoma_risk.cli", "federated"]
    server = subprocess.Popen([*cli, "server", "--out", str(tmp_path / "w"), *server_flags, "--address", "127.0.0.1",
                               "--port", str(fleet), "--control-port", str(control), "--serverappio-port", str(appio),
                               "--min-centres", "3", "--min-centre-events", "5", "--wait-timeout", "120",
                               "--time-limit", "240", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    clients = [subprocess.Popen([*cli, "client", "--manifest", str(three_centre_manifest), "--centre", centre,
                                 "--server", f"127.0.0.1:{fleet}", *client_flags, "--clientappio-port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
               for centre, port in zip("ABC", client_ports)]
    try:
        output, _ = server.communicate(timeout=400)
    finally:
        for process in [server, *clients]:  # each in its own session: stop it and what it started
            stop_group(process, grace=30)
    text = output.decode(errors="replace")
    assert server.returncode == 0, text[-3000:]
    summary = json.loads(text[text.index("{"):])
    assert summary["training_data"]["federated"]["centres"] == ["A", "B", "C"]
    assert (tmp_path / "w" / "fusion.json").is_file()


@pytest.mark.slow
def test_server_and_two_clients_train_the_radiology_cnn_over_grpc_on_loopback(two_centre_mri_manifest, tmp_path):
    fleet, control, appio, *client_ports = _free_ports(5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "core"), str(REPO)]),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cli = [sys.executable, "-m", "sarcoma_risk.cli", "federated"]
    server = subprocess.Popen([*cli, "server", "--model", "radiology", "--preset", "tiny", "--rounds", "2", "--out", str(tmp_path / "w"),
                               "--insecure", "--address", "127.0.0.1", "--port", str(fleet), "--control-port",
                               str(control), "--serverappio-port", str(appio), "--min-centres", "2",
                               "--min-centre-events", "3", "--wait-timeout", "120", "--time-limit", "240", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    clients = [subprocess.Popen([*cli, "client", "--manifest", str(two_centre_mri_manifest), "--centre", centre,
                                 "--server", f"127.0.0.1:{fleet}", "--insecure", "--clientappio-port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
               for centre, port in zip("AB", client_ports)]
    try:
        output, _ = server.communicate(timeout=400)
    finally:
        for process in [server, *clients]:  # each in its own session: stop it and what it started
            stop_group(process, grace=30)
    text = output.decode(errors="replace")
    assert server.returncode == 0, text[-3000:]
    summary = json.loads(text[text.index("{"):])
    federated = summary["training_data"]["federated"]
    assert federated["centres"] == 2 and federated["rounds"] == 2 and federated["dropped_out"] == 0
    assert (tmp_path / "w" / "radiology-t2fs+t1ce.pt").is_file()  # the model of the run's sequence set


def test_the_server_refuses_to_start_without_a_transport_choice(tmp_path, capsys):
    assert main(["federated", "server", "--out", str(tmp_path / "w")]) != 0
    assert "give either --insecure or all of --ssl-certfile, --ssl-keyfile and --ssl-ca-certfile" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_a_client_for_a_centre_absent_from_the_manifest_stops_before_connecting(three_centre_manifest, capsys):
    assert main(["federated", "client", "--manifest", str(three_centre_manifest), "--centre", "Z",
                 "--server", "127.0.0.1:1", "--insecure"]) != 0
    err = capsys.readouterr().err
    assert "has no development case of centre 'Z'; centres there: A, B, C" in err
