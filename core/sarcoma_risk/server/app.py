"""The case-record server as an ASGI application (FastAPI), run by ``sarcoma-risk serve`` on uvicorn.

``create_app(ServerConfig(store=...))`` opens the store once to create or migrate it (so a server
never starts on a database it cannot use), then serves the JSON API under ``/api/v1`` (OpenAPI at
``/openapi.json``; no interactive docs, which would load scripts from the internet) and the
coordinator's pages. Run it in one process: open transactions live in that process's memory.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from sarcoma_risk import __version__
from sarcoma_risk.errors import SarcomaRiskError
from sarcoma_risk.server import api, web
from sarcoma_risk.server.responses import (
    LimitsAndHeaders,
    on_http_exception,
    on_sarcoma_risk_error,
    on_unexpected,
    on_validation_error,
)
from sarcoma_risk.server.service import ServerConfig, Service


def prepare_store(config: ServerConfig) -> None:
    """Create or migrate the served store (mode "a"), or raise the store's error saying why it cannot."""
    with config.new_store("a"):
        pass


def create_app(config: ServerConfig, *, prepare: bool = True) -> FastAPI:
    """The application serving ``config.store``. ``prepare`` first creates or migrates the store."""
    if prepare:
        prepare_store(config)
    service = Service(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.transactions.start()
        try:
            yield
        finally:
            service.transactions.stop()
            service.pool.close()

    app = FastAPI(title="SarcomaRisk case records", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  description="One case record per pseudonymous case, shared by 3D Slicer, QuPath and the "
                              "coordinators. Authenticate with 'Authorization: Bearer TOKEN'. Section revisions "
                              "are ETags: send If-Match to refuse a stale write (412).")
    app.state.service = service
    app.add_middleware(LimitsAndHeaders, max_body_bytes=config.max_body_bytes)
    app.add_exception_handler(SarcomaRiskError, on_sarcoma_risk_error)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
    api.register(app, service)
    web.register(app, service)
    app.mount("/static", StaticFiles(directory=str(resources.files("sarcoma_risk.server") / "static")), name="static")
    return app
