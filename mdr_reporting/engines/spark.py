"""The distributed engine: Apache Spark (standalone, YARN, k8s) over the lake's Parquet files.

The same :class:`ReportQuery` as the DuckDB engine becomes DataFrame operations
over the snapshot's file list, days in ranges of ``days_per_job``; the bytes of
CSV (and of csv.gz and jsonl.gz once decompressed) equal the DuckDB engine's.
What that takes (each learned the hard way, see issue 11):

* Spark's CSV writer escapes quotes as ``\\"``, trims spaces and rewrites newlines
  in quoted cells: each line is built with column expressions (a cell is quoted
  when it holds ``,`` ``"`` CR or LF, its quotes doubled) and written as text.
* The session zone stays UTC; local times come from the offsets that
  ``domain/zones.py`` computes with the pinned tzdata (Spark's JVM has its own).
* ``cast(decimal(18, 6) as string)`` is the one exact decimal text; cells are
  coalesced to ``''`` before ``concat_ws``, which drops NULLs.
* Latest version: ``row_number()`` over (day, id) by ``updated_at`` desc, then
  the file's place in the snapshot list, then the row's place in its file.
* One shuffle: ``repartition(n, day)``, ``sortWithinPartitions(day, created_at,
  id)``, ``write.partitionBy(day).text``; the driver then appends the header and
  each day's part in day order into one file (``outputs``).  Several reports
  can share that job (:meth:`SparkEngine.build_many`): the key is (report, day).

Executors read the lake's paths and write the parts into the build folder, so the
build folder must be on a filesystem the cluster shares.  A local lake is read from
its folder (shared too); an S3 lake's ``s3://`` objects are read as ``s3a://`` URIs,
which needs the hadoop-aws jar and the AWS SDK bundle on the driver and executors
(docs/deploy.md).  The ``fs.s3a.*`` endpoint, path-style, region and credential
settings come from the lake's S3 settings (:func:`s3a_conf`) unless the Spark conf
sets them; a cluster without the jar fails the build with one line naming it.

A build runs its Spark jobs in a job group of its own; a watcher thread polls the
request's cancellation and cancels the group, so a DELETE stops a running job.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mdr_reporting.domain.enums import STATUS_RECORD_TYPE
from mdr_reporting.domain.query import AnyOf, NumberMatch, ReportQuery, TagMatch
from mdr_reporting.domain.records import FOLDED_COLUMNS, LAKE_SCHEMA, fold_number
from mdr_reporting.domain.times import get_zone
from mdr_reporting.domain.zones import OffsetSpan, offset_spans
from mdr_reporting.engines.base import (
    BuildResult,
    CancelCheck,
    Cancelled,
    Engine,
    EngineError,
    ProgressCallback,
    SnapshotFileMissing,
)
from mdr_reporting.engines.lakefiles import (
    CRITERIA_COLUMNS,
    TIMESTAMP_COLUMNS,
    has_folded_numbers,
    timestamp_range,
)
from mdr_reporting.engines.outputs import assembler_for
from mdr_reporting.lake.base import Snapshot
from mdr_reporting.objectstore import S3Location, endpoint_and_region

__all__ = ["SparkEngine", "SparkUnavailable", "check_spark", "s3a_conf", "spark_path"]

log = logging.getLogger("mdr.engine")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Cells that never hold a comma, quote, CR or LF: no quoting test.
_PLAIN_CELLS = frozenset(
    {*TIMESTAMP_COLUMNS, "record_type", "parts", "rate", "cost", "media_size_bytes"}
)
_EXTENSIONS = {"csv": ".txt", "csv.gz": ".txt.gz", "jsonl.gz": ".txt.gz", "parquet": ".parquet"}
DEFAULT_CONF: Mapping[str, str] = {
    "spark.app.name": "mdr-reporting",
    "spark.sql.session.timeZone": "UTC",
    # A report names its files one by one; past this many Spark lists them in a job.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.files.ignoreMissingFiles": "false",
    "spark.pyspark.python": sys.executable,  # executors need this Python, with pyarrow
}


S3A_FILESYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
_S3A = "spark.hadoop.fs.s3a."
_CREDENTIAL_KEYS = tuple(
    _S3A + key for key in ("access.key", "secret.key", "session.token", "aws.credentials.provider")
)
CANCEL_POLL_SECONDS = 0.5


class SparkUnavailable(EngineError):
    """pyspark is missing or the master does not answer; the message is one line."""


def spark_path(path: str) -> str:
    """The URI Spark reads a lake file from: ``s3://bucket/key`` is ``s3a://bucket/key``
    (Hadoop's S3A connector); a local path stays as is."""
    return "s3a://" + path.removeprefix("s3://") if path.startswith("s3://") else path


def s3a_conf(
    location: S3Location, user: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The ``spark.hadoop.fs.s3a.*`` settings for a lake at ``location``, from the same
    settings and AWS variables the service itself uses, except those ``user`` (the
    deployment's Spark conf) sets; credentials only when it sets none of them.

    An explicit endpoint (MinIO, moto) gets path-style access and, for ``http://``, no
    TLS.  Static keys from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and
    ``AWS_SESSION_TOKEN``) are passed so executors on other hosts can use them
    (Spark's default ``spark.redaction.regex`` hides them in the UI and logs); without
    them S3A's default chain (instance or task role) applies.
    """
    env = os.environ if environ is None else environ
    endpoint, region = endpoint_and_region(location)
    found: dict[str, str] = {_S3A + "endpoint.region": region}
    if endpoint:
        found[_S3A + "endpoint"] = endpoint
        found[_S3A + "path.style.access"] = "true"
        found[_S3A + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret and not any(k in user for k in _CREDENTIAL_KEYS):
        found[_S3A + "access.key"] = key
        found[_S3A + "secret.key"] = secret
        token = env.get("AWS_SESSION_TOKEN")
        if token:
            found[_S3A + "session.token"] = token
        provider = "TemporaryAWSCredentialsProvider" if token else "SimpleAWSCredentialsProvider"
        found[_S3A + "aws.credentials.provider"] = f"org.apache.hadoop.fs.s3a.{provider}"
    return {k: v for k, v in found.items() if k not in user}


def check_spark(master: str, timeout: float = 5.0) -> None:
    """Fail fast, with one line, when ``engine = spark`` cannot work: no pyspark in this
    environment, or a ``spark://`` master that does not accept a connection."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            "engine spark: pyspark is not installed (pip install 'mdr-reporting[spark]')"
        ) from None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise SparkUnavailable("engine spark: no Java runtime found (install Java 17)")
    if not master.startswith("spark://"):
        return  # local[...], yarn, k8s://: Spark checks them itself on first use
    last = f"engine spark: no master in {master!r}"
    for url in master.removeprefix("spark://").split(","):  # spark://a:7077,b:7077 (HA)
        parsed = urlparse(f"spark://{url}")
        host, port = parsed.hostname or "", parsed.port or 7077
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            last = f"engine spark: master {master} is not reachable ({exc.strerror or exc})"
    raise SparkUnavailable(last)


@dataclass(frozen=True)
class Job:
    """One report of a batch: what to build and where the finished file goes."""

    query: ReportQuery
    snapshot: Snapshot
    destination: Path


class SparkEngine(Engine):
    """Builds reports on a Spark cluster; one SparkSession per process, made on first use.

    ``conf`` is passed to the session as is (``spark.*`` keys), over :data:`DEFAULT_CONF`
    and, for a lake on S3 (``s3``: its location), the ``fs.s3a.*`` settings of
    :func:`s3a_conf` that ``conf`` does not set.
    """

    _session_lock = threading.Lock()

    def __init__(
        self,
        master: str = "local[2]",
        conf: Mapping[str, str] | None = None,
        *,
        days_per_job: int = 31,
        s3: S3Location | None = None,
        cancel_poll_seconds: float = CANCEL_POLL_SECONDS,
    ) -> None:
        self.master = master
        user = dict(conf or {})
        derived = s3a_conf(s3, user) if s3 is not None else {}
        self.conf = {**DEFAULT_CONF, **derived, **user}
        self.days_per_job = max(1, days_per_job)
        self.cancel_poll_seconds = cancel_poll_seconds
        self._spark: Any = None
        self._s3a_checked = False

    # -- the session ------------------------------------------------------------------

    def session(self) -> Any:
        """The SparkSession (created once; building a report reuses it)."""
        with self._session_lock:
            if self._spark is None:
                from pyspark.sql import SparkSession

                os.environ.setdefault("PYSPARK_PYTHON", self.conf["spark.pyspark.python"])
                builder = SparkSession.builder.master(self.master)
                for key, value in self.conf.items():
                    builder = builder.config(key, value)
                self._spark = builder.getOrCreate()
                self._spark.sparkContext.setLogLevel("ERROR")
            return self._spark

    def close(self) -> None:
        with self._session_lock:
            if self._spark is not None:
                self._spark.stop()
                self._spark = None

    def check_s3a(self, spark: Any) -> None:
        """Raise :class:`SparkUnavailable` (one line, naming the jar) unless the driver can
        load Hadoop's S3A filesystem, instead of a Java stack trace from the first job."""
        if self._s3a_checked:
            return
        context = spark.sparkContext
        jvm = context._jvm
        try:
            jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(
                "s3a", context._jsc.hadoopConfiguration()
            )
        except Exception:
            try:
                hadoop = str(jvm.org.apache.hadoop.util.VersionInfo.getVersion())
            except Exception:  # pragma: no cover - the version is only for the message
                hadoop = "<the cluster's Hadoop version>"
            raise SparkUnavailable(
                f"engine spark: the lake is on S3 but Spark cannot load {S3A_FILESYSTEM}: "
                f"add the jar org.apache.hadoop:hadoop-aws:{hadoop} (matching Spark's "
                "Hadoop) and the AWS SDK v2 bundle to spark.jars or spark.jars.packages "
                "on the driver and executors (docs/deploy.md)"
            ) from None
        self._s3a_checked = True

    # -- building ---------------------------------------------------------------------

    def build(
        self,
        query: ReportQuery,
        snapshot: Snapshot,
        destination: Path,
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> BuildResult:
        (result,) = self.build_many(
            [Job(query, snapshot, Path(destination))], progress=progress, cancelled=cancelled
        )
        return result

    def build_many(
        self,
        jobs: Sequence[Job],
        *,
        progress: ProgressCallback | None = None,
        cancelled: CancelCheck | None = None,
    ) -> list[BuildResult]:
        """Build several reports; text formats share Spark jobs (one per range of days).

        Each file appears at its destination only when whole, as :meth:`build` says.
        """
        if not jobs:
            return []
        work_parent = Path(jobs[0].destination).parent
        with tempfile.TemporaryDirectory(prefix=".build-", dir=work_parent) as work:
            workdir = Path(work)
            plans = [_Plan(index, job, self.days_per_job) for index, job in enumerate(jobs)]
            for plan in plans:
                plan.open(workdir)
            group = f"mdr-build-{uuid.uuid4().hex}"
            watch = _CancelWatch(self, group, cancelled, self.cancel_poll_seconds)
            try:
                batches = _batches(plans)
                total = sum(len(batch) for batch in batches) or 1
                done = 0
                with watch:
                    for batch in batches:
                        if watch.fired or (cancelled is not None and cancelled()):
                            raise Cancelled("the build was cancelled")
                        try:
                            self._run(batch, workdir / f"job-{uuid.uuid4().hex}", group)
                        except EngineError:
                            if watch.fired:  # the job failed because it was cancelled
                                raise Cancelled("the build was cancelled") from None
                            raise
                        done += len(batch)
                        if progress is not None:
                            progress(done / total)
                if watch.fired:
                    raise Cancelled("the build was cancelled")
                for plan in plans:
                    plan.output.finish()
            finally:
                for plan in plans:
                    plan.output.close()
            if progress is not None and not batches:
                progress(1.0)
            results = []
            for plan in plans:
                size = plan.output.path.stat().st_size
                os.replace(plan.output.path, plan.job.destination)
                results.append(BuildResult(rows=plan.rows, size_bytes=size))
        return results

    def _run(self, batch: list[_Range], folder: Path, group: str) -> None:
        """One Spark job for ``batch`` (ranges of days of one or more reports).

        Each report's rows are hash-partitioned by day once; the latest-version
        window, the criteria, the formatting and the sort then run where the rows
        are.  Several reports' partitions are unioned (no further shuffle).
        """
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        spark = self.session()
        for item in batch:
            item.check_files()
        if any(path.startswith("s3://") for item in batch for path in item.files):
            self.check_s3a(spark)
        # This thread's jobs belong to the build's group: cancelling it stops them.
        spark.sparkContext.setJobGroup(group, "mdr report build", interruptOnCancel=True)
        # Each (report, day) lands in one partition; a few per core keep the cores busy.
        most = 4 * spark.sparkContext.defaultParallelism
        frames = [item.frame(spark, max(1, min(len(item.days), most))) for item in batch]
        rows = frames[0]
        for other in frames[1:]:
            rows = rows.unionByName(other)
        fmt = batch[0].plan.job.query.format
        counts = [
            F.count_if(F.col("_k") == F.lit(item.plan.index)).alias(f"r{item.plan.index}")
            for item in batch
        ]
        observation = Observation(f"rows-{uuid.uuid4().hex}")
        ordered = rows.observe(observation, *counts).sortWithinPartitions(
            "_k", "_d", "created_at", "id"
        )
        try:
            if fmt == "parquet":
                writer = ordered.write.partitionBy("_k", "_d").option("compression", "none")
                writer.parquet(str(folder))
            else:
                writer = ordered.select("_k", "_d", "_line").write.partitionBy("_k", "_d")
                writer = writer.option("lineSep", "\r\n" if fmt.startswith("csv") else "\n")
                if fmt.endswith(".gz"):
                    writer = writer.option("compression", "gzip")
                writer.text(str(folder))
        except Exception as exc:
            for item in batch:
                item.check_files()  # a file gone meanwhile is SnapshotFileMissing
            raise EngineError(f"spark job failed: {_first_line(exc)}") from exc
        counted = observation.get
        for item in batch:
            item.plan.rows += int(counted.get(f"r{item.plan.index}") or 0)
            for day in item.days:
                item.plan.append_parts(folder / f"_k={item.plan.index}" / f"_d={day.isoformat()}")
        shutil.rmtree(folder, ignore_errors=True)


class _CancelWatch:
    """While open, polls ``cancelled`` every ``interval`` seconds from a thread of its own
    and, once it answers True, cancels the build's Spark job group (running tasks are
    interrupted) and sets :attr:`fired`."""

    def __init__(
        self,
        engine: SparkEngine,
        group: str,
        cancelled: CancelCheck | None,
        interval: float,
    ) -> None:
        self.engine = engine
        self.group = group
        self.cancelled = cancelled
        self.interval = max(0.05, interval)
        self.fired = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _CancelWatch:
        if self.cancelled is not None:
            self._thread = threading.Thread(
                target=self._watch, name=f"mdr-spark-cancel-{self.group[-8:]}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        assert self.cancelled is not None
        while not self._stop.wait(self.interval):
            try:
                if not self.cancelled():
                    continue
            except Exception:  # a failing check must not kill the watch; ask again
                log.warning("cancellation check failed", exc_info=True)
                continue
            self.fired = True
            spark = self.engine._spark
            if spark is not None:
                try:
                    spark.sparkContext.cancelJobGroup(self.group)
                except Exception:  # the session stopped meanwhile: nothing runs
                    log.warning("cancelling Spark job group %s failed", self.group, exc_info=True)
            return


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class _Plan:
    """One report of a batch: its days, their ranges, its assembler and row count."""

    def __init__(self, index: int, job: Job, days_per_job: int) -> None:
        self.index = index
        self.job = job
        query, snapshot = job.query, job.snapshot
        days = [d for d in snapshot.days(query.start, query.end) if snapshot.files[d]]
        self.days = days if query.accounts else []
        self.ranges = [
            _Range(self, self.days[i : i + days_per_job])
            for i in range(0, len(self.days), days_per_job)
        ]
        self.rows = 0

    def open(self, workdir: Path) -> None:
        self.output = assembler_for(
            self.job.query.format, workdir / f"report-{self.index}", self.job.query.columns
        )

    def append_parts(self, folder: Path) -> None:
        if not folder.exists():
            return  # no row of this day was selected
        extension = _EXTENSIONS[self.job.query.format]
        for part in sorted(folder.iterdir()):
            if part.name.startswith("part-") and part.name.endswith(extension):
                self.output.append(part)


def _batches(plans: list[_Plan]) -> list[list[_Range]]:
    """Ranges that run as one Spark job: the n-th range of every text report of one
    format together (their lines union); a Parquet report's ranges run alone."""
    out: list[list[_Range]] = []
    for fmt in ("csv", "csv.gz", "jsonl.gz"):
        text = [p for p in plans if p.job.query.format == fmt]
        for step in range(max((len(p.ranges) for p in text), default=0)):
            out.append([p.ranges[step] for p in text if step < len(p.ranges)])
    for plan in plans:
        if plan.job.query.format == "parquet":
            out.extend([r] for r in plan.ranges)
    return out


class _Range:
    """Consecutive days of one report, read and formatted as one DataFrame.

    Expressions are Spark SQL text (values as escaped literals, :func:`_lit`): one
    call to the JVM per expression, where building them from Column objects takes
    thousands of round trips through py4j (minutes on a busy machine).
    """

    def __init__(self, plan: _Plan, days: list[date]) -> None:
        self.plan = plan
        self.days = days
        self.files = [f for day in days for f in plan.job.snapshot.files[day]]

    def check_files(self) -> None:
        for path in self.files:
            if "://" not in path and not os.path.exists(path):
                raise SnapshotFileMissing(path)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.plan.job.query.columns

    def scan(self, spark: Any) -> Any:
        """This range's rows in the window, with ``_k`` (the report), ``_d`` (the UTC day),
        ``_file`` (the file's place in the snapshot list) and ``_row`` (in the file)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType

        query = self.plan.job.query
        folded = query.where is None or has_folded_numbers(self.files, self.plan.job.snapshot.open)
        needed = {*query.columns, *CRITERIA_COLUMNS, "account_id"} - {"record_type"}
        if folded and query.where is not None:
            needed |= set(FOLDED_COLUMNS.values())
        schema = _spark_schema([f for f in LAKE_SCHEMA if f.name in needed])
        places: list[str] = []
        for day in self.days:
            names = [Path(f).name for f in self.plan.job.snapshot.files[day]]
            if len(set(names)) != len(names):
                raise EngineError(f"two lake files of {day} have the same name")
            places += [_lit(f"{day.isoformat()}/{name}") for name in names]
        place = ", ".join(f"{key}, {number}" for number, key in enumerate(places))
        scope = (
            f"account_id IN ({', '.join(_lit(a) for a in query.accounts)})"
            f" AND created_at >= timestamp_micros({_epoch_us(query.start)})"
            f" AND created_at < timestamp_micros({_epoch_us(query.end)})"
        )
        rows = (
            spark.read.schema(schema)
            .parquet(*[spark_path(f) for f in self.files])
            .where(scope)
            .selectExpr(
                f"{self.plan.index} AS _k",
                "*",
                "date_format(created_at, 'yyyy-MM-dd') AS _d",
                "_metadata.file_name AS _name",
                "_metadata.row_index AS _row",
            )
            .selectExpr("*", f"try_element_at(map({place}), concat(_d, '/', _name)) AS _file")
        )
        if not folded:  # files from before the lake stored folded numbers
            fold = F.udf(fold_number, StringType(), useArrow=False)
            for number, name in FOLDED_COLUMNS.items():
                rows = rows.withColumn(name, fold(F.col(number)))
        return rows

    def frame(self, spark: Any, partitions: int) -> Any:
        """The report's rows of these days, in ``partitions`` partitions by day: latest
        versions, the criteria, then ``_k``, ``_d``, ``created_at``, ``id`` and ``_line``
        (text formats) or the typed columns (Parquet)."""
        latest = (
            "row_number() OVER (PARTITION BY _d, id "
            "ORDER BY updated_at DESC, _file ASC, _row ASC) AS _n"
        )
        rows = (
            self.scan(spark)
            .repartition(partitions, "_d")
            .selectExpr("*", latest)
            .where(" AND ".join(["_n = 1", *self.condition()]))
        )
        spans = self._spans(spark)
        shape = self.plan.job.query.format
        if shape == "parquet":
            cells = [f"{_cell(name, 'typed', spans)} AS `{name}`" for name in self.columns]
            return rows.selectExpr("_k", "_d", *cells)
        # Cells first, then the line from plain column references: a cell used several
        # times by the quoting rule is computed once.
        cells = [f"{_cell(name, shape, spans)} AS _c{i}" for i, name in enumerate(self.columns)]
        rows = rows.selectExpr("_k", "_d", "created_at", "id", *cells)
        return rows.selectExpr("_k", "_d", "created_at", "id", f"{self.line()} AS _line")

    def condition(self) -> list[str]:
        return [f"coalesce({c}, false)" for c in _criteria(self.plan.job.query)]

    def line(self) -> str:
        """The report line from the cells ``_c0``...: CSV cells joined by commas (only text
        columns can need quotes), or one JSON object."""
        shape = self.plan.job.query.format
        if shape == "jsonl.gz":
            fields = ", ".join(f"{_lit(name)}, _c{i}" for i, name in enumerate(self.columns))
            return f"to_json(named_struct({fields}), map('ignoreNullFields', 'false'))"
        cells = [
            f"coalesce(_c{i}, '')" if name in _PLAIN_CELLS else _csv_cell(f"_c{i}")
            for i, name in enumerate(self.columns)
        ]
        return "concat_ws(',', " + ", ".join(cells) + ")"

    def _spans(self, spark: Any) -> list[OffsetSpan]:
        """The zone's offsets over the files' timestamps (from statistics, else a scan)."""
        found = timestamp_range(self.files, self.plan.job.snapshot.open)
        if found is None:
            stamps = ", ".join(f"unix_micros({name})" for name in TIMESTAMP_COLUMNS)
            low, high = (
                spark.read.schema(
                    _spark_schema([f for f in LAKE_SCHEMA if f.name in TIMESTAMP_COLUMNS])
                )
                .parquet(*[spark_path(f) for f in self.files])
                .selectExpr(f"min(least({stamps}))", f"max(greatest({stamps}))")
                .first()
            )
            found = (int(low or 0), int(high or 0))
        return offset_spans(get_zone(self.plan.job.query.timezone), *found)


def _epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _lit(text: str) -> str:
    """A Spark SQL string literal: backslashes and quotes escaped, every other character
    as is (so a user's value is data, never SQL)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _spark_schema(fields: Iterable[Any]) -> Any:
    """The Spark schema of LAKE_SCHEMA fields (read with it, so no inference job runs)."""
    from pyspark.sql import types as T

    def convert(kind: Any) -> Any:
        text = str(kind)
        if text.startswith("timestamp"):
            return T.TimestampType()
        if text.startswith("decimal128"):
            return T.DecimalType(kind.precision, kind.scale)
        if text.startswith("list"):
            return T.ArrayType(T.StringType())
        return {"string": T.StringType(), "int32": T.IntegerType(), "int64": T.LongType()}[text]

    return T.StructType([T.StructField(f.name, convert(f.type), True) for f in fields])


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(_lit(v) for v in values)})"


def _criteria(query: ReportQuery) -> list[str]:
    """Every criterion but account and window, on the latest version (as duckdb_sql)."""
    out = []
    if not query.all_directions:
        out.append(_in("direction", query.directions))
    if not query.all_statuses:
        out.append(_in("status", query.statuses))
    if query.connections:
        out.append(_in("connection_id", query.connections))
    if query.profiles:
        out.append(_in("profile_id", query.profiles))
    if query.where is not None:
        out.append(_filters(query.where))
    return out


_MATCH_SQL = {"contains": "contains", "starts_with": "startswith", "ends_with": "endswith"}


def _filters(where: AnyOf) -> str:
    def predicate(term: NumberMatch | TagMatch) -> str:
        if isinstance(term, TagMatch):
            wanted = ", ".join(_lit(t) for t in term.tags)
            return f"coalesce(arrays_overlap(tags, array({wanted})), false)"
        function = _MATCH_SQL[term.match]
        return f"coalesce({function}({FOLDED_COLUMNS[term.field]}, {_lit(term.value)}), false)"

    groups = ["(" + " AND ".join(predicate(t) for t in g.terms) + ")" for g in where.terms]
    return "(" + " OR ".join(groups) + ")"


def _pick(us: str, spans: list[OffsetSpan], values: list[str]) -> str:
    """The value of the last span whose start is not after ``us``."""
    if len(spans) == 1:
        return values[0]
    whens = " ".join(
        f"WHEN {us} >= {span.start_us} THEN {value}"
        for span, value in reversed(list(zip(spans[1:], values[1:], strict=True)))
    )
    return f"CASE {whens} ELSE {values[0]} END"


def _timestamp_text(name: str, spans: list[OffsetSpan]) -> str:
    """``name`` as ``datetime.isoformat()`` writes it in the request's zone (NULL stays NULL)."""
    us = f"unix_micros(`{name}`)"
    offset = _pick(us, spans, [str(s.offset_us) for s in spans])
    suffix = _pick(us, spans, [_lit(s.suffix) for s in spans])
    text = f"date_format(timestamp_micros({us} + {offset}), \"yyyy-MM-dd'T'HH:mm:ss.SSSSSS\")"
    # isoformat() leaves out zero microseconds; the only '.' is the one before them.
    return f"concat(replace({text}, '.000000', ''), {suffix})"


def _cell(name: str, shape: str, spans: list[OffsetSpan]) -> str:
    """One report column: text for CSV, JSON values for jsonl.gz, typed for Parquet."""
    column = f"`{name}`"
    if name in TIMESTAMP_COLUMNS:
        return column if shape == "typed" else _timestamp_text(name, spans)
    if name == "record_type":
        whens = " ".join(
            f"WHEN {_lit(status)} THEN {_lit(kind.report_name)}"
            for status, kind in sorted(STATUS_RECORD_TYPE.items())
        )
        return f"CASE status {whens} END"
    if name == "tags":
        if shape == "typed":
            return column
        if shape == "jsonl.gz":
            return "coalesce(tags, CAST(array() AS array<string>))"
        return "array_join(tags, ';')"
    if name in ("rate", "cost"):
        money = f"CAST({column} AS decimal(18, 6))"
        return money if shape == "typed" else f"CAST({money} AS string)"
    if name in ("parts", "media_size_bytes") and shape in ("csv", "csv.gz"):
        return f"CAST({column} AS string)"
    return column


def _csv_cell(cell: str) -> str:
    """A CSV cell as Python's ``csv`` module writes it: quoted only when it holds a comma,
    a quote, CR or LF, quotes doubled; NULL is an empty cell."""
    return (
        f"coalesce(CASE WHEN {cell} RLIKE '[,\"\\r\\n]'"
        f" THEN concat('\"', replace({cell}, '\"', '\"\"'), '\"') ELSE {cell} END, '')"
    )
