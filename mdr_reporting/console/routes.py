"""The console's pages: server-rendered shells whose scripts call the public API.

The pages hold no data and need no key to load: each page's script reads the API key
from the tab's session storage and calls the same API a client would, with
``Authorization: Bearer``. So the console adds no endpoint and no rule of its own.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Scope

from mdr_reporting import __version__
from mdr_reporting.domain.enums import DIRECTIONS, FORMATS, RECORD_TYPE_STATUSES, RecordType
from mdr_reporting.domain.filters import MATCHES
from mdr_reporting.domain.times import zone_names

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "router", "static_files"]

HERE = Path(__file__).parent

# Scripts, styles and data only from this origin: no inline script or style, no framing,
# forms post only here. The charts draw on <canvas>, so no image source is needed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

# (path under /console, template, title in the navigation); the sign-in page is not listed.
PAGES = (
    ("/reports", "reports.html", "Reports"),
    ("/reports/new", "create.html", "New report"),
    ("/search", "search.html", "Search records"),
    ("/usage", "usage.html", "Usage"),
)
NAVIGATION = [(f"/console{path}", title) for path, _, title in PAGES]

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)

_RECORD_TYPE_LABELS = {
    RecordType.COMPLETE: "Complete",
    RecordType.INCOMPLETE: "Incomplete",
    RecordType.ERRORS: "Errors",
}
SEARCH_DATE_RANGES = (
    "today",
    "yesterday",
    "last_week",
    "this_week",
    "last_month",
    "this_month",
    "last_7_days",
    "last_30_days",
)


@cache
def _zones() -> list[str]:
    return zone_names()


def _context(request: Request, path: str, title: str) -> dict[str, Any]:
    return {
        "request": request,
        "title": title,
        "path": path,
        "navigation": NAVIGATION,
        "version": __version__,
        "zones": _zones(),
        "directions": DIRECTIONS,
        "record_types": [
            (int(kind), _RECORD_TYPE_LABELS[kind], ", ".join(statuses))
            for kind, statuses in RECORD_TYPE_STATUSES.items()
        ],
        "statuses": [s for statuses in RECORD_TYPE_STATUSES.values() for s in statuses],
        "formats": FORMATS,
        "matches": MATCHES,
        "date_ranges": SEARCH_DATE_RANGES,
    }


def _page(request: Request, template: str, path: str, title: str) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, _context(request, path, title), headers=_PAGE_HEADERS
    )
    assert isinstance(response, HTMLResponse)
    return response


@router.get("", response_class=HTMLResponse)
async def sign_in(request: Request) -> HTMLResponse:
    return _page(request, "signin.html", "/console", "Sign in")


@router.get("/", response_class=RedirectResponse)
async def trailing_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


def _add_page(path: str, template: str, title: str) -> None:
    async def page(request: Request) -> HTMLResponse:
        return _page(request, template, f"/console{path}", title)

    page.__name__ = f"console_{template.removesuffix('.html')}"
    router.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse)


for _path, _template, _title in PAGES:
    _add_page(_path, _template, _title)


class _ConsoleStatic(StaticFiles):
    """The console's scripts, styles and vendored libraries; revalidated on every load
    (ETag), so a new release's scripts are picked up without a stale cache."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


def static_files() -> StaticFiles:
    return _ConsoleStatic(directory=HERE / "static")
