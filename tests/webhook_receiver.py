"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread.

It records every request (headers and raw body) and answers from a script: a list of
statuses used in turn (then ``default``), an optional delay, an optional redirect.
Signatures are checked with ``cryptography`` directly, as a customer's receiver would.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Receiver:
    def __init__(
        self,
        answers: list[int] | None = None,
        *,
        default: int = 200,
        delay: float = 0.0,
        location: str | None = None,
    ) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.delay = delay
        self.location = location
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                        )
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.location is not None:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mdr?token=s3cret"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} webhooks came"
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def receiver(*args: object, **kwargs: object) -> Iterator[Receiver]:
    running = Receiver(*args, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.stop()


def signature_valid(public_key_b64: str, got: Received) -> bool:
    """What a receiver checks: Ed25519 over ``webhook-timestamp|body``."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    signed = got.headers["webhook-timestamp"].encode() + b"|" + got.body
    try:
        key.verify(base64.b64decode(got.headers["webhook-signature"]), signed)
    except InvalidSignature:
        return False
    return True
