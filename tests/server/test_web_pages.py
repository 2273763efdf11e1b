"""The coordinator's web pages in a real browser: headless Chromium (the system's, Debian package
``chromium``) driven by Playwright for Python. Screenshots are kept in build/test-artefacts/web/.

The store holds the demo clinical table's six cases with radiology and pathology scores for some, and
fused risks from the shipped fusion model (``sarcoma-risk fuse``), one of them out of date.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from records.conftest import content
from sarcoma_risk.cli import main
from sarcoma_risk.records.sqlite import SqliteStore
from serverutil import server_in_thread

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "build" / "test-artefacts" / "web"
DEMO_TABLE = ROOT / "core" / "sarcoma_risk" / "data" / "demo_clinical.csv"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("SARCOMA_RISK_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed; install it, e.g. "
                                                                "'apt-get install chromium' on Debian (.ci/run does)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served store with six cases in every state, and a coordinator's and a radiologist's token."""
    path = tmp_path_factory.mktemp("web") / "cases.sqlite"
    assert main(["clinical", "import", str(DEMO_TABLE), "--store", str(path)]) == 0
    with SqliteStore(path, "a") as store:
        for case_id, radiology, pathology in (("DEMO-001", 1.2, 0.8), ("DEMO-003", -0.9, -0.6), ("DEMO-004", 0.3, None),
                                              ("DEMO-005", None, 0.2)):
            if radiology is not None:
                store.put_section(case_id, "radiology", content("radiology", score=radiology, percentile=50.0,
                                                                sequences=["t2fs", "t1ce"]))
            if pathology is not None:
                store.put_section(case_id, "pathology", content("pathology", score=pathology))
        coordinator = store.add_user("c.coordinator", "coordinator")
        radiologist = store.add_user("r.radiologist", "radiologist")
    for case_id in ("DEMO-001", "DEMO-003", "DEMO-004"):
        assert main(["fuse", "--case", case_id, "--store", str(path)]) == 0
    with SqliteStore(path, "a") as store:  # a new radiology score after the fusion: out of date
        store.put_section("DEMO-004", "radiology", content("radiology", score=0.4, percentile=55.0,
                                                          sequences=["t2fs", "t1ce"]))
    with server_in_thread(str(path)) as url:
        yield url, path, coordinator, radiologist


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    """A fresh browser context (no cookies) that records every URL it requests."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda r: page.requested.append(r.url))
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / name), full_page=True)


def sign_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/cases")
    assert page.url.endswith("/login")  # no session yet: sent to sign in
    page.fill("#token", token)
    page.click("button[type=submit]")


def rows(page) -> list[str]:
    return page.eval_on_selector_all("#case-table tbody tr[data-case]", "rows => rows.map(r => r.dataset.case)")


def test_the_coordinator_signs_in_and_sees_each_cases_sections_risk_and_missing_modalities(page, site):
    url, _, coordinator, _ = site
    sign_in(page, url, coordinator)
    page.wait_for_selector("#case-table")
    assert page.url.endswith("/cases")
    assert rows(page) == [f"DEMO-00{i}" for i in range(1, 7)]
    assert "6 case(s)" in page.inner_text("#count-cases")
    demo2 = page.locator("tr[data-case=DEMO-002] td")
    assert demo2.nth(2).inner_text() == "missing" and demo2.nth(3).inner_text() == "missing"
    # Missing modalities are highlighted by the local style sheet.
    assert page.eval_on_selector("tr[data-case=DEMO-002] td.missing",
                                 "td => getComputedStyle(td).backgroundColor") == "rgb(253, 236, 234)"
    demo1 = page.locator("tr[data-case=DEMO-001] td")
    assert [demo1.nth(i).inner_text() for i in range(1, 5)] == ["r1", "r1", "r1", "r1"]
    assert demo1.nth(5).inner_text() in ("high", "low")
    assert "out of date" in page.locator("tr[data-case=DEMO-004] td").nth(4).inner_text()
    assert page.eval_on_selector("#kaplan-meier", "img => img.complete && img.naturalWidth") > 300
    shot(page, "case-list.png")
    assert all(u.startswith(url) for u in page.requested), "the page loaded something from outside the server"


def test_filters_narrow_the_case_list(page, site):
    url, _, coordinator, _ = site
    sign_in(page, url, coordinator)
    page.select_option("select[name=missing]", "radiology")  # applied at once by the page's script
    page.wait_for_url("**missing=radiology**")
    assert rows(page) == ["DEMO-002", "DEMO-005", "DEMO-006"]
    page.select_option("select[name=missing]", "none")
    page.wait_for_url("**missing=none**")
    assert rows(page) == ["DEMO-001", "DEMO-003"]
    page.select_option("select[name=group]", "outdated")
    page.wait_for_url("**group=outdated**")
    assert rows(page) == []
    assert "No case matches" in page.inner_text("#case-table")
    page.goto(f"{url}/cases?q=demo-00&group=outdated")
    assert rows(page) == ["DEMO-004"]
    shot(page, "case-list-filtered.png")


def test_a_case_page_shows_the_record_the_fused_risk_and_the_history(page, site):
    url, path, coordinator, _ = site
    sign_in(page, url, coordinator)
    page.click("a:text('DEMO-001')")
    page.wait_for_selector("#fused-risk")
    with SqliteStore(path, "r") as store:
        record, history = store.get("DEMO-001"), store.history("DEMO-001")
    fused = page.inner_text("#fused-risk")
    assert f"{record.fusion['group'].upper()} RISK" in fused.upper() and f"{record.fusion['risk']:+.2f}" in fused
    assert "sub-model clinical+radiology[t2fs+t1ce]+pathology" in fused
    assert "revision 1" in page.inner_text("#section-radiology") and "1.2" in page.inner_text("#section-radiology")
    assert page.locator("#history tbody tr").count() == len(history)
    shot(page, "case-page.png")
    page.goto(f"{url}/cases/DEMO-004")
    assert "Out of date" in page.inner_text("#fused-risk")
    page.goto(f"{url}/cases/DEMO-404")
    assert "No such case" in page.inner_text("h1")


def test_csv_and_json_export_buttons_download_every_record(page, site):
    url, path, coordinator, _ = site
    sign_in(page, url, coordinator)
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    table = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8"))))
    with page.expect_download() as json_download:
        page.click("#export-json")
    records = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    with SqliteStore(path, "r") as store:
        expected = [r.to_dict() for r in store.records()]
    assert csv_download.value.suggested_filename == "cases.csv" and json_download.value.suggested_filename == "cases.json"
    assert [r["case_id"] for r in table] == [r["case_id"] for r in expected]
    assert records == expected


def test_a_radiologist_token_does_not_open_the_coordinator_pages_and_signing_out_ends_the_session(page, site):
    url, _, coordinator, radiologist = site
    sign_in(page, url, radiologist)
    assert "the case list, exports and full history are for coordinators and admins" in page.inner_text(".error")
    shot(page, "sign-in-refused.png")
    assert page.context.cookies() == []
    sign_in(page, url, coordinator)
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto(f"{url}/cases")
    assert page.url.endswith("/login")
    response = page.goto(f"{url}/export/cases.csv")
    assert response.url.endswith("/login")  # no export without a session
