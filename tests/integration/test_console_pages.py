"""The console's pages in-process: served without a key and holding no data, a
Content-Security-Policy that admits no inline script, every asset local, every form
control labelled, and the vendored library with its licence and version."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mdr_reporting.console import CONTENT_SECURITY_POLICY
from mdr_reporting.console.routes import PAGES
from tests.conftest import Api

PAGE_PATHS = ["/console", *(f"/console{path}" for path, _, _ in PAGES)]
STATIC = Path(__file__).resolve().parents[2] / "mdr_reporting/console/static"


class Page(HTMLParser):
    """Scripts, styles, inline handlers, form controls and labels of one HTML page,
    outside <template> elements (the scripts label those when they clone them)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.assets: list[str] = []
        self.handlers: list[str] = []
        self.style_attributes: list[str] = []
        self.style_elements = 0
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.wrapped = 0
        self._in_template = 0
        self._in_label = 0
        self._script_open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if "style" in attributes:
            self.style_attributes.append(tag)
        if tag == "template":
            self._in_template += 1
        if tag == "style":
            self.style_elements += 1
        if tag == "script":
            self.scripts.append(attributes)
            self._script_open = True
        for name in ("src", "href"):
            value = attributes.get(name)
            if value and tag in ("script", "link"):
                self.assets.append(value)
        if self._in_template:
            return
        if tag == "label":
            self._in_label += 1
            if attributes.get("for"):
                self.label_for.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes)
            if self._in_label:
                self.wrapped += 1
                attributes["wrapped"] = "1"

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self._in_template -= 1
        if tag == "label" and self._in_label:
            self._in_label -= 1
        if tag == "script":
            self._script_open = False

    def handle_data(self, data: str) -> None:
        if self._script_open and data.strip():
            self.inline_script = True


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_each_page_is_a_keyless_shell_under_a_strict_policy(api: Api, path: str) -> None:
    answer = api.client.get(path)  # no Authorization: a page holds no account data
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    page = parse(answer.text)
    sources = [str(script.get("src", "")) for script in page.scripts]
    assert sources and all(src.startswith("/console/static/") for src in sources)
    assert not page.inline_script and not page.handlers
    assert not page.style_attributes and page.style_elements == 0
    for asset in page.assets:
        assert asset.startswith("/console/static/"), asset
        served = api.client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["cache-control"] == "no-cache"
        assert "etag" in served.headers
    for control in page.controls:
        assert control.get("wrapped") or control.get("id") in page.label_for, control
    assert 'lang="en"' in answer.text and "Skip to content" in answer.text


def test_navigation_marks_the_current_page(api: Api) -> None:
    for path, _, title in PAGES:
        text = api.client.get(f"/console{path}").text
        current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>', text)
        assert current == [(f"/console{path}", title)]
    assert 'aria-current="page"' not in api.client.get("/console").text


def test_pages_do_not_reflect_the_query_string(api: Api) -> None:
    answer = api.client.get("/console", params={"next": "<script>alert(1)</script>"})
    assert answer.status_code == 200 and "<script>alert" not in answer.text


def test_the_time_zone_picker_lists_the_pinned_zones(api: Api) -> None:
    text = api.client.get("/console/reports/new").text
    zones = re.findall(r'<option value="([A-Za-z_/+-]+[A-Za-z0-9_/+-]*)"', text)
    assert {"UTC", "America/Chicago", "Europe/Berlin", "Asia/Kolkata"} <= set(zones)
    assert '<option value="UTC" selected>' in text


def test_static_files_are_only_the_console_folder(api: Api) -> None:
    assert api.client.get("/console/static/js/api.js").status_code == 200
    missing = api.client.get("/console/static/nope.js")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"]
    escape = api.client.get("/console/static/../routes.py")
    assert escape.status_code == 404
    assert api.client.get("/console/", follow_redirects=False).headers["location"] == "/console"


def test_vendored_chart_library_carries_its_licence_and_version() -> None:
    folders = [p for p in (STATIC / "vendor").iterdir() if p.is_dir()]
    assert [p.name for p in folders] == ["uplot-1.6.32"]
    folder = folders[0]
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert (folder / "README.md").read_text().startswith("uPlot 1.6.32")
    script = (folder / "uPlot.iife.min.js").read_text()
    assert "uPlot" in script and "http" not in re.sub(r"https?://github\.com/\S+", "", script)


def test_scripts_never_put_the_key_in_a_url_or_a_cookie() -> None:
    scripts = {p.name: p.read_text() for p in (STATIC / "js").glob("*.js")}
    assert "document.cookie" not in "".join(scripts.values())
    assert "localStorage" not in "".join(scripts.values())
    assert "sessionStorage" in scripts["api.js"]
    # the key leaves api.js only as the Authorization header
    assert re.search(r"Authorization: `Bearer \$\{key\}`", scripts["api.js"])
    for name, text in scripts.items():
        assert "innerHTML" not in text, name  # text only: nothing from the API runs as markup
