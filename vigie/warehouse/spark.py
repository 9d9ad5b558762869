"""Warehouses on Spark, where the largest French EDS keep their data: a local session over a folder of tables
(`spark+local:///path`: one sub-folder per table, Parquet or Delta, vigie.warehouse.delta) or a
Spark cluster through Spark Connect (`spark://host:port`, `?schema=` the database of the CDM tables).

The checks' SQL is rendered in Spark SQL by dialect.render (Session.rows); this module runs it. A local
session keeps to the machine (loopback only, no UI, two cores, a small driver), so that a reviewer's run of
vigie opens nothing on the network. Every Spark job runs under a job group (a tag on Spark Connect) with a
time limit: on timeout or interruption the group is cancelled in Spark, not only abandoned by Python.
The JVM starts once per process (10 to 20 s) and is reused by every target of the run.
"""
from __future__ import annotations

import atexit
import os
import resource
import tempfile
import threading
import uuid
from pathlib import Path

from ..errors import ObservationError
from ..extras import missing

LOCAL_CORES = 2
DRIVER_MEMORY = "768m"
# a local session is the reviewer's machine: loopback only, no web UI, no Hive metastore nor warehouse folder
# in the working directory, UTC timestamps, and SQL that yields NULL on a bad cast (as the checks expect of
# every engine) rather than failing a whole table's scan; no broadcast join: the planner sizes a table by its
# compressed Parquet files, and at 1M persons broadcasting measurement's 5 million person ids overran the small
# driver ("Not enough memory to build and broadcast the table"); a shuffle join spills to disk instead
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": str(LOCAL_CORES * 2),
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.autoBroadcastJoinThreshold": "-1",
}
RUNTIME_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false"}


class SparkQueryError(Exception):
    """A query Spark refused or that ran past its time limit (one line)."""


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise ObservationError(missing("pyspark", "spark")) from None
    return SparkSession


_LOCAL = {}   # the process's local session (one JVM per process)


def _local_session():
    if "spark" in _LOCAL:
        return _LOCAL["spark"]
    SparkSession = _pyspark()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = Path(tempfile.gettempdir()) / "vigie-spark"
    builder = SparkSession.builder.master(f"local[{LOCAL_CORES}]").appName("vigie")
    for key, value in {**LOCAL_CONF, "spark.driver.memory": driver_memory(), "spark.local.dir": str(scratch / "local"),
                       "spark.sql.warehouse.dir": str(scratch / "warehouse")}.items():
        builder = builder.config(key, value)
    # the JVM is vigie's child: it would inherit the ceiling vigie puts on its own data (limits.memory_ceiling),
    # which a JVM's reservations exceed (at 10M persons it died, "insufficient memory for the Java Runtime");
    # its memory is bounded by the driver's instead, and vigie's ceiling is put back once it has started
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no Java, a JVM that does not start: one line
        raise ObservationError(f"cannot start a local Spark session: {_line(exc)}") from None
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    spark.sparkContext.setLogLevel("ERROR")
    _LOCAL["spark"] = spark
    atexit.register(_stop, spark)
    return spark


def driver_memory() -> str:
    """The local session's driver memory: Spark's own SPARK_DRIVER_MEMORY when the user sets it (a warehouse of
    10 million persons overran the default), else vigie's small default."""
    return os.environ.get("SPARK_DRIVER_MEMORY") or DRIVER_MEMORY


def _stop(spark) -> None:
    """Stops a session (the local one at exit, a Connect one at close); a JVM or server already gone (a driver
    out of memory) leaves nothing to stop, and no traceback on the user's terminal."""
    try:
        spark.stop()
    except Exception:  # noqa: BLE001, S110 - a JVM or server that has stopped: nothing left to stop
        pass


