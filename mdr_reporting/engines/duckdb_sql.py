"""The DuckDB SQL of one day of a report, with every value bound as a named parameter.

The statement's text depends only on the shape of the query (how many
accounts, filters, offset spans, and the spans' offset suffixes, which are part
of constant time formats); values go in ``params``.  Number matches use
``contains``/``starts_with``/``ends_with`` on the lake's folded numbers (folded
by the domain's own function, never by DuckDB's ``lower()``), so no LIKE
pattern is built and nothing needs escaping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mdr_reporting.domain.enums import STATUS_RECORD_TYPE
from mdr_reporting.domain.query import AnyOf, NumberMatch, ReportQuery, TagMatch
from mdr_reporting.domain.records import FOLDED_COLUMNS, RECORD_COLUMNS
from mdr_reporting.domain.zones import OffsetSpan
from mdr_reporting.engines.lakefiles import CRITERIA_COLUMNS, FOLD_FUNCTION, TIMESTAMP_COLUMNS

__all__ = ["Shape", "Statement", "day_statement", "repeated_ids_statement", "scanned_columns"]

Shape = Literal["text", "json", "typed"]
"""``text``: CSV cells; ``json``: JSON values; ``typed``: Parquet columns."""

_MATCH_SQL = {"contains": "contains", "starts_with": "starts_with", "ends_with": "ends_with"}


@dataclass
class Statement:
    """SQL text plus the values of its ``$name`` parameters."""

    sql: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def bind_list(self, values: tuple[str, ...]) -> str:
        return ", ".join(self.bind(v) for v in values)


def _span_text(stmt: Statement, span: OffsetSpan, us: str) -> str:
    """``us`` (epoch microseconds) in one span's offset, as ``datetime.isoformat()`` writes
    it: the offset's suffix is part of the (constant) format; ``.ffffff`` only when the
    microseconds are not zero.  Offsets are whole seconds, so the local time has the same
    microseconds as the instant."""
    local = f"make_timestamp({us} + {stmt.bind(span.offset_us)})"
    suffix = span.suffix.replace("%", "%%").replace("'", "''")
    return (
        f"CASE WHEN {us} % 1000000 = 0 "
        f"THEN strftime({local}, '%Y-%m-%dT%H:%M:%S{suffix}') "
        f"ELSE strftime({local}, '%Y-%m-%dT%H:%M:%S.%f{suffix}') END"
    )


def _timestamp_text(stmt: Statement, spans: list[OffsetSpan], column: str) -> str:
    """``column`` written as ``datetime.isoformat()`` writes it in the request's zone.

    One conversion per offset span: a day usually has one span (no CASE at all) or
    two; more spans (times far from the day) take a balanced tree of comparisons."""
    us = f"epoch_us({column})"

    def tree(low: int, high: int) -> str:
        if low == high:
            return _span_text(stmt, spans[low], us)
        middle = (low + high + 1) // 2
        bound = stmt.bind(spans[middle].start_us)
        below, above = tree(low, middle - 1), tree(middle, high)
        return f"CASE WHEN {us} < {bound} THEN {below} ELSE {above} END"

    return tree(0, len(spans) - 1)


def _record_type(stmt: Statement) -> str:
    whens = " ".join(
        f"WHEN {stmt.bind(status)} THEN {stmt.bind(rt.report_name)}"
        for status, rt in sorted(STATUS_RECORD_TYPE.items())
    )
    return f"CASE status {whens} END"


def _columns(stmt: Statement, query: ReportQuery, spans: list[OffsetSpan], shape: Shape) -> str:
    out: list[str] = []
    for name in query.columns:
        if name in TIMESTAMP_COLUMNS:
            expr = name if shape == "typed" else _timestamp_text(stmt, spans, name)
        elif name == "record_type":
            expr = _record_type(stmt)
        elif name == "tags":
            expr = {
                "text": "nullif(array_to_string(tags, ';'), '')",
                "json": "coalesce(tags, [])",
                "typed": "tags",
            }[shape]
        elif name in ("rate", "cost"):
            # Exact decimals written with six places (the lake's scale): 0.007500, -1.500000.
            money = f"CAST({name} AS DECIMAL(18, 6))"
            expr = name if shape == "typed" else f"CAST({money} AS VARCHAR)"
        elif name in ("parts", "media_size_bytes") or shape != "text":
            expr = name
        else:
            # The CSV writer quotes an empty string; an empty cell is what Python's csv writes.
            expr = f"nullif({name}, '')"
        out.append(f'{expr} AS "{name}"')
    return ",\n       ".join(out)


def scanned_columns(query: ReportQuery) -> tuple[str, ...]:
    """The columns a day's statement reads: the report's and the criteria's, nothing else.

    A materialized scope keeps what it selects, so ``message_body`` is left out
    when the report does not show it.
    """
    needed = {*query.columns, *CRITERIA_COLUMNS} - {"record_type"}
    return tuple(name for name in RECORD_COLUMNS if name in needed)


def _scanned(query: ReportQuery) -> str:
    return ", ".join(scanned_columns(query))


def _predicate(stmt: Statement, term: NumberMatch | TagMatch) -> str:
    if isinstance(term, TagMatch):
        return f"coalesce(list_has_any(tags, [{stmt.bind_list(term.tags)}]::VARCHAR[]), false)"
    return f"{_MATCH_SQL[term.match]}(_{term.field}, {stmt.bind(term.value)})"


def _filters(stmt: Statement, where: AnyOf) -> str:
    groups = [
        "(" + " AND ".join(_predicate(stmt, term) for term in group.terms) + ")"
        for group in where.terms
    ]
    return "(" + " OR ".join(groups) + ")"


def _criteria(stmt: Statement, query: ReportQuery) -> list[str]:
    """Every criterion but account and window, evaluated on the latest version."""
    out: list[str] = []
    if not query.all_directions:
        out.append(f"direction IN ({stmt.bind_list(query.directions)})")
    if not query.all_statuses:
        out.append(f"status IN ({stmt.bind_list(query.statuses)})")
    if query.connections:
        out.append(f"connection_id IN ({stmt.bind_list(query.connections)})")
    if query.profiles:
        out.append(f"profile_id IN ({stmt.bind_list(query.profiles)})")
    if query.where is not None:
        out.append(_filters(stmt, query.where))
    return out


def _source_and_scan(
    stmt: Statement, query: ReportQuery, files: tuple[str, ...]
) -> tuple[str, str]:
    """The day's files as a table, and the account and window conditions on its scan."""
    # The lake may sit in day=... folders: its columns are the files' columns only.
    source = f"read_parquet({stmt.bind(list(files))}, hive_partitioning = false)"
    scan = " AND ".join(
        (
            f"account_id IN ({stmt.bind_list(query.accounts)})",
            f"created_at >= {stmt.bind(query.start)}",
            f"created_at < {stmt.bind(query.end)}",
        )
    )
    return source, scan


