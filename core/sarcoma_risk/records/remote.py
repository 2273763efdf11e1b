"""The HTTP backend: a client of ``sarcoma-risk serve``, with nothing but the standard library.

It runs inside 3D Slicer and beside QuPath, so it uses :mod:`http.client` (one keep-alive
connection per store object) rather than a third-party HTTP library. The API token comes from
:mod:`~sarcoma_risk.records.credentials`; it travels only in the ``Authorization`` header and never
appears in a message, a log line or ``repr``.

How the store's guarantees carry over HTTP:

- revisions travel as ETags: a write that names the revision it read sends ``If-Match: "N"`` (or
  ``If-None-Match: *`` for "must not exist yet"), and the server answers 412 when it is stale,
  raised here as :class:`~sarcoma_risk.errors.StaleRevision`;
- :meth:`HttpStore.update_section` applies ``change`` to the section as last read or written by this
  store object and writes the result back with ``If-Match`` of that revision; when the section
  changed since (or was never seen), the server's 412 makes it read the section again and retry, so
  ``change`` may run more than once, as the interface says. Sections seen outside a transaction are
  remembered for this (a bounded number): committed revisions never repeat, so a remembered
  revision either still names that content or is refused. Inside a transaction nothing is
  remembered, since a rollback undoes revisions;
- :meth:`HttpStore.transaction` opens a transaction on the server (``POST /api/v1/transactions``);
  requests inside it carry its id, and it commits when the block ends or rolls back on an error. A
  transaction opened inside another is a savepoint there. A client that disappears leaves it to the
  server, which rolls it back after a short idle time;
- server errors come back as the same exception classes the database backends raise (the server
  names the class in its JSON error); a server that cannot be reached, or answers 503, is a
  :class:`~sarcoma_risk.errors.StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections import OrderedDict
from typing import Any, Iterator, Mapping
from urllib.parse import quote, urlencode, urlsplit

from sarcoma_risk import errors
from sarcoma_risk.errors import (
    AuthenticationRequired,
    CaseNotFound,
    InvalidInput,
    PermissionDenied,
    SarcomaRiskError,
    StaleRevision,
    StoreError,
    StoreUnavailable,
)
from sarcoma_risk.records.accounts import Account, Role, check_expires_days, check_role, check_user_name
from sarcoma_risk.records.base import CaseStore, Change, check_expected_revision, check_limit, check_mode, check_section
from sarcoma_risk.records.credentials import find_token
from sarcoma_risk.records.schema import CaseRecord, validate_case_id, validate_section
from sarcoma_risk.records.urls import check_server_url

API = "/api/v1"
#: The request header that carries a transaction's id.
TRANSACTION_HEADER = "SarcomaRisk-Transaction"
#: How often update_section re-reads and retries when other writers keep changing the section.
UPDATE_ATTEMPTS = 20
#: Sections remembered for update_section (content and revision as last read or written).
REMEMBERED_SECTIONS = 1024
#: A kept-alive connection idle this long is replaced before use: the server closes idle ones
#: (uvicorn after 5 s), and a request sent into a closing connection would be lost.
_IDLE_RECONNECT_S = 2.0
#: The classes a server error may name: SarcomaRisk's own, nothing else.
_ERROR_CLASSES = {name: cls for name, cls in vars(errors).items()
                  if isinstance(cls, type) and issubclass(cls, SarcomaRiskError)}
_STATUS_ERRORS: dict[int, type[SarcomaRiskError]] = {
    400: InvalidInput, 401: AuthenticationRequired, 403: PermissionDenied, 404: CaseNotFound,
    412: StaleRevision, 413: InvalidInput, 422: InvalidInput, 502: StoreUnavailable, 503: StoreUnavailable,
    504: StoreUnavailable,
}


class HttpStore(CaseStore):
    """A case store served by ``sarcoma-risk serve`` at ``url``. See the module docstring.

    Parameters
    ----------
    url : str
        The server's base URL, ``https://HOST:PORT`` (a path prefix is kept, for a reverse proxy).
    mode : {"r", "r+", "a"}
        ``"r"`` sends no write; ``"x"`` is refused (the server creates its store).
    timeout : float
        Seconds to wait for the server's answer.
    token : str, optional
        The API token; default from ``$SARCOMA_RISK_TOKEN`` or the per-user token file.
    """

    def __init__(self, url: str, mode: str = "a", *, timeout: float = 60.0, token: str | None = None) -> None:
        self.mode = check_mode(mode)
        self.location = check_server_url(url)
        self.timeout = timeout
        self._token = token
        parts = urlsplit(self.location)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path
        self._connection: http.client.HTTPConnection | None = None
        self._last_used = 0.0
        self._transactions: list[str] = []  # open transaction ids, innermost last
        self._status: dict[str, Any] | None = None
        self._seen: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()  # (JSON text, revision)

    # ---- opening -----------------------------------------------------------------------------

    def open(self) -> "HttpStore":
        """Check that the server answers and accepts the token (``GET /api/v1/status``)."""
        if self.mode == "x":
            raise InvalidInput(f"{self.location}: mode 'x' creates a store, and a server's store is created by "
                               "the server ('sarcoma-risk serve'); open it with mode 'a'")
        if self._token is None:
            self._token = find_token(self.location)
        try:
            self._status = self._request("GET", "/status")
        except BaseException:
            self.close()  # refused (e.g. an unknown token): no connection is left open
            raise
        return self

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._transactions.clear()
        self._status = None
        self._seen.clear()

    @property
    def user(self) -> Account | None:
        """The account the server knows the token as (after :meth:`open`)."""
        return Account.from_row(self._status["account"]) if self._status else None

    def schema_version(self) -> int:
        return int(self._request("GET", "/status")["schema_version"])

    # ---- HTTP --------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is not None and time.monotonic() - self._last_used > _IDLE_RECONNECT_S:
            self._connection.close()
            self._connection = None
        if self._connection is None:
            if self._https:
                # The system's certificate authorities (SSL_CERT_FILE names a private one).
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                               context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return self._connection

    def _request(self, method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
                 query: Mapping[str, Any] | None = None, raw: bool = False) -> Any:
        """Send one request and return the decoded JSON answer (or, with ``raw``, the response and body)."""
        if self._token is None:
            raise StoreError(f"{self.location}: the store is not open (use it in a 'with' block)")
        target = self._prefix + API + path
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        sent = {"Authorization": f"Bearer {self._token}", "Accept": "application/json", **(headers or {})}
        if self._transactions:
            sent[TRANSACTION_HEADER] = self._transactions[-1]
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
            sent["Content-Type"] = "application/json"
        # Methods that may be sent twice: a connection that broke before the answer is retried once
        # on a fresh one. POST (opening or committing a transaction) is never sent twice.
        attempts = 2 if method in ("GET", "PUT", "DELETE") else 1
        for attempt in range(attempts):
            connection = self._connect()
            try:
                connection.request(method, target, body=data, headers=sent)
                response = connection.getresponse()
                content = response.read()
            except (http.client.HTTPException, ConnectionError, socket.timeout, OSError) as exc:
                connection.close()
                self._connection = None
                if attempt + 1 < attempts and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                                               BrokenPipeError)):
                    continue
                raise StoreUnavailable(f"{self.location}: the case-record server cannot be reached ({_reason(exc)}); "
                                       "nothing was written by this request. Check the URL and that "
                                       "'sarcoma-risk serve' runs there, then try again") from None
            self._last_used = time.monotonic()
            if response.status >= 400:
                raise _server_error(self.location, response.status, content)
            if raw:
                return response, content
            return json.loads(content) if content else None
        raise AssertionError("unreachable")  # the loop returns or raises

    # ---- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._refuse_if_read_only()
        opened = self._request("POST", "/transactions")["transaction"]
        self._transactions.append(opened)
        try:
            yield
        except BaseException:
            self._transactions.pop()
            # If the rollback cannot be sent, the server rolls the transaction back once it has
            # been idle for a while; either way nothing of it is written.
            with contextlib.suppress(SarcomaRiskError):
                self._request("DELETE", f"/transactions/{quote(opened)}")
            raise
        self._transactions.pop()
        self._request("POST", f"/transactions/{quote(opened)}/commit")

    # ---- reading -----------------------------------------------------------------------------

    def case_ids(self) -> list[str]:
        return list(self._request("GET", "/case-ids")["case_ids"])

    def exists(self, case_id: str) -> bool:
        try:
            self.get(case_id)
        except CaseNotFound:
            return False
        return True

    def get(self, case_id: str) -> CaseRecord:
        validate_case_id(case_id)
        return CaseRecord.from_dict(self._request("GET", f"/cases/{case_id}"))

    def records(self) -> Iterator[CaseRecord]:
        return iter([CaseRecord.from_dict(r) for r in self._request("GET", "/cases")["cases"]])

    def history(self, case_id: str | None = None, section: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        if case_id is not None:
            validate_case_id(case_id)
        if section is not None:
            check_section(section)
        check_limit(limit)
        return list(self._request("GET", "/history", query={"case_id": case_id, "section": section,
                                                             "limit": limit})["entries"])

    def read_section(self, case_id: str, section: str) -> tuple[dict[str, Any] | None, int]:
        validate_case_id(case_id)
        check_section(section)
        try:
            answer = self._request("GET", f"/cases/{case_id}/{section}")
        except CaseNotFound:
            return None, 0
        content, revision = answer["content"], int(answer["revision"])
        self._remember(case_id, section, content, revision)
        return content, revision

    def _remember(self, case_id: str, section: str, content: dict[str, Any], revision: int) -> None:
        if self._transactions:  # a rollback would undo this revision: never build on it later
            return
        # Kept as JSON text: callers may change their dict, and each use gets a fresh copy.
        self._seen[(case_id, section)] = (json.dumps(content, allow_nan=False), revision)
        self._seen.move_to_end((case_id, section))
        while len(self._seen) > REMEMBERED_SECTIONS:
            self._seen.popitem(last=False)

    # ---- writing -----------------------------------------------------------------------------

    def ensure_case(self, case_id: str) -> bool:
        validate_case_id(case_id)
        self._refuse_if_read_only()
        return bool(self._request("PUT", f"/cases/{case_id}")["created"])

    def put_section(self, case_id: str, section: str, content: Mapping[str, Any], *,
                    expected_revision: int | None = None) -> int:
        validate_case_id(case_id)
        content = validate_section(section, content)
        check_expected_revision(expected_revision)
        self._refuse_if_read_only()
        headers = {}
        if expected_revision == 0:
            headers["If-None-Match"] = "*"
        elif expected_revision is not None:
            headers["If-Match"] = f'"{expected_revision}"'
        self._seen.pop((case_id, section), None)
        revision = int(self._request("PUT", f"/cases/{case_id}/{section}", body=content, headers=headers)["revision"])
        self._remember(case_id, section, content, revision)
        return revision

    def update_section(self, case_id: str, section: str, change: Change) -> int:
        validate_case_id(case_id)
        check_section(section)
        self._refuse_if_read_only()
        for _ in range(UPDATE_ATTEMPTS):
            seen = self._seen.get((case_id, section))
            current, revision = (json.loads(seen[0]), seen[1]) if seen is not None else self.read_section(case_id, section)
            try:
                return self.put_section(case_id, section, change(current), expected_revision=revision)
            except StaleRevision:
                continue  # written by someone else since: read their version and apply the change again
        raise StaleRevision(f"case {case_id}, section {section}: changed by others {UPDATE_ATTEMPTS} times while "
                            "this update was being applied; nothing was written, try again")

    # ---- users -------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role | str, *, expires_days: int = 365) -> str:
        check_user_name(name)
        role = check_role(role)
        check_expires_days(expires_days)
        self._refuse_if_read_only()
        return str(self._request("POST", "/users", body={"name": name, "role": role.value,
                                                         "expires_days": expires_days})["token"])

    def users(self, *, include_past: bool = False) -> list[Account]:
        answer = self._request("GET", "/users", query={"include_past": "true" if include_past else None})
        return [Account.from_row(a) for a in answer["users"]]

    def revoke_user(self, name: str) -> int:
        check_user_name(name)
        self._refuse_if_read_only()
        return int(self._request("DELETE", f"/users/{name}")["revoked"])


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _server_error(location: str, status: int, content: bytes) -> SarcomaRiskError:
    """The exception a server's error answer stands for, with its message."""
    try:
        detail = json.loads(content)["error"]
        name, message = str(detail.get("type", "")), str(detail["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        name, message = "", content.decode("utf-8", "replace").strip()[:300] or f"HTTP status {status}"
    cls = _ERROR_CLASSES.get(name) or _STATUS_ERRORS.get(status) or StoreError
    return cls(f"{location}: {message}")
