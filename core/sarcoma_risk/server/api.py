"""The JSON API, ``/api/v1``: case records, sections with revisions as ETags, history, exports,
transactions and users. Its OpenAPI description is served at ``/openapi.json``.

Every route needs ``Authorization: Bearer TOKEN``. Reading one case is open to every role; writing
a section to the roles that own it (radiologist: radiology, pathologist: pathology, coordinator:
clinical and fusion, admin: all); the whole cohort (every record, exports, the full history) to
coordinators and admins; users to admins.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from sarcoma_risk import __version__
from sarcoma_risk.errors import InvalidInput, StaleRevision
from sarcoma_risk.records.accounts import Account
from sarcoma_risk.records.base import check_section, stale_message
from sarcoma_risk.records.export import csv_text
from sarcoma_risk.records.remote import API, TRANSACTION_HEADER
from sarcoma_risk.records.schema import SECTIONS
from sarcoma_risk.records.sql import SqlStore
from sarcoma_risk.server.responses import MalformedBody, error_response, json_body
from sarcoma_risk.server.service import Service, need_admin, need_coordinator, need_writer_of

# Case ids and sections are checked by the store, whose messages say what a pseudonymous id is.
CASE_ID = Path(description="pseudonymous case id (1-32 letters, digits, '-' or '_')")
SECTION = Path(description="one of " + ", ".join(SECTIONS))
_JSON_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}


def etag(revision: int) -> str:
    return f'"{revision}"'


def expected_revision(request: Request) -> tuple[int | None, bool]:
    """The revision a PUT says it read: (``If-Match`` revision, or 0 for ``If-None-Match: *``, or None
    for an unconditional write; and whether ``If-Match: *`` asked for an existing section)."""
    if_match = request.headers.get("if-match")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() != "*" or if_match is not None:
            raise MalformedBody("If-None-Match: only '*' (the section must not exist yet) is understood, without If-Match")
        return 0, False
    if if_match is None:
        return None, False
    tag = if_match.strip()
    if tag == "*":
        return None, True
    tag = tag[2:] if tag.startswith("W/") else tag
    if len(tag) >= 3 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
        return int(tag[1:-1]), False
    raise MalformedBody(f'If-Match: {if_match!r} is not a section revision; send the ETag you read, e.g. "3"')


def register(app: FastAPI, service: Service) -> None:
    """Add the API's routes to ``app`` (on the application itself: an included router costs every
    request an extra round of route matching)."""
    router = _Prefixed(app, API)

    @router.get("/health", summary="Whether the server can reach its database (no token needed)")
    async def health(request: Request) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            with service.pool.lend() as store:
                return {"status": "ok", "schema_version": store.schema_version()}
        return await run_in_threadpool(check)

    @router.get("/status", summary="The server, its store and the account the token belongs to")
    async def status(request: Request) -> dict[str, Any]:
        def work(store: SqlStore, account: Account) -> dict[str, Any]:
            return {"server_version": __version__, "store": service.config.location().kind.value,
                    "schema_version": store.schema_version(), "account": account.to_dict(),
                    "transaction_idle_s": service.config.transaction_idle_s}
        return await service.run(request, work)

    @router.get("/case-ids", summary="Every case id, sorted")
    async def case_ids(request: Request) -> dict[str, Any]:
        return await service.run(request, lambda store, _: {"case_ids": store.case_ids()})

    @router.get("/cases", summary="Every case record (coordinators and admins)")
    async def cases(request: Request) -> dict[str, Any]:
        return await service.run(request, lambda store, _: {"cases": [r.to_dict() for r in store.records()]},
                                 allowed=need_coordinator)

    @router.get("/cases/{case_id}", summary="One case record")
    async def case(request: Request, case_id: str = CASE_ID) -> dict[str, Any]:
        return await service.run(request, lambda store, _: store.get(case_id).to_dict())

    @router.put("/cases/{case_id}", summary="Create an empty record for the case if it has none")
    async def ensure_case(request: Request, case_id: str = CASE_ID) -> JSONResponse:
        created = await service.run(request, lambda store, _: store.ensure_case(case_id))
        return JSONResponse({"case_id": case_id, "created": created}, status_code=201 if created else 200)

    @router.get("/cases/{case_id}/{section}", summary="One section with its revision (also the ETag)")
    async def read_section(request: Request, case_id: str = CASE_ID, section: str = SECTION) -> JSONResponse:
        content, revision = await service.run(request, lambda store, _: store.read_section(case_id, section))
        if content is None:
            return error_response(404, "CaseNotFound", f"case {case_id} has no {section} section yet")
        return JSONResponse({"case_id": case_id, "section": section, "revision": revision, "content": content},
                            headers={"ETag": etag(revision)})

    @router.put("/cases/{case_id}/{section}", openapi_extra={"requestBody": _JSON_OBJECT},
                summary="Write a section; If-Match: \"N\" refuses a stale write with 412, If-None-Match: * a second one")
    async def write_section(request: Request, case_id: str = CASE_ID, section: str = SECTION) -> JSONResponse:
        check_section(section)  # an unknown section is a bad request before it is a question of roles
        expected, must_exist = expected_revision(request)
        content = json_body(await request.body())

        def work(store: SqlStore, _: Account) -> int:
            if not must_exist:
                return store.put_section(case_id, section, content, expected_revision=expected)
            with store.transaction():
                _, current = store.read_section(case_id, section)
                if current == 0:
                    raise StaleRevision(stale_message(case_id, section, 1, 0))
                return store.put_section(case_id, section, content, expected_revision=current)
        revision = await service.run(request, work, allowed=need_writer_of(section))
        return JSONResponse({"case_id": case_id, "section": section, "revision": revision},
                            status_code=201 if revision == 1 else 200, headers={"ETag": etag(revision)})

    @router.get("/history", summary="The audit log, oldest first (without case_id: coordinators and admins)")
    async def history(request: Request, case_id: str | None = None, section: str | None = None,
                      limit: int | None = Query(None, ge=1)) -> dict[str, Any]:
        return await service.run(request, lambda store, _: {"entries": store.history(case_id, section, limit)},
                                 allowed=None if case_id is not None else need_coordinator)

    @router.get("/export.csv", summary="Every case as CSV, one row per case (coordinators and admins)")
    async def export_csv(request: Request) -> Response:
        rows = await service.run(request, lambda store, _: store.export_rows(), allowed=need_coordinator)
        return Response(csv_text(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="cases.csv"'})

    @router.get("/export.json", summary="Every full case record as JSON (coordinators and admins)")
    async def export_json(request: Request) -> JSONResponse:
        records = await service.run(request, lambda store, _: [r.to_dict() for r in store.records()],
                                    allowed=need_coordinator)
        return JSONResponse(records, headers={"Content-Disposition": 'attachment; filename="cases.json"'})

    @router.post("/transactions", status_code=201,
                 summary=f"Open a transaction (a savepoint inside the one named by {TRANSACTION_HEADER})")
    async def begin(request: Request) -> dict[str, Any]:
        parent = request.headers.get(TRANSACTION_HEADER)
        host = request.client.host if request.client else "unknown"

        def in_thread() -> str:
            with service.pool.lend() as store:
                account = service.authenticate(store, service.bearer_token(request))
            return service.transactions.begin(account.name, host, parent)
        return {"transaction": await run_in_threadpool(in_thread), "idle_timeout_s": service.config.transaction_idle_s}

    @router.post("/transactions/{transaction}/commit", summary="Commit a transaction (or release a savepoint)")
    async def commit(request: Request, transaction: str) -> dict[str, Any]:
        await _with_account(service, request, lambda account: service.transactions.commit(transaction, account.name))
        return {"transaction": transaction, "committed": True}

    @router.delete("/transactions/{transaction}", summary="Roll a transaction back")
    async def rollback(request: Request, transaction: str) -> dict[str, Any]:
        await _with_account(service, request, lambda account: service.transactions.rollback(transaction, account.name))
        return {"transaction": transaction, "rolled_back": True}

    @router.get("/users", summary="Users with valid tokens (include_past: every token issued); admins")
    async def users(request: Request, include_past: bool = False) -> dict[str, Any]:
        return await service.run(request, lambda store, _: {"users": [a.to_dict() for a in store.users(
            include_past=include_past)]}, allowed=need_admin)

    @router.post("/users", status_code=201, openapi_extra={"requestBody": _JSON_OBJECT},
                 summary="Issue a token to a user: {name, role, expires_days}; the answer holds it, once; admins")
    async def add_user(request: Request) -> dict[str, Any]:
        body = json_body(await request.body())
        if not isinstance(body, dict) or not {"name", "role"} <= set(body):
            raise InvalidInput("users: send a JSON object with name, role and optionally expires_days")

        def work(store: SqlStore, _: Account) -> dict[str, Any]:
            token = store.add_user(body["name"], body["role"], expires_days=body.get("expires_days", 365))
            return {"name": body["name"], "token": token}
        return await service.run(request, work, allowed=need_admin)

    @router.delete("/users/{name}", summary="Revoke a user's tokens; admins")
    async def revoke_user(request: Request, name: str) -> dict[str, Any]:
        def work(store: SqlStore, _: Account) -> dict[str, Any]:
            revoked = store.revoke_user(name)
            service.forget_accounts()  # refused from the next request on, not after the cache's time
            return {"name": name, "revoked": revoked}
        return await service.run(request, work, allowed=need_admin)


class _Prefixed:
    """``app.get``/``put``/``post``/``delete`` with a path prefix, for the route decorators above."""

    def __init__(self, app: FastAPI, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    def get(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.get(self.prefix + path, **options)

    def put(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.put(self.prefix + path, **options)

    def post(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.post(self.prefix + path, **options)

    def delete(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.delete(self.prefix + path, **options)


async def _with_account(service: Service, request: Request, action: Callable[[Account], None]) -> None:
    """Authenticate, then run ``action(account)`` in a worker thread (transaction verbs)."""
    def in_thread() -> None:
        with service.pool.lend() as store:
            account = service.authenticate(store, service.bearer_token(request))
        action(account)

    await run_in_threadpool(in_thread)
