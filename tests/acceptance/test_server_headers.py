"""What a real `mdr serve` says about itself (issue 10): no Server header naming the
stack on any answer, and no CORS unless configured (none is configurable today)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.acceptance.helpers import running_server

ORIGIN = {"Origin": "https://evil.example"}


def test_no_server_header_and_no_cors(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as url:
        answers = [
            httpx.get(f"{url}/health", headers=ORIGIN),
            httpx.get(f"{url}/reporting/mdr_requests", headers=ORIGIN),  # 401
            httpx.get(f"{url}/no/such/path"),  # 404
            httpx.post(f"{url}/ingest/mdrs", content=b"null\n"),  # 401 before any parsing
            httpx.get(f"{url}/reports/x/download?file=a&expires=1&sig=b"),  # 403
            httpx.get(f"{url}/openapi.json"),
            httpx.options(
                f"{url}/reporting/mdr_requests",
                headers={**ORIGIN, "Access-Control-Request-Method": "POST"},
            ),
        ]
    assert [a.status_code for a in answers[:6]] == [200, 401, 404, 401, 403, 200]
    for answer in answers:
        assert "server" not in answer.headers, answer.headers
        assert not any(h.startswith("access-control-") for h in answer.headers), answer.headers
