"""The web console at ``/console``: one more edge beside the API, for people who click.

Server-side templates (Jinja2) render each page's shell; small scripts call the public
API with the key the user signed in with, kept in the tab's session storage only.
Front-end libraries are vendored under ``static/vendor/<name>-<version>/`` with their
licence: no build step and nothing fetched at run time.
"""

from __future__ import annotations

from fastapi import FastAPI

from mdr_reporting.console.routes import CONTENT_SECURITY_POLICY, router, static_files

__all__ = ["CONTENT_SECURITY_POLICY", "mount"]


def mount(app: FastAPI) -> None:
    """Serve the console's pages under ``/console`` and its files under ``/console/static``."""
    app.include_router(router)
    app.mount("/console/static", static_files(), name="console-static")
