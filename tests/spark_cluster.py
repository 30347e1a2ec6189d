"""A real Spark standalone cluster (one master, N one-core workers) from the pip pyspark
distribution, bound to 127.0.0.1 on free ports; used by the test suite and bench/spark.py.

Each daemon is ``spark-class org.apache.spark.deploy.{master.Master,worker.Worker}`` in
its own process group, so :meth:`SparkCluster.stop` ends it and the executors it forked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["SparkCluster", "SparkClusterError"]


class SparkClusterError(RuntimeError):
    """The cluster did not come up; the message ends with the daemons' last log lines."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


class SparkCluster:
    """``with SparkCluster(root, workers=2) as cluster: cluster.master_url``."""

    def __init__(
        self, root: Path, *, workers: int = 2, worker_memory: str = "1g", timeout: float = 90.0
    ) -> None:
        self.root = root
        self.workers = workers
        self.worker_memory = worker_memory
        self.timeout = timeout
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.port = _free_port()
        self.ui_port = _free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"

    def client_conf(self) -> dict[str, str]:
        """What a driver on this machine sets to use the cluster (no UI, loopback only)."""
        return {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.executor.memory": "640m",
            "spark.driver.memory": "1g",
            "spark.local.dir": str(self.root / "tmp"),
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.files.minPartitionNum": "1",  # tiny test files: one scan task each
        }

    def environment(self) -> dict[str, str]:
        home = spark_home()
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(home),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOG_DIR=str(self.root / "logs"),
            SPARK_WORKER_DIR=str(self.root / "work"),
            SPARK_LOCAL_DIRS=str(self.root / "tmp"),
            PYSPARK_PYTHON=sys.executable,  # executors need the driver's Python and pyarrow
            SPARK_NO_DAEMONIZE="1",
            SPARK_DAEMON_MEMORY="256m",
            # The daemons only schedule: a quick JIT makes them start sooner on a busy machine.
            SPARK_DAEMON_JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        return env

    def _daemon(self, name: str, *args: str) -> None:
        log = self.root / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(process)

    def start(self) -> SparkCluster:
        for folder in ("logs", "work", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        try:
            self._daemon(
                "master",
                "org.apache.spark.deploy.master.Master",
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--webui-port", str(self.ui_port)),
            )
            for index in range(self.workers):
                self._daemon(
                    f"worker-{index}",
                    "org.apache.spark.deploy.worker.Worker",
                    *("--host", "127.0.0.1", "--port", str(_free_port())),
                    *("--webui-port", str(_free_port())),
                    *("--cores", "1", "--memory", self.worker_memory),
                    *("--work-dir", str(self.root / "work")),
                    self.master_url,
                )
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self) -> None:
        """Until the master's status page shows every worker alive."""
        deadline = time.monotonic() + self.timeout
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise SparkClusterError(f"a Spark daemon exited at start-up{self._tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    status = json.load(answer)
                if int(status.get("aliveworkers", 0)) >= self.workers:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise SparkClusterError(
            f"the Spark cluster was not up after {self.timeout:.0f} s{self._tail()}"
        )

    def _tail(self) -> str:
        lines: list[str] = []
        for log in self.logs:
            if log.exists():
                lines += [f"{log.name}: {line}" for line in log.read_text().splitlines()[-5:]]
        return (":\n" + "\n".join(lines)) if lines else ""

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> SparkCluster:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()
