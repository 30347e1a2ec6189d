"""Shared fixtures: catalogs on every configured backend, a controllable clock, the API app.

Backends come from the environment: ``MDR_TEST_POSTGRES_URL`` adds PostgreSQL to
every catalog-backed test.  With ``MDR_TEST_REQUIRE_SERVICES=1`` (set by .ci/run)
a configured service that cannot be reached fails the run instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mdr_reporting.api import Services, create_app
from mdr_reporting.catalog import Catalog, KeyScope
from mdr_reporting.catalog.store import make_engine
from mdr_reporting.settings import Settings, load_settings

POSTGRES_URL = os.environ.get("MDR_TEST_POSTGRES_URL")
REQUIRE_SERVICES = os.environ.get("MDR_TEST_REQUIRE_SERVICES") == "1"
CATALOG_BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
ROOT = Path(__file__).resolve().parent.parent
# moto's S3 server, installed by `make` into its own venv (tests/moto-requirements.txt).
MOTO_SERVER = Path(os.environ.get("MDR_TEST_MOTO_SERVER", ROOT / ".venv-moto/bin/moto_server"))


def pytest_report_header() -> list[str]:
    return [f"catalog backends: {', '.join(CATALOG_BACKENDS)}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REQUIRE_SERVICES and not POSTGRES_URL:
        raise pytest.UsageError("MDR_TEST_REQUIRE_SERVICES=1 but MDR_TEST_POSTGRES_URL is not set")


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema per test, reached through libpq's ``options=-csearch_path``."""
    assert POSTGRES_URL is not None
    schema = "t_" + secrets.token_hex(6)
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as db:
            db.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as db:
            db.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


_postgres_schema_url = postgres_schema_url  # its earlier name


@pytest.fixture(params=CATALOG_BACKENDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def catalog(catalog_url: str, clock: FakeClock) -> Iterator[Catalog]:
    store = Catalog(catalog_url, clock=clock)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str) -> Settings:
    return load_settings(
        {
            "data_dir": str(tmp_path / "data"),
            "catalog_url": catalog_url,
            "signing_secret": "test-secret-0123456789",
            # limits on (every call takes a token) but out of reach of tests that do not
            # test them; the fake clock never refills a bucket
            "rate_limit_burst": 1_000_000,
            "create_rate_limit_burst": 1_000_000,
            "ingest_rate_limit_burst": 1_000_000,
            "max_pending_per_account": 0,
        },
        environ={},
    )


@dataclass
class Api:
    """The app in-process behind an httpx-based TestClient, plus helpers to make keys."""

    client: TestClient
    services: Services
    catalog: Catalog
    clock: FakeClock

    def key(
        self, account: str = "acct-a", scope: str = "reports", parent: str | None = None
    ) -> str:
        if self.catalog.get_account(account) is None:
            self.catalog.create_account(account.title(), account_id=account, parent_id=parent)
        return self.catalog.create_key(account, KeyScope(scope)).secret

    def headers(self, account: str = "acct-a", scope: str = "reports") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(account, scope)}"}


@pytest.fixture
def api(settings: Settings, catalog: Catalog, clock: FakeClock) -> Iterator[Api]:
    services = Services(settings=settings, catalog=catalog, clock=clock)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield Api(client, services, catalog, clock)


ApiFactory = Callable[..., Api]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                return process, url
            except httpx.TransportError:
                time.sleep(0.1)
        process.kill()
        process.wait()
    raise RuntimeError(f"{MOTO_SERVER} did not start")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 in server mode on a free 127.0.0.1 port, for the whole session."""
    if not MOTO_SERVER.exists():
        message = f"moto is not installed at {MOTO_SERVER} (make .venv-moto/.created)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    # moto accepts any credentials; obstore (and the subprocesses) read these.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        process, url = _start_moto()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket for one test."""
    name = "t-" + secrets.token_hex(6)
    httpx.put(f"{s3_endpoint}/{name}").raise_for_status()
    return name


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Spark standalone master and two one-core workers on free 127.0.0.1 ports, started
    once per test session from the pip pyspark distribution (tests/spark_cluster.py)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("MDR_TEST_REQUIRE_SERVICES=1 but pyspark is not installed")
        pytest.skip("pyspark is not installed")
    from tests.spark_cluster import SparkCluster, SparkClusterError

    cluster = SparkCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2)
    try:
        cluster.start()
    except SparkClusterError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"the Spark cluster did not start: {exc}")
        pytest.skip(f"the Spark cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def spark_engine(spark_cluster: object) -> Iterator[object]:
    """The Spark engine connected to :func:`spark_cluster` (one session for the whole run)."""
    from mdr_reporting.engines.spark import SparkEngine
    from tests.spark_cluster import SparkCluster

    assert isinstance(spark_cluster, SparkCluster)
    engine = SparkEngine(spark_cluster.master_url, spark_cluster.client_conf())
    try:
        yield engine
    finally:
        engine.close()