def repeated_ids_statement(query: ReportQuery, files: tuple[str, ...]) -> Statement:
    """One row when an id of the report's scope occurs more than once in ``files`` (a day
    of several files whose versions have to be resolved), none when every row is its id's
    only version.  It reads the id, account and time columns only: a small fraction of
    what the latest-version pass over the whole rows costs.  Versions of an id share
    ``account_id`` and ``created_at``, so the scope holds all of an id's versions or none."""
    stmt = Statement()
    source, scan = _source_and_scan(stmt, query, files)
    stmt.sql = f"SELECT id FROM {source} WHERE {scan} GROUP BY id HAVING count(*) > 1 LIMIT 1"
    return stmt


def day_statement(
    query: ReportQuery,
    files: tuple[str, ...],
    spans: list[OffsetSpan],
    shape: Shape,
    *,
    folded: bool = True,
    unique: bool = False,
    ordered: bool = False,
) -> Statement:
    """The SELECT of one day's rows: latest version per id, then the criteria, then the order.

    ``folded``: every file holds the folded numbers; otherwise they are computed
    by the domain's function, registered as :data:`FOLD_FUNCTION`.
    ``unique``: no id occurs twice in ``files`` (one file the lake laid out), so every
    row is its id's latest version and the latest-version pass is left out.
    ``ordered``: the scanned rows already come in report order (one account's rows
    of such a file: sorted by created_at, then id), so no ORDER BY either; DuckDB
    keeps the scan's order (``preserve_insertion_order``).

    The account and window conditions come first, on the scan, so Parquet
    statistics skip other accounts' row groups; ``created_at`` and
    ``account_id`` never change between versions, so that is safe.  Ties on
    ``updated_at`` go to the version the snapshot lists first (the one
    ingested first: an equal ``updated_at`` changes nothing, api.md section 6).
    """
    if ordered and not unique:
        raise ValueError("only a scan without the latest-version pass keeps its order")
    stmt = Statement()
    source, scan = _source_and_scan(stmt, query, files)
    criteria = _criteria(stmt, query)
    columns = _columns(stmt, query, spans, shape)
    used = {
        t.field
        for g in (query.where.terms if query.where else ())
        for t in g.terms
        if isinstance(t, NumberMatch)
    }
    numbers = "".join(
        f",\n           {FOLDED_COLUMNS[name] if folded else f'{FOLD_FUNCTION}({name})'} AS _{name}"
        for name in sorted(used)
    )
    where = "WHERE " + "\n  AND ".join(criteria) if criteria else ""
    # A sort orders the stored values, and the rows are formatted after it: sorting the
    # formatted rows carried every text cell through the sort (~30% more CPU and memory).
    # DuckDB keeps a sorted subquery's order through the projection over it and COPY.
    rows = "latest" if ordered else f"(SELECT * FROM latest {where} ORDER BY created_at, id)"
    if not ordered:
        where = ""
    if unique:
        stmt.sql = f"""
WITH latest AS (
    SELECT {_scanned(query)}{numbers}
    FROM {source}
    WHERE {scan}
)
SELECT {columns}
FROM {rows} AS latest
{where}
"""
        return stmt
    # Latest version: no other version of the id is newer, or as new and listed earlier
    # (a row comparison: updated_at, then file order and row order, reversed).
    # The day's rows are decoded once (MATERIALIZED) and anti-joined with themselves,
    # which measured cheaper than a window over the wide rows or a second scan.
    stmt.sql = f"""
WITH scoped AS MATERIALIZED (
    SELECT {_scanned(query)}, file_index AS _file, file_row_number AS _row{numbers}
    FROM {source}
    WHERE {scan}
),
latest AS (
    SELECT *
    FROM scoped AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM scoped AS v
        WHERE v.id = s.id
          AND (v.updated_at, -v._file::BIGINT, -v._row) > (s.updated_at, -s._file::BIGINT, -s._row)
    )
)
SELECT {columns}
FROM {rows} AS latest
{where}
"""
    return stmt
