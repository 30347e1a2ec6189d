"""The web console in a real browser (Debian's Chromium through Playwright) against a real
`mdr demo` server: sign in, create a report with filters, watch it complete, download
it, search records and read the usage charts.

Playwright's sync API keeps an event loop marked running while it is started, so its
fixtures here are module-scoped (pytest-playwright's are per session): the loop is gone
before the suite's asyncio tests run.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.acceptance.browser import (
    CHROMIUM_ARGS,
    Demo,
    chromium_or_skip,
    running_demo,
    screenshot,
)

V1 = "/reporting/mdr_requests"
RECORDS = 20_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("console"), RECORDS) as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = chromium_or_skip()
    launched = playwright.chromium.launch(
        executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
    )
    expect.set_options(timeout=20_000)  # a loaded CI machine: 5 s is too tight
    yield launched
    expect.set_options(timeout=5_000)
    launched.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 900}, "accept_downloads": True}


class Watch:
    """Every request the page makes and every script error or CSP report it logs."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.auth: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)

    def _request(self, request: Any) -> None:
        self.urls.append(request.url)
        header = request.headers.get("authorization")
        if header:
            self.auth.append(header)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")
        if "Content Security Policy" in message.text:
            self.problems.append(f"CSP: {message.text}")


def sign_in(page: Page, demo: Demo) -> Watch:
    watch = Watch(page)
    page.goto(f"{demo.url}/console")
    page.get_by_label("API key").fill(demo.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/reports$"))
    return watch


def api(demo: Demo, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{demo.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {demo.key}"},
        timeout=30,
    )


def test_sign_in_keeps_the_key_in_session_storage_only(page: Page, demo: Demo) -> None:
    watch = Watch(page)
    page.goto(f"{demo.url}/console/usage")
    expect(page).to_have_url(re.compile(r"/console\?next=%2Fconsole%2Fusage$"))
    screenshot(page, "signin")
    page.get_by_label("API key").fill("mdr_not_a_key")
    page.keyboard.press("Enter")
    expect(page.locator("#api-key-error")).to_contain_text("unknown or revoked")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("API key").fill(demo.key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/usage$"))
    stored = page.evaluate("sessionStorage.getItem('mdr-console-key')")
    assert stored == demo.key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert f"Bearer {demo.key}" in watch.auth
    assert not any(demo.key in url for url in watch.urls)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console$"))
    assert page.evaluate("sessionStorage.getItem('mdr-console-key')") is None
    assert watch.problems == []


def test_create_a_filtered_report_watch_it_complete_download_and_delete(
    page: Page, demo: Demo
) -> None:
    watch = sign_in(page, demo)
    page.get_by_role("link", name="New report").first.click()
    expect(page).to_have_url(re.compile(r"/console/reports/new$"))

    # The time window, read in the chosen zone; directions, record types, format.
    now = datetime.now(UTC).replace(microsecond=0)
    page.get_by_label("Time zone").select_option("America/Chicago")
    chicago_now = now.astimezone(ZoneInfo("America/Chicago"))
    start = (chicago_now - timedelta(days=10)).replace(tzinfo=None)
    end = (chicago_now - timedelta(days=1)).replace(tzinfo=None)
    page.get_by_label("Outbound").check()
    page.get_by_label("Errors").check()
    page.get_by_label("Format").select_option("csv")
    page.get_by_label("Include message bodies").check()

    # The filter builder: the first join is always "and", and an "and" may not follow an
    # "or": said next to the field as soon as the join changes.
    page.get_by_role("button", name="Add filter").click()
    first = page.locator("li.filter").nth(0)
    expect(first.locator("legend")).to_have_text("Filter 1")
    expect(first.locator(".f-type option[value=or]")).to_be_disabled()
    first.get_by_label("Criterion").select_option("cli")
    first.get_by_label("Match").select_option("starts_with")
    first.get_by_label("Value").fill("+1")
    page.get_by_role("button", name="Add filter").click()
    page.get_by_role("button", name="Add filter").click()
    second, third = page.locator("li.filter").nth(1), page.locator("li.filter").nth(2)
    second.get_by_label("Join").select_option("or")
    expect(third.locator(".e-type")).to_contain_text("An 'and' may not follow an 'or'")
    expect(third.get_by_label("Join")).to_have_attribute("aria-invalid", "true")
    third.get_by_label("Join").select_option("or")
    expect(third.locator(".e-type")).to_have_text("")
    third.get_by_role("button", name="Remove").click()
    expect(page.locator("li.filter")).to_have_count(2)
    page.get_by_role("button", name="Add filter").click()  # after an "or": "or" only
    expect(page.locator("li.filter").nth(2).locator(".f-type")).to_have_value("or")
    expect(page.locator("li.filter").nth(2).locator(".f-type option[value=and]")).to_be_disabled()
    page.locator("li.filter").nth(2).get_by_role("button", name="Remove").click()
    second.get_by_label("Criterion").select_option("tags_list")
    second.get_by_label("Value").fill("x" * 300)  # longer than the API allows

    # The server's 400 goes next to the field its source.pointer names.
    page.get_by_label("Start", exact=True).fill(end.isoformat())
    page.get_by_label("End", exact=True).fill(start.isoformat())
    page.get_by_role("button", name="Create report").click()
    expect(page.locator("#end_time-error")).to_contain_text("end_time must be after start_time")
    expect(page.get_by_label("End", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(second.locator(".e-value")).to_contain_text("tag must be a string of 1 to")
    expect(second.get_by_label("Value")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "create")

    page.get_by_label("Start", exact=True).fill(start.isoformat())
    page.get_by_label("End", exact=True).fill(end.isoformat())
    second.get_by_label("Value").fill("campaign-7, vip")
    page.get_by_role("button", name="Create report").click()
    expect(page).to_have_url(re.compile(r"/console/reports\?created="))
    request_id = page.url.split("created=", 1)[1]
    row = page.locator(f"tr[data-id='{request_id}']")
    expect(row).to_have_count(1)
    saw_pending = row.get_attribute("data-status") == "PENDING"

    # Live status: the row turns Complete without a reload, shown by word and icon.
    expect(row).to_have_attribute("data-status", "COMPLETE", timeout=60_000)
    expect(row.locator(".status .label")).to_have_text("Complete")
    expect(row.locator(".status .icon")).to_have_text("✔")
    if saw_pending:  # the build outlasted the first poll: its end is said aloud
        expect(page.locator("#page-status")).to_contain_text(": Complete")
    screenshot(page, "reports")

    created = api(demo, f"{V1}/{request_id}").json()
    assert created["timezone"] == "America/Chicago"
    assert created["directions"] == ["outbound"] and created["record_types"] == [1, 3]
    assert created["include_message_body"] is True
    assert json.loads(created["filters"]) == [
        {"filter_type": "and", "cli": "+1", "cli_filter": "starts_with"},
        {"filter_type": "or", "tags_list": ["campaign-7", "vip"]},
    ]
    assert created["start_time"].startswith(start.isoformat())
    assert created["record_count"] > 0

    # The browser's download is byte for byte the API's file.
    with page.expect_download() as downloading:
        row.get_by_role("link", name=re.compile("^Download")).click()
    downloaded = Path(downloading.value.path()).read_bytes()
    link = api(demo, f"{V1}/{request_id}").json()["report_url"]
    from_api = httpx.get(link, timeout=30).content
    assert downloaded == from_api
    rows = list(csv.DictReader(io.StringIO(downloaded.decode())))
    assert len(rows) == created["record_count"]
    assert {r["direction"] for r in rows} == {"outbound"}
    assert all(
        r["cli"].lstrip("+").startswith("1") or {"campaign-7", "vip"} & set(r["tags"].split(";"))
        for r in rows
    )
    assert "message_body" in rows[0]

    # Delete: confirmed in a dialog; the row goes and the API answers 404.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete")).click()
    expect(row).to_have_count(0)
    expect(page.locator("#page-status")).to_contain_text("Deleted")
    assert api(demo, f"{V1}/{request_id}").status_code == 404
    assert not any(demo.key in url for url in watch.urls)
    assert watch.problems == []


def test_reports_page_is_usable_from_the_keyboard(page: Page, demo: Demo) -> None:
    watch = sign_in(page, demo)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="New report").last).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/reports/new$"))
    page.get_by_label("Start", exact=True).focus()
    # every control of the form is reachable with Tab and has a label
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('#create-form input, #create-form select')]
             .filter(e => !e.labels || e.labels.length === 0).map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    assert watch.problems == []


def test_search_shows_the_api_page_of_records(page: Page, demo: Demo) -> None:
    watch = sign_in(page, demo)
    page.get_by_role("link", name="Search records").click()
    page.get_by_label("Direction").select_option("outbound")
    page.get_by_label("Per page").select_option("20")
    page.get_by_role("button", name="Search").click()
    table = page.locator("#records-body tr")
    expect(table.first).to_be_visible()
    shown = table.evaluate_all("rows => rows.map(r => r.dataset.id)")
    expected = api(
        demo,
        "/v2/detail_records",
        **{
            "filter[record_type]": "messaging",
            "filter[date_range]": "last_30_days",
            "filter[direction]": "outbound",
            "sort": "-created_at",
            "page[number]": "1",
            "page[size]": "20",
        },
    ).json()
    assert shown == [item["uuid"] for item in expected["data"]]
    assert len(shown) == 20
    directions = page.locator("#records-body tr td:nth-child(2)").all_inner_texts()
    assert set(directions) == {"outbound"}
    screenshot(page, "search")

    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#records-page")).to_contain_text("Page 2")
    second = table.evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert second and not set(second) & set(shown)

    # A 400 of the API is shown next to the field whose parameter it names.
    page.get_by_label("Sender number (cli): value").fill("+")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#cli_value-error")).to_contain_text("filter[cli][contains]")
    expect(page.get_by_label("Sender number (cli): value")).to_have_attribute(
        "aria-invalid", "true"
    )
    assert watch.problems == []


def test_usage_charts_have_the_api_figures(page: Page, demo: Demo) -> None:
    watch = sign_in(page, demo)
    page.get_by_role("link", name="Usage").click()
    for chart in ("chart-messages", "chart-cost", "chart-profiles"):
        section = page.locator(f"#{chart}")
        expect(section).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"), timeout=60_000)
        expect(section.locator("canvas")).to_have_count(1)
    screenshot(page, "usage")

    first = page.get_by_label("First day").input_value()
    last = page.get_by_label("Last day").input_value()
    whole = api(
        demo,
        "/v2/reports/mdr_usage_reports/sync",
        aggregation_type="NO_AGGREGATION",
        start_date=first,
        end_date=last,
    ).json()["data"]["result"]
    sent = sum(int(r["sent"] or 0) for r in whole)
    received = sum(int(r["received"] or 0) for r in whole)
    figures = page.locator("#chart-messages table.figures tbody tr")
    table_sent = sum(
        int(text.replace(",", ""))
        for text in figures.locator("td:nth-child(2)").all_text_contents()
    )
    table_received = sum(
        int(text.replace(",", ""))
        for text in figures.locator("td:nth-child(4)").all_text_contents()
    )
    assert (table_sent, table_received) == (sent, received)
    assert sent + received > 0
    assert watch.problems == []


def test_a_zone_chosen_before_the_page_script_runs_is_kept(browser: Browser, demo: Demo) -> None:
    """The create page preselects the browser's zone, but never over the user's choice: on a
    slow page the select is usable before the module runs (a loaded CI machine showed it)."""
    context = browser.new_context(timezone_id="America/New_York")
    page = context.new_page()
    slow: list[bool] = [False]

    def late_module(route: Any) -> None:
        body = route.fetch().text() + '\ndocument.body.dataset.createReady = "yes";\n'
        if slow[0]:  # a module may await before its body runs: as if it arrived late
            body = "await new Promise((done) => setTimeout(done, 1500));\n" + body
        route.fulfill(body=body, content_type="text/javascript")

    page.route("**/console/static/js/create.js", late_module)
    try:
        sign_in(page, demo)
        page.goto(f"{demo.url}/console/reports/new")
        expect(page.locator("body")).to_have_attribute("data-create-ready", "yes")
        expect(page.get_by_label("Time zone")).to_have_value("America/New_York")

        slow[0] = True
        page.goto(f"{demo.url}/console/reports/new")
        page.get_by_label("Time zone").select_option("America/Chicago")
        expect(page.locator("body")).to_have_attribute("data-create-ready", "yes")
        expect(page.get_by_label("Time zone")).to_have_value("America/Chicago")
    finally:
        context.close()
