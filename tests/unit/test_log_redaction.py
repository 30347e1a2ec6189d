"""No secret reaches a log line: keys, link signatures, signed query strings."""

from __future__ import annotations

import logging

import pytest

from mdr_reporting.logsafe import install_log_redaction, redact


def test_redact_hides_signatures_keys_and_presigned_parts() -> None:
    line = (
        'GET /reports/r1/download?file=abc&expires=123&sig=kid.SECRETSIG HTTP/1.1" 200 '
        "Authorization: Bearer mdr_abcdefghijklmnopqrstuvwxyz0123 "
        "https://s3/x?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/1"
    )
    out = redact(line)
    assert "SECRETSIG" not in out and "sig=***" in out
    assert "mdr_abcdefghijklmnopqrstuvwxyz0123" not in out and "Bearer ***" in out
    assert "deadbeef" not in out and "AKIA" not in out
    assert "/reports/r1/download?file=abc&expires=123" in out  # the route stays readable


def test_every_logger_is_scrubbed_uvicorn_access_log_included(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    # configure_logging (run by earlier tests) quiets uvicorn.access to WARNING: lift it here
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:1",
            "GET",
            "/reports/r/download?expires=1&sig=TOPSECRET",
            "1.1",
            200,
        )
        logging.getLogger("mdr.api").warning("key %s refused", "mdr_" + "x" * 40)
    text = caplog.text
    assert "TOPSECRET" not in text and "sig=***" in text
    assert "x" * 40 not in text
