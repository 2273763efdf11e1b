"""``sarcoma-risk users`` and ``sarcoma-risk serve`` as people run them: tokens printed once and kept
private, TLS with uvicorn's certificate options, and clear refusals."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.records.sqlite import SqliteStore
from sarcoma_risk.server.service import AUTH_CACHE_S
from serverutil import ServerProcess, request, server_in_thread


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "cases.sqlite"
    with SqliteStore(path, "a") as opened:
        opened.ensure_case("STS-0001")
    return path


def test_users_add_prints_only_the_token_which_then_opens_the_server_until_it_is_revoked(store, capsys):
    assert main(["users", "add", "r.jones", "--role", "radiologist", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("srk_") and "\n" not in token
    assert "shown only now" in err and token not in err
    assert main(["users", "list", "--json", "--store", str(store)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"], u["status"]) for u in listed] == [("r.jones", "radiologist", "active")]
    assert token not in json.dumps(listed)
    with server_in_thread(str(store)) as url:
        assert request(f"{url}/api/v1/cases/STS-0001", token=token)[0] == 200
        assert main(["users", "revoke", "r.jones", "--store", str(store)]) == 0
        assert "refuses them within 2 seconds" in capsys.readouterr().out
        time.sleep(AUTH_CACHE_S + 0.1)  # the lookup the server remembered has expired by now
        status, _, body = request(f"{url}/api/v1/cases/STS-0001", token=token)
        assert status == 401 and "was revoked on" in json.loads(body)["error"]["message"]
    assert main(["users", "revoke", "r.jones", "--store", str(store)]) == 1
    assert "has no token to revoke" in capsys.readouterr().err


def test_an_admin_manages_users_through_the_server_and_others_may_not(store, capsys, monkeypatch):
    with SqliteStore(store, "a") as opened:
        admin, coordinator = opened.add_user("a.admin", "admin"), opened.add_user("c.coord", "coordinator")
    with server_in_thread(str(store)) as url:
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", admin)
        assert main(["users", "add", "p.smith", "--role", "pathologist", "--expires-days", "30", "--store", url]) == 0
        token = capsys.readouterr().out.strip()
        assert request(f"{url}/api/v1/case-ids", token=token)[0] == 200
        assert main(["users", "revoke", "p.smith", "--store", url]) == 0
        assert request(f"{url}/api/v1/case-ids", token=token)[0] == 401  # at once, revoked through the server
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", coordinator)
        assert main(["users", "add", "x.other", "--role", "admin", "--store", url]) == 1
        assert "may not manage users; that is for admins" in capsys.readouterr().err
    with SqliteStore(store, "r") as opened:
        created = {a.name: a.created_by for a in opened.users(include_past=True)}
    assert created["p.smith"] == "a.admin"  # recorded as the authenticated admin, not the OS account


def test_save_token_checks_the_token_with_the_server_and_keeps_it_private(store, tmp_path, monkeypatch, capsys):
    with SqliteStore(store, "a") as opened:
        token = opened.add_user("r.jones", "radiologist")
    token_file = tmp_path / "config" / "token"
    monkeypatch.setenv("SARCOMA_RISK_TOKEN_FILE", str(token_file))
    monkeypatch.delenv("SARCOMA_RISK_TOKEN", raising=False)
    with server_in_thread(str(store)) as url:
        monkeypatch.setattr(sys, "stdin", io.StringIO("srk_" + "x" * 43 + "\n"))
        assert main(["users", "save-token", "--store", url]) == 1
        assert "not known here" in capsys.readouterr().err and not token_file.exists()
        monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
        assert main(["users", "save-token", "--store", url]) == 0
        assert "knows this token as r.jones (radiologist)" in capsys.readouterr().err
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert main(["cases", "show", "STS-0001", "--json", "--store", url]) == 0  # the token file is found by itself
        assert json.loads(capsys.readouterr().out)["case_id"] == "STS-0001"


@pytest.mark.parametrize("argv, message", [
    (["--ssl-keyfile", "key.pem"], "--ssl-keyfile and --ssl-certfile go together"),
    (["--ssl-keyfile", "missing.pem", "--ssl-certfile", "missing.pem"], "no such file"),
    (["--store", "https://records.example.org:8443"], "not another server"),
    (["--store", "mysql://db/cases"], "scheme 'mysql'"),
])
def test_serve_refuses_what_it_cannot_run_with_a_clear_error(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.pem").write_text("not used")
    assert main(["serve", *(argv if "--store" in argv else [*argv, "--store", str(tmp_path / "c.sqlite")])]) == 1
    assert message in capsys.readouterr().err


def test_serve_stops_at_once_with_the_reason_when_postgresql_cannot_be_reached(capsys):
    from pgcluster import free_port

    assert main(["serve", "--store", f"postgresql://nobody@127.0.0.1:{free_port()}/sarcoma_risk"]) == 1
    assert "the PostgreSQL server cannot be reached" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed to make a test certificate")
def test_serve_speaks_tls_with_uvicorns_certificate_options_and_clients_trust_it_through_SSL_CERT_FILE(
        store, tmp_path, monkeypatch):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with SqliteStore(store, "a") as opened:
        token = opened.add_user("c.coord", "coordinator")
    monkeypatch.setenv("SARCOMA_RISK_TOKEN", token)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the clients' way to trust a private certificate authority
    server = ServerProcess(str(store), tmp_path / "server.log", "--ssl-keyfile", str(key), "--ssl-certfile", str(cert))
    assert server.url.startswith("https://")
    server.start()
    try:
        assert main(["cases", "list", "--json", "--store", server.url]) == 0
        monkeypatch.delenv("SSL_CERT_FILE")
        assert main(["cases", "list", "--store", server.url]) == 1  # an unknown certificate is refused
    finally:
        server.stop()

