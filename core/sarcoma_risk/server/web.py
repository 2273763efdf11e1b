"""The coordinator's web pages: the case list with filters, one case's record and history, the
cohort's Kaplan-Meier plot, and CSV/JSON exports.

Pages are rendered on the server (Jinja2) with local CSS and a few lines of local JavaScript: they
work without internet. A coordinator or an admin signs in with their API token, which the browser
keeps in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) for 8 hours; the pages only read,
and the JSON API accepts the token in the Authorization header only, so the cookie cannot be used
to write from another site.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sarcoma_risk.errors import AuthenticationRequired, CaseNotFound, InvalidInput, PermissionDenied, SarcomaRiskError
from sarcoma_risk.records.accounts import Account
from sarcoma_risk.records.export import csv_text
from sarcoma_risk.records.schema import SECTIONS, validate_case_id
from sarcoma_risk.records.sql import SqlStore
from sarcoma_risk.records.summary import MODALITIES, CaseSummary, summarize
from sarcoma_risk.server.cohort import kaplan_meier_png
from sarcoma_risk.server.responses import status_of
from sarcoma_risk.server.service import SESSION_COOKIE, Service, need_coordinator
from sarcoma_risk.settings import default_weights_dir

T = TypeVar("T")
SESSION_S = 8 * 3600
#: Filters of the case list: name -> (label, test on a case summary).
MISSING_FILTERS: dict[str, tuple[str, Callable[[CaseSummary], bool]]] = {
    "": ("any record", lambda s: True),
    "any": ("a modality missing", lambda s: bool(s.missing)),
    "none": ("all modalities in", lambda s: not s.missing),
    **{m: (f"{m} missing", lambda s, m=m: m in s.missing) for m in MODALITIES},
}
GROUP_FILTERS: dict[str, tuple[str, Callable[[CaseSummary], bool]]] = {
    "": ("any fused risk", lambda s: True),
    "high": ("high risk", lambda s: s.risk_group == "high"),
    "low": ("low risk", lambda s: s.risk_group == "low"),
    "outdated": ("fused risk out of date", lambda s: s.fusion is not None and not s.fusion_current),
    "unfused": ("not fused yet", lambda s: s.fusion is None),
}


def register(app: FastAPI, service: Service) -> None:
    """Add the pages' routes to ``app`` (left out of the OpenAPI description)."""
    router = _Pages(app)
    templates = Jinja2Templates(directory=str(resources.files("sarcoma_risk.server") / "templates"))
    templates.env.filters["readable"] = readable

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"sections": SECTIONS, "modalities": MODALITIES, **context},
                                          status_code=status)

    async def signed_in(request: Request, work: Callable[[SqlStore, Account], T]) -> T | Response:
        """``work`` for a signed-in coordinator or admin; else the sign-in page or an error page."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return RedirectResponse(request.url_for("login_form"), status_code=303)
        try:
            return await service.run(request, work, allowed=need_coordinator, token=token)
        except AuthenticationRequired as exc:
            response = page(request, "login.html", 401, error=str(exc))
            response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
            return response
        except SarcomaRiskError as exc:
            return page(request, "error.html", status_of(exc), error=str(exc), title=_title(exc))

    @router.get("/", name="home")
    async def home(request: Request) -> Response:
        return RedirectResponse(request.url_for("case_list"), status_code=303)

    @router.get("/login", name="login_form")
    async def login_form(request: Request) -> Response:
        return page(request, "login.html")

    @router.post("/login", name="login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()

        def check() -> Account:
            with service.pool.lend() as store:
                account = service.authenticate(store, token)
            need_coordinator(account)
            return account
        try:
            await run_in_threadpool(check)
        except SarcomaRiskError as exc:
            return page(request, "login.html", status_of(exc), error=str(exc))
        response = RedirectResponse(request.url_for("case_list"), status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_S, path=_cookie_path(request), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @router.post("/logout", name="logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse(request.url_for("login_form"), status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
        return response

    @router.get("/cases", name="case_list")
    async def case_list(request: Request, q: str = "", missing: str = "", group: str = "") -> Response:
        def work(store: SqlStore, account: Account) -> dict[str, Any]:
            return {"account": account, "summaries": [summarize(r) for r in store.records()]}
        found = await signed_in(request, work)
        if isinstance(found, Response):
            return found
        summaries: list[CaseSummary] = found["summaries"]
        wanted_missing = MISSING_FILTERS.get(missing, MISSING_FILTERS[""])[1]
        wanted_group = GROUP_FILTERS.get(group, GROUP_FILTERS[""])[1]
        shown = [s for s in summaries if q.strip().lower() in s.case_id.lower() and wanted_missing(s) and wanted_group(s)]
        counts = {
            "cases": len(summaries),
            "complete": sum(not s.missing for s in summaries),
            "high": sum(s.risk_group == "high" for s in summaries),
            "low": sum(s.risk_group == "low" for s in summaries),
            "outdated": sum(s.fusion is not None and not s.fusion_current for s in summaries),
            "unfused": sum(s.fusion is None for s in summaries),
        }
        return page(request, "cases.html", account=found["account"], shown=shown, counts=counts,
                    filters={"q": q, "missing": missing, "group": group},
                    missing_filters={k: v[0] for k, v in MISSING_FILTERS.items()},
                    group_filters={k: v[0] for k, v in GROUP_FILTERS.items()},
                    km_description=await run_in_threadpool(_km_description, service))

    @router.get("/cases/{case_id}", name="case_page")
    async def case_page(request: Request, case_id: str) -> Response:
        def work(store: SqlStore, account: Account) -> dict[str, Any]:
            validate_case_id(case_id)
            record = store.get(case_id)
            return {"account": account, "record": record, "summary": summarize(record),
                    "history": store.history(case_id)[::-1]}
        found = await signed_in(request, work)
        if isinstance(found, Response):
            return found
        return page(request, "case.html", **found)

    @router.get("/cohort/kaplan-meier.png", name="kaplan_meier")
    async def kaplan_meier(request: Request) -> Response:
        allowed = await signed_in(request, lambda store, account: account)
        if isinstance(allowed, Response):
            return allowed
        png, _ = await run_in_threadpool(_km, service)
        return Response(png, media_type="image/png")

    @router.get("/export/cases.csv", name="download_csv")
    async def download_csv(request: Request) -> Response:
        rows = await signed_in(request, lambda store, _: store.export_rows())
        if isinstance(rows, Response):
            return rows
        return Response(csv_text(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="cases.csv"'})

    @router.get("/export/cases.json", name="download_json")
    async def download_json(request: Request) -> Response:
        records = await signed_in(request, lambda store, _: [r.to_dict() for r in store.records()])
        if isinstance(records, Response):
            return records
        return Response(json.dumps(records, indent=2, sort_keys=True, allow_nan=False) + "\n",
                        media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="cases.json"'})


class _Pages:
    """``app.get``/``post`` for pages: not part of the API's OpenAPI description."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.get(path, include_in_schema=False, **options)

    def post(self, path: str, **options: Any) -> Callable[..., Any]:
        return self.app.post(path, include_in_schema=False, **options)


def readable(value: Any) -> str:
    """A section value in one line: numbers to 4 significant digits, plain lists joined, objects as k=v."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            return f"{len(value)} item(s)"
        return ", ".join(readable(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={readable(v)}" for k, v in sorted(value.items()))
    return str(value)


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/"


def _title(exc: SarcomaRiskError) -> str:
    if isinstance(exc, PermissionDenied):
        return "Not for your role"
    if isinstance(exc, CaseNotFound):
        return "No such case"
    if isinstance(exc, InvalidInput):
        return "Not a valid request"
    return "The case records cannot be read now"


def _km(service: Service) -> tuple[bytes, str]:
    return kaplan_meier_png(service.config.weights or default_weights_dir())


def _km_description(service: Service) -> str | None:
    """The plot's caption, or None when the weights folder has no validation cohort to draw."""
    try:
        return _km(service)[1]
    except (SarcomaRiskError, OSError):
        return None