def _line(exc: BaseException) -> str:
    """One line saying why: for an error of the JVM (py4j's, whose first line names only the call, as
    "... calling o261.collectToPython."), the Java exception's root cause."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            while java.getCause() is not None:
                java = java.getCause()
            return str(java.toString()).strip().splitlines()[0][:300]
        except Exception:  # noqa: BLE001, S110 - the JVM is gone: its message is all there is
            pass
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def literal_path(path: str) -> str:
    """A path as Spark reads it: as a glob pattern, where a folder named "eds[2024]" would name "eds2" instead."""
    return "".join("\\" + c if c in "\\[]{}*?" else c for c in path)


def _jvm_unreachable(exc: BaseException) -> bool:
    from py4j.protocol import Py4JNetworkError  # a local session's own dependency (pyspark's)
    return isinstance(exc, ConnectionError | EOFError | Py4JNetworkError)


class SparkConnection:
    """What Session needs of a connection: rows(sql), rollback(), close(), and the catalogue's columns."""

    def __init__(self, spark, remote: bool, timeout_s: float):
        self.spark = spark
        self.remote = remote
        self.timeout_s = timeout_s
        self.views: list[str] = []

    # opening ------------------------------------------------------------------------------------

    @classmethod
    def local(cls, folder: str, timeout_s: float) -> SparkConnection:
        root = Path(folder)
        if not root.is_dir():
            raise ObservationError(f"no such folder of tables: {root.resolve()}")
        conn = cls(_local_session(), remote=False, timeout_s=timeout_s)
        for table in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            conn._register(table)
        return conn

    @classmethod
    def connect(cls, url: str, timeout_s: float) -> SparkConnection:
        SparkSession = _pyspark()
        # pyspark marks the whole process as Connect-only once a remote session exists (an environment
        # variable), after which a local session for another target cannot start: the mark is undone, and each
        # target gets a session of its own (create, not getOrCreate, which would return the first server's)
        marked = "SPARK_CONNECT_MODE_ENABLED" in os.environ
        try:
            try:
                spark = SparkSession.builder.remote(url).create()
            finally:
                if not marked:
                    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
            for key, value in RUNTIME_CONF.items():
                spark.conf.set(key, value)
        except Exception as exc:  # noqa: BLE001 - grpc, authentication, a refused conf: one line
            raise ObservationError(f"cannot connect to Spark Connect at {url}: {_line(exc)}") from None
        return cls(spark, remote=True, timeout_s=timeout_s)

    def _register(self, folder: Path) -> None:
        """A table folder as a temporary view named after it: Delta when it has a transaction log (vigie.warehouse.
        delta: read as bare Parquet, a Delta folder would count the files its log removed), Parquet otherwise."""
        from .delta import delta_frame
        try:
            if (folder / "_delta_log").is_dir():
                frame = delta_frame(self.spark, folder)
            else:
                frame = self.spark.read.format("parquet").load(literal_path(str(folder.resolve())))
            frame.createOrReplaceTempView(folder.name)
        except ObservationError:
            raise
        except Exception as exc:  # noqa: BLE001 - Spark's analysis errors come as several classes: one line
            raise ObservationError(f"cannot read the table folder {folder.name}: {_line(exc)}") from None
        self.views.append(folder.name)

    # queries ------------------------------------------------------------------------------------

    def rows(self, sql: str) -> list[tuple]:
        """Runs one query under its own job group and time limit; SparkQueryError on failure or timeout, the
        group cancelled in Spark on timeout or interruption."""
        group = f"vigie-{uuid.uuid4().hex[:12]}"
        done: dict = {}

        def run():
            try:
                if self.remote:
                    self.spark.addTag(group)
                else:
                    self.spark.sparkContext.setJobGroup(group, "vigie check", interruptOnCancel=True)
                done["rows"] = [tuple(r) for r in self.spark.sql(sql).collect()]
            except Exception as exc:  # noqa: BLE001 - py4j, Spark's errors, a cancelled job: reported as one line
                done["error"] = exc
            finally:
                if self.remote:
                    self.spark.removeTag(group)

        worker = threading.Thread(target=run, name=group, daemon=True)
        worker.start()
        try:
            worker.join(self.timeout_s)
        except BaseException:   # Ctrl-C: the job must not keep the cluster busy after vigie stops
            self.cancel(group)
            raise
        if worker.is_alive():
            self.cancel(group)
            worker.join(10)
            raise SparkQueryError(f"the query ran past its time limit ({self.timeout_s:g} s) and was cancelled")
        if "error" in done:
            raise SparkQueryError(self._why(done["error"]))
        return done["rows"]

    def _why(self, exc: BaseException) -> str:
        """One line; for a local session whose JVM has stopped (py4j can no longer reach it: usually the driver
        ran out of memory), that, and what to do, rather than py4j's socket error."""
        if not self.remote and _jvm_unreachable(exc):
            return (f"the local Spark session's JVM has stopped ({_line(exc)}): its driver had {driver_memory()}, "
                    "most likely too little for this warehouse (set SPARK_DRIVER_MEMORY, e.g. 4g); every later "
                    "query of the run fails")
        return _line(exc)

    def cancel(self, group: str) -> None:
        try:
            if self.remote:
                self.spark.interruptTag(group)
            else:
                self.spark.sparkContext.cancelJobGroup(group)
        except Exception:  # noqa: BLE001, S110 - the session is gone: nothing left running to cancel
            pass

    def columns(self, schema: str | None) -> list[tuple]:
        """(table, column, type, nullable) of every table: the temporary views of a local session, or the
        tables of the schema on Spark Connect."""
        names = self.views if not self.remote else [
            t.name for t in self.spark.catalog.listTables(schema) if t.tableType != "TEMPORARY"]
        found = []
        for name in names:
            qualified = f"`{schema}`.`{name}`" if schema and self.remote else f"`{name}`"
            try:
                fields = self.spark.table(qualified).schema.fields
            except Exception as exc:  # noqa: BLE001 - Spark's analysis errors: one line
                raise ObservationError(f"cannot read the columns of {name}: {_line(exc)}") from None
            found += [(name, f.name, f.dataType.simpleString().upper(), "YES" if f.nullable else "NO")
                      for f in fields]
        return found

    def version(self) -> str:
        return f"Spark {self.spark.version}"

    def rollback(self) -> None:
        pass   # read-only: no transaction to undo

    def close(self) -> None:
        if self.remote:   # the server's session and its resources are released; the server stays
            _stop(self.spark)
        else:
            for name in self.views:   # the JVM stays for the other targets of the run (stopped at exit)
                try:
                    self.spark.catalog.dropTempView(name)
                except Exception:  # noqa: BLE001, S110 - the session is gone: nothing to drop
                    pass
        self.views = []


def open_connection(parsed_url, timeout_s: float) -> SparkConnection:
    """spark+local:///relative/dir, spark+local:////absolute/dir, or spark://host:port (Spark Connect)."""
    if parsed_url.drivername == "spark+local":
        return SparkConnection.local(parsed_url.database, timeout_s)
    port = parsed_url.port or 15002
    return SparkConnection.connect(f"sc://{parsed_url.host}:{port}", timeout_s)
