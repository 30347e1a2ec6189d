"""The ASGI app: routers, error envelope, offline docs and the services it runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp

from mdr_reporting import __version__
from mdr_reporting.api import (
    detail_records,
    downloads,
    ingest,
    ops,
    usage_reports,
    v1,
    v2,
    webhooks,
)
from mdr_reporting.api.common import reports_key
from mdr_reporting.api.errors import install_error_handlers
from mdr_reporting.api.ratelimit import RateLimitHeaders
from mdr_reporting.api.schemas import MdrRecord, V1CreateBody, V2CreateBody
from mdr_reporting.api.service import RequestService
from mdr_reporting.api.status_reads import StatusReads, StatusRoute
from mdr_reporting.catalog import Catalog
from mdr_reporting.catalog.deliveries import DeliveryQueue
from mdr_reporting.catalog.ratelimits import RateLimiter
from mdr_reporting.console import mount as mount_console
from mdr_reporting.domain.requests import RequestState
from mdr_reporting.files import FileStore, LinkSigner
from mdr_reporting.files.downloads import ReportDownloads
from mdr_reporting.lake import Lake
from mdr_reporting.observability import AccessLog, Observability
from mdr_reporting.settings import Settings
from mdr_reporting.webhooks.keys import WebhookSigner
from mdr_reporting.webhooks.targets import check_new_webhook_url

__all__ = ["Services", "create_app"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _no_link(_state: RequestState) -> str | None:
    return None


@dataclass
class Services:
    """Everything the handlers use; tests build one with fakes or a temporary folder."""

    settings: Settings
    catalog: Catalog
    clock: Callable[[], datetime] = _utcnow
    report_url: Callable[[RequestState], str | None] = _no_link
    files: FileStore | None = None
    links: LinkSigner | None = None
    lake: Lake | None = None  # shared by ingest and the in-process worker
    requests: RequestService = field(init=False)
    downloads: ReportDownloads | None = field(init=False, default=None)
    rate_limiter: RateLimiter = field(init=False)
    deliveries: DeliveryQueue = field(init=False)
    _signer: WebhookSigner | None = field(init=False, default=None)
    # readiness and scrape-time figures; run_server adds the worker's heartbeat
    observability: Observability = field(init=False)

    def __post_init__(self) -> None:
        self.observability = Observability(
            self.catalog, self.lake, max_age=max(self.settings.lease_seconds, 10.0)
        )
        self.requests = RequestService(self.catalog, self.clock, self.files)
        self.requests.max_pending = self.settings.max_pending_per_account or None
        allow_private = self.settings.webhook_allow_private
        self.requests.check_webhook_url = lambda url: check_new_webhook_url(
            url, allow_private=allow_private
        )
        self.deliveries = DeliveryQueue(self.catalog, lease=timedelta(minutes=1))
        self.rate_limiter = RateLimiter(self.catalog)
        if self.links is not None:
            if self.report_url is _no_link:
                self.report_url = self.links.report_url
            if self.files is not None:
                self.downloads = ReportDownloads(self.catalog, self.files, self.links)

    def webhook_signer(self) -> WebhookSigner:
        """The webhook key pair, loaded (or made, in the data folder) on first use."""
        if self._signer is None:
            self._signer = WebhookSigner.load(
                self.settings.data_dir, self.settings.webhook_signing_key
            )
        return self._signer


DESCRIPTION = """\
Message Detail Record reports over the carrier's public "Create an MDR request"
contract (v1 `/reporting/mdr_requests`) and its v2 legacy twin. Authenticate with
`Authorization: Bearer <key>` (or `Token <key>`). Every error answers
`{"errors": [{"code", "title", "detail", "source": {"pointer" | "parameter"}}]}`;
a bad ingested record adds `"meta": {"line", "field", "reason"}`. Rules that relate two
fields are stated in the schemas' descriptions.
"""


def create_app(services: Services, *, lean_status: bool = True) -> FastAPI:
    app = FastAPIOffline(
        title="MDR reporting service",
        version=__version__,
        description=DESCRIPTION,
        static_url="/docs/assets",
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(AccessLog)  # outermost of ours: times and logs every call
    app.include_router(v1.router)
    app.include_router(v2.router)
    app.include_router(downloads.router)
    app.include_router(ingest.router)
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    app.include_router(detail_records.router)
    app.include_router(usage_reports.router)
    mount_console(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if lean_status:
        _answer_status_reads_first(app)
    return app


def _answer_status_reads_first(app: FastAPI) -> None:
    """Put the lean path of ``GET`` one request (both surfaces) in front of the app's
    middleware stack; the FastAPI routes stay declared (``/docs``) and answer the rest."""
    surfaces = {v1.get: (v1.V1, None), v2.get: (v2.V2, "data")}
    routes = []
    for route in [*v1.router.routes, *v2.router.routes]:  # what the router puts in the scope
        if isinstance(route, APIRoute) and route.endpoint in surfaces:
            # the route's own auth dependency, called the same way
            (key,) = [d.call for d in route.dependant.dependencies]
            assert key is reports_key, route.path
            routes.append(StatusRoute(route, *surfaces[route.endpoint], key))
    assert len(routes) == len(surfaces), "a status read route is missing"
    build = app.build_middleware_stack

    def build_with_status_reads() -> ASGIApp:
        return StatusReads(build(), routes, app.exception_handlers)

    app.build_middleware_stack = build_with_status_reads  # type: ignore[method-assign]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the hand-validated body schemas and the two auth schemes."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (V1CreateBody, V2CreateBody, MdrRecord):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    document["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer <key>",
        },
        "token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Authorization: Token <key> (v1 clients)",
        },
    }
    document["security"] = [{"bearer": []}, {"token": []}]
    # The service answers 400, never 422 (api.md section 8): drop FastAPI's 422 entries.
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = document
    return document
