"""Errors as JSON with a clear message, the request body limit, and the headers every answer carries.

An error answer is ``{"error": {"type": CLASS, "message": TEXT, "status": CODE}}``: ``type`` is the
SarcomaRisk exception class, which the HTTP client raises again on its side, so a stale write is a
:class:`~sarcoma_risk.errors.StaleRevision` wherever the store is.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sarcoma_risk.errors import (
    AuthenticationRequired,
    CaseNotFound,
    InvalidInput,
    PermissionDenied,
    ReadOnlyStore,
    SarcomaRiskError,
    StaleRevision,
    StoreUnavailable,
)
from sarcoma_risk.server.transactions import TransactionClosed

log = logging.getLogger(__name__)

#: HTTP status of each error class (the first that matches, most specific first).
STATUS: tuple[tuple[type[SarcomaRiskError], int], ...] = (
    (AuthenticationRequired, 401),
    (PermissionDenied, 403),
    (ReadOnlyStore, 403),
    (CaseNotFound, 404),
    (TransactionClosed, 409),
    (StaleRevision, 412),
    (InvalidInput, 422),
    (StoreUnavailable, 503),
)
#: Seconds a client is asked to wait before trying again after a 503.
RETRY_AFTER_S = 5
#: The pages load nothing from elsewhere (no CDN: they work without internet) and are not framed.
CSP = b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"


class BodyTooLarge(InvalidInput):
    """A request body over the server's limit (HTTP 413)."""


class MalformedBody(InvalidInput):
    """A request body that is not the JSON object expected (HTTP 400)."""


def error_response(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": error, "message": message, "status": status}}, status_code=status,
                        headers=headers)


def status_of(exc: SarcomaRiskError) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, MalformedBody):
        return 400
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def error_for(exc: SarcomaRiskError) -> JSONResponse:
    status = status_of(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="SarcomaRisk"'
    elif status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    # The client raises the same class again; server-only classes travel as their nearest public base.
    name = type(exc).__name__ if type(exc).__module__ == "sarcoma_risk.errors" else _public_base(exc)
    if status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)
    return error_response(status, name, str(exc), headers)


def _public_base(exc: SarcomaRiskError) -> str:
    return next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "sarcoma_risk.errors")


async def on_sarcoma_risk_error(request: Request, exc: SarcomaRiskError) -> Response:
    return error_for(exc)


async def on_http_exception(request: Request, exc: HTTPException) -> Response:
    messages = {404: f"no such resource: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return error_response(exc.status_code, "HTTPError", messages.get(exc.status_code, str(exc.detail)),
                          dict(exc.headers or {}))


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
    return error_response(422, "InvalidInput", problems or "the request is not valid")


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return error_response(500, "StoreError", "the server failed to answer this request (its log has the details); "
                                             "nothing was written unless the answer said so")


class LimitsAndHeaders:
    """ASGI middleware: refuse bodies over ``max_body_bytes`` (413, before the route reads them) and add
    headers every answer needs (no caching of patient records, no MIME sniffing, nothing loaded from
    other sites)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self._message(seen))
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"),
                                    (b"referrer-policy", b"no-referrer"), (b"content-security-policy", CSP)):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, counted, with_headers)

    def _message(self, size: int) -> str:
        return (f"the request body ({size} bytes or more) is larger than this server accepts ({self.max_body_bytes} "
                "bytes); nothing was written")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = error_response(413, "InvalidInput", self._message(size), {"Connection": "close"})
        await response(scope, receive, send)


def json_body(raw: bytes) -> Any:
    """The request body as JSON; :class:`MalformedBody` (400) with what is wrong."""
    if not raw:
        raise MalformedBody("the request has no body; send a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise MalformedBody("the request body is not UTF-8 text; send a JSON object") from None
    except ValueError as exc:
        raise MalformedBody(f"the request body is not valid JSON ({exc}); nothing was written") from None
