"""Property tests (issue 10, item 2): whatever arrives, the answer is a 4xx or a clear CLI
message, the server stays up, and nothing of a rejected batch is stored.

Arbitrary JSON values and bytes, deep nesting, huge numbers, lone surrogates and
control characters, at ``POST /ingest/mdrs``, at both request surfaces and at
``mdr ingest`` of every file format (truncated and corrupted files included). The
example counts are small: all of these together take well under a minute.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mdr_reporting.cli.main import cli
from mdr_reporting.lake import open_lake
from mdr_reporting.settings import Settings
from tests.conftest import Api
from tests.records import ndjson, record

V1 = "/reporting/mdr_requests"
V2 = "/v2/legacy/reporting/batch_detail_records/messaging"
FIELDS = [*record(0), "message_body", "media_size_bytes", "completed_at", "updated_at"]
FEW = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """SQLite only: the catalog backend does not change what these inputs do."""
    return f"sqlite:///{tmp_path / 'catalog.db'}"


# -- values ----------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "x\x1fy", "\x7f", "\u2028", "\ufeff"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=4),
)
huge_numbers = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1e400", "-1e400", "1" * 400, "0." + "1" * 300]),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | huge_numbers | nasty_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=8,
)
deep = st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)


def encode(value: Any) -> bytes:
    """JSON text of ``value``; numbers given as strings above go in as bare numbers."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text.encode()


records = st.builds(
    lambda n, changes: {**record(n), **changes},
    st.integers(min_value=0, max_value=50),
    st.dictionaries(st.sampled_from(FIELDS) | nasty_text, json_values, max_size=3),
)


def raw_record(row: dict[str, Any], raw: bytes) -> bytes:
    """A record with one field's value replaced by raw bytes (not UTF-8, surrogates...)."""
    return encode({**row, "cli": "@@RAW@@"}).replace(b'"@@RAW@@"', b'"' + raw + b'"')


ingest_bodies = st.one_of(
    st.binary(max_size=200),
    deep,
    json_values.map(encode),
    st.lists(records, min_size=1, max_size=4).map(ndjson),
    st.lists(records, min_size=0, max_size=4).map(encode),
    st.builds(raw_record, records, st.binary(min_size=1, max_size=6)),
    st.builds(lambda b: b.replace(b"\n", b""), st.binary(max_size=60)).map(
        lambda b: ndjson([record(0)]) + b + b"\n"
    ),
)


def lake_state(settings_: Settings) -> tuple[int, int, int]:
    figures = open_lake(settings_.lake_url).stats()
    return figures.version, figures.files, figures.rows


# -- HTTP ------------------------------------------------------------------------------


@FEW
@given(body=ingest_bodies, gzipped=st.booleans(), array=st.booleans())
def test_ingest_answers_4xx_for_anything_bad_and_stores_none_of_it(
    api: Api, body: bytes, gzipped: bool, array: bool
) -> None:
    headers = {
        **api.headers("acct-a", "ingest"),
        "Content-Type": "application/json" if array else "application/x-ndjson",
    }
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    before = lake_state(api.services.settings)
    response = api.client.post("/ingest/mdrs", content=body, headers=headers)
    assert response.status_code in (200, 400, 403, 413), response.text
    if response.status_code != 200:
        assert lake_state(api.services.settings) == before
        assert response.json()["errors"]
    assert api.client.get("/health").status_code == 200


request_bodies = st.one_of(
    st.binary(max_size=200),
    deep,
    json_values.map(encode),
    st.dictionaries(
        st.sampled_from(["start_time", "end_time", "timezone", "filters", "connections"])
        | nasty_text,
        json_values | deep.map(bytes.decode),
        max_size=5,
    ).map(lambda d: encode({"start_time": "2026-02-01T00:00:00Z", **d})),
)


@FEW
@given(body=request_bodies)
def test_both_request_surfaces_answer_4xx_for_anything_bad(api: Api, body: bytes) -> None:
    headers = {**api.headers(), "Content-Type": "application/json"}
    for path in (V1, V2):
        response = api.client.post(path, content=body, headers=headers)
        assert response.status_code in (200, 400, 403), response.text
        if response.status_code == 200:
            created = response.json().get("data", response.json())
            assert api.client.get(f"{path}/{created['id']}", headers=headers).status_code == 200
        else:
            assert response.json()["errors"]
    assert api.client.get("/health").status_code == 200


# -- files -----------------------------------------------------------------------------

GOOD = [record(i) for i in range(30)]


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return bytes(sink.getvalue().to_pybytes())


def _csv(rows: list[dict[str, Any]]) -> bytes:
    names = [n for n in rows[0] if n != "tags"]
    lines = [",".join(names)] + [",".join(str(r[n]) for n in names) for r in rows]
    return ("\n".join(lines) + "\n").encode()


GOOD_FILES = {"ndjson": ndjson(GOOD), "csv": _csv(GOOD), "parquet": _parquet(GOOD)}


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes overwritten, or both."""
    out = bytearray(data)
    if draw(st.booleans()):
        del out[draw(st.integers(min_value=0, max_value=len(out))) :]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if out:
            out[draw(st.integers(min_value=0, max_value=len(out) - 1))] = draw(
                st.integers(min_value=0, max_value=255)
            )
    return bytes(out)


def file_contents(fmt: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), damaged(GOOD_FILES[fmt]))


def run_ingest(tmp_path: Path, name: str, data: bytes) -> None:
    """One `mdr ingest`: a clean exit or a one-line error, and all of the file or none."""
    data_dir = tmp_path / "data"
    lake = f"file://{data_dir / 'lake'}"
    path = tmp_path / name
    path.write_bytes(data)
    before = open_lake(lake).stats().rows if (data_dir / "lake").exists() else 0
    result = CliRunner().invoke(
        cli, ["ingest", str(path), "--create-accounts", "--data-dir", str(data_dir)]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    after = open_lake(lake).stats().rows
    if result.exit_code != 0:
        assert "error:" in result.output
        assert after == before, result.output


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_mdr_ingest_of_any_file_is_a_clear_message_or_stored_whole(
    tmp_path: Path, fmt: str, gzipped: bool
) -> None:
    counter = iter(range(10**6))

    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=file_contents(fmt), gzip_damage=st.integers(min_value=0, max_value=40))
    @example(data=b"\n", gzip_damage=1)  # blank lines, no rows: ingest crashed (split_days)
    def check(data: bytes, gzip_damage: int) -> None:
        name = f"f{next(counter)}.{fmt}" + (".gz" if gzipped else "")
        if gzipped:
            packed = gzip.compress(data)
            data = packed[: len(packed) - gzip_damage] if gzip_damage % 3 == 0 else packed
        run_ingest(tmp_path, name, data)

    check()
