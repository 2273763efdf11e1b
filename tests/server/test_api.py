"""The server's answers to what clients get wrong: missing, unknown, expired and revoked tokens; a role
writing another's section; stale revisions; malformed JSON; case ids that are not pseudonyms;
oversized bodies. Each is refused with a clear JSON error and writes nothing."""

from __future__ import annotations

import http.client
import json
import sqlite3
from urllib.parse import urlsplit

import pytest

from records.conftest import content
from sarcoma_risk.records.sqlite import SqliteStore
from serverutil import request, server_in_thread

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A server (in a thread) over a SQLite store with one user per role, plus an expired and a revoked token."""
    path = tmp_path_factory.mktemp("api") / "cases.sqlite"
    with SqliteStore(path, "a") as store:
        tokens = {role: store.add_user(f"{role}.one", role) for role in ("radiologist", "pathologist", "coordinator",
                                                                         "admin")}
        tokens["expired"] = store.add_user("old.user", "coordinator", expires_days=1)
        tokens["revoked"] = store.add_user("gone.user", "coordinator")
        store.revoke_user("gone.user")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE api_tokens SET expires_utc = '2020-01-01T00:00:00Z' WHERE name = 'old.user'")
    conn.commit()
    conn.close()
    with server_in_thread(str(path), max_body_bytes=LIMIT, transaction_idle_s=1.0) as url:
        yield url, tokens, path


def dump(path) -> str:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(line for line in conn.iterdump() if "api_tokens" not in line)
    finally:
        conn.close()


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


def put(url: str, token: str | None, case_id: str, section: str, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(f"{url}/api/v1/cases/{case_id}/{section}", "PUT", token=token, body=data, headers=headers)


@pytest.mark.parametrize("who, message", [
    (None, "no API token"),
    ("srk_" + "x" * 43, "not known here"),
    ("expired", "expired on 2020-01-01"),
    ("revoked", "was revoked on"),
])
def test_a_request_without_a_valid_token_gets_401_and_writes_nothing(api, who, message):
    url, tokens, path = api
    before = dump(path)
    status, headers, body = put(url, tokens.get(who, who), "STS-0401", "clinical", content("clinical"))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    error = error_of(body)
    assert error["type"] == "AuthenticationRequired" and message in error["message"]
    assert dump(path) == before


@pytest.mark.parametrize("role, section", [("radiologist", "pathology"), ("pathologist", "radiology"),
                                          ("radiologist", "clinical"), ("pathologist", "fusion")])
def test_a_role_writing_another_roles_section_gets_403_and_writes_nothing(api, role, section):
    url, tokens, path = api
    before = dump(path)
    status, _, body = put(url, tokens[role], "STS-0403", section, content(section))
    assert status == 403
    assert f"may not write the {section} section" in error_of(body)["message"]
    assert dump(path) == before


def test_each_role_writes_its_own_sections_and_the_audit_names_the_user_and_client(api):
    url, tokens, _ = api
    for role, section in (("radiologist", "radiology"), ("pathologist", "pathology"), ("coordinator", "clinical"),
                          ("coordinator", "fusion"), ("admin", "radiology")):
        status, headers, body = put(url, tokens[role], "STS-0200", section, content(section))
        assert status in (200, 201), body
        assert headers["ETag"] == f'"{json.loads(body)["revision"]}"'
    status, _, body = request(f"{url}/api/v1/history?case_id=STS-0200", token=tokens["radiologist"])
    entries = [e for e in json.loads(body)["entries"] if e["section"]]
    assert [(e["user"], e["section"]) for e in entries] == [
        ("radiologist.one", "radiology"), ("pathologist.one", "pathology"), ("coordinator.one", "clinical"),
        ("coordinator.one", "fusion"), ("admin.one", "radiology")]
    assert {e["host"] for e in entries} == {"127.0.0.1"}


def test_the_whole_cohort_and_the_users_are_only_for_the_roles_allowed(api):
    url, tokens, _ = api
    put(url, tokens["coordinator"], "STS-0300", "clinical", content("clinical"))
    for path, allowed in (("/api/v1/cases", {"coordinator", "admin"}), ("/api/v1/export.csv", {"coordinator", "admin"}),
                          ("/api/v1/history", {"coordinator", "admin"}), ("/api/v1/users", {"admin"}),
                          ("/api/v1/cases/STS-0300", {"radiologist", "pathologist", "coordinator", "admin"}),
                          ("/api/v1/case-ids", {"radiologist", "pathologist", "coordinator", "admin"})):
        for role in ("radiologist", "pathologist", "coordinator", "admin"):
            status, _, _ = request(url + path, token=tokens[role])
            assert status == (200 if role in allowed else 403), (path, role)


def test_a_stale_revision_gets_412_and_the_current_etag_wins(api):
    url, tokens, path = api
    token = tokens["radiologist"]
    status, headers, _ = put(url, token, "STS-0412", "radiology", content("radiology", score=1.0),
                             {"If-None-Match": "*"})
    assert (status, headers["ETag"]) == (201, '"1"')
    status, headers, body = request(f"{url}/api/v1/cases/STS-0412/radiology", token=token)
    assert (status, headers["ETag"], json.loads(body)["revision"]) == (200, '"1"', 1)
    assert put(url, token, "STS-0412", "radiology", content("radiology", score=2.0), {"If-Match": '"1"'})[0] == 200
    before = dump(path)
    for headers in ({"If-Match": '"1"'}, {"If-None-Match": "*"}):
        status, _, body = put(url, token, "STS-0412", "radiology", content("radiology", score=3.0), headers)
        assert status == 412
        error = error_of(body)
        assert error["type"] == "StaleRevision" and "now holds revision 2" in error["message"]
    assert dump(path) == before
    status, _, body = put(url, token, "STS-0412", "radiology", content("radiology"), {"If-Match": "three"})
    assert status == 400 and 'send the ETag you read, e.g. "3"' in error_of(body)["message"]


@pytest.mark.parametrize("body, status, message", [
    (b'{"score": 0.5, "provenance": ', 400, "not valid JSON"),
    (b"\xff\xfe not text", 400, "not UTF-8"),
    (b"", 400, "no body"),
    (b"[1, 2, 3]", 422, "must be a JSON object"),
    (b'{"score": "high", "provenance": {}}', 422, "provenance: missing field"),
])
def test_malformed_or_invalid_json_is_refused_with_what_is_wrong(api, body, status, message):
    url, tokens, path = api
    before = dump(path)
    got, _, answer = put(url, tokens["radiologist"], "STS-0400", "radiology", body)
    assert got == status and message in error_of(answer)["message"]
    assert dump(path) == before


@pytest.mark.parametrize("case_id", ["John%20Smith", "smith.john", "STS-0001%27%3B--", "A" * 40, "%C3%84-1"])
def test_a_case_id_that_is_not_a_pseudonym_is_refused(api, case_id):
    url, tokens, path = api
    before = dump(path)
    status, _, body = put(url, tokens["radiologist"], case_id, "radiology", content("radiology"))
    assert status == 422
    error = error_of(body)
    assert error["type"] == "InvalidCaseId" and "case_id" in error["message"]
    assert request(f"{url}/api/v1/cases/{case_id}", token=tokens["radiologist"])[0] == 422
    assert dump(path) == before


def test_an_unknown_section_or_route_is_a_clear_json_error(api):
    url, tokens, _ = api
    status, _, body = put(url, tokens["admin"], "STS-0404", "genomics", content("radiology"))
    assert status == 422 and "not one of clinical, radiology, pathology, fusion" in error_of(body)["message"]
    status, _, body = request(f"{url}/api/v1/nothing-here", token=tokens["admin"])
    assert status == 404 and error_of(body)["message"] == "no such resource: /api/v1/nothing-here"
    status, _, body = request(f"{url}/api/v1/cases/STS-0404", token=tokens["admin"])
    assert status == 404 and error_of(body)["type"] == "CaseNotFound"


def test_an_oversized_body_is_refused_with_413_whether_or_not_it_declares_its_size(api):
    url, tokens, path = api
    before = dump(path)
    big = content("radiology", note="x" * (LIMIT + 10))
    status, _, body = put(url, tokens["radiologist"], "STS-0413", "radiology", big)
    assert status == 413 and "larger than this server accepts" in error_of(body)["message"]
    # Sent in chunks without Content-Length: counted as it arrives.
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        chunks = (json.dumps(big).encode()[i:i + 8192] for i in range(0, LIMIT + 8192 * 4, 8192))
        conn.request("PUT", "/api/v1/cases/STS-0413/radiology", body=chunks, encode_chunked=True,
                     headers={"Authorization": f"Bearer {tokens['radiologist']}", "Content-Type": "application/json",
                              "Transfer-Encoding": "chunked"})
        answer = conn.getresponse()
        assert answer.status == 413 and "larger than this server accepts" in error_of(answer.read())["message"]
    finally:
        conn.close()
    assert dump(path) == before


def test_the_openapi_description_lists_the_api(api):
    url, _, _ = api
    status, _, body = request(f"{url}/openapi.json")
    spec = json.loads(body)
    assert status == 200 and spec["info"]["title"] == "SarcomaRisk case records"
    assert {"/api/v1/cases/{case_id}/{section}", "/api/v1/transactions", "/api/v1/users", "/api/v1/history"} <= set(
        spec["paths"])
    assert "put" in spec["paths"]["/api/v1/cases/{case_id}/{section}"]
    assert request(f"{url}/docs")[0] == 404  # no interactive docs: they would load scripts from the internet


def test_every_answer_forbids_caching_and_health_needs_no_token(api):
    url, tokens, _ = api
    status, headers, body = request(f"{url}/api/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    _, headers, _ = request(f"{url}/api/v1/cases/STS-0200", token=tokens["admin"])
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_a_transaction_left_idle_is_rolled_back_and_belongs_to_its_user_only(api):
    import time

    url, tokens, path = api
    before = dump(path)
    status, _, body = request(f"{url}/api/v1/transactions", "POST", token=tokens["radiologist"])
    assert status == 201
    transaction = json.loads(body)["transaction"]
    header = {"SarcomaRisk-Transaction": transaction}
    assert put(url, tokens["radiologist"], "STS-0600", "radiology", content("radiology"), header)[0] == 201
    status, _, body = request(f"{url}/api/v1/cases/STS-0600", token=tokens["pathologist"], headers=header)
    assert status == 403 and "belongs to another user" in error_of(body)["message"]
    time.sleep(3)  # the server was started with transaction_idle_s=1
    status, _, body = request(f"{url}/api/v1/transactions/{transaction}/commit", "POST", token=tokens["radiologist"])
    assert status == 409 and "is not open" in error_of(body)["message"]
    assert dump(path) == before
