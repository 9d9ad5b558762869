"""A session on a warehouse: one connection, read-only where the engine allows it, every query recorded.

Checks never pull tables into Python: they send aggregate queries and read counts, plus samples capped at
SAMPLE_CAP rows. Each query is timed and handed to the listeners (the outcome being measured keeps it as
evidence), and appended to the warehouse's audit log when it has one (see `audit.py`).

A query has a time limit, and a query stopped for any reason is stopped on the server too, the session left
usable for the next check: PostgreSQL's own `statement_timeout`, and a watchdog thread that interrupts DuckDB
and SQLite (their C code does not return to Python, where the run's deadlines are raised). A query
interrupted in Python (a check's deadline, Ctrl-C) is cancelled on the server (a cancel request, as
`pg_cancel_backend` does) and the connection replaced: a statement left running would hold the server's
resources after vigie is gone, and a connection left mid-statement fails every later query.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from ..errors import ObservationError
from ..limits import Deadline, current
from .dialect import RenderError, dialect_for
from .spark import SparkQueryError
from .url import driver_url, option, public_url

SAMPLE_CAP = 20
# a warehouse file is the vendor's: its views may call read_text('/path'), read_csv, httpfs... and so pull the
# reviewer's files or the network into the report's samples. Such a view fails instead ("disabled by
# configuration"), no extension is fetched or loaded, and no query can switch this back on. External access
# goes off once connected (DuckDB refuses a temp_directory given with it), before any query of the file.
DUCKDB_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                        "allow_community_extensions": False}
DUCKDB_LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")


class StatementTimeout(ObservationError):
    """A query outlived its time limit and was stopped."""


def one_line(exc: BaseException) -> str:
    """A database error as one line, without the SQL that SQLAlchemy appends."""
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return re.sub(r"\s+", " ", message[0] if message else type(exc).__name__)[:300]


class Session:
    def __init__(self, url: str, redact=lambda s: s):
        self.url = url
        self.public_url = public_url(url)
        self.sa_url = driver_url(url)
        self.backend = self.sa_url.get_backend_name()
        self.dialect = dialect_for(self.backend)
        self.schema = option(url, "schema")
        self.read_only = False
        self.listeners: list = []
        self.memo: dict = {}          # results shared by every check of the run (one scan per table)
        self.audit = None             # set by audit.attach() when the warehouse has an audit log
        self.queries = 0
        limits = current()   # the run's [limits]: the statement's time, the in-process engine's memory and threads
        self.statement_timeout_s = limits.statement_timeout_s
        self.engine_memory, self.engine_threads = limits.engine_memory, limits.engine_threads
        self._interrupted = False
        self._backend_pid = None
        self._engine = None
        self.conn = None

    # connection ---------------------------------------------------------------------------------

    def connect(self, read_only: bool = True) -> Session:
        self.close()
        if self.backend == "spark":   # not a SQLAlchemy engine: pyspark runs the rendered SQL (spark.py)
            from .spark import open_connection
            self.conn = open_connection(self.sa_url, self.statement_timeout_s)
            self.read_only = True
            if not self.conn.remote:   # a folder's tables are temporary views, in no schema
                self.schema = None
            return self
        kwargs: dict = {"poolclass": StaticPool}
        if self.backend == "duckdb":
            path = self.sa_url.database
            if path not in (":memory:", None) and not Path(path).is_file():
                raise ObservationError(f"{self.public_url}: no such DuckDB file ({Path(path).resolve()})")
            # the engine runs inside vigie's process: cap its buffer pool so that memory stays flat as
            # warehouses grow (DuckDB spills larger hash tables to disk)
            spill = Path(tempfile.gettempdir()) / "vigie-duckdb"
            config = {"memory_limit": f"{int(self.engine_memory)}B", "temp_directory": str(spill),
                      "allocator_flush_threshold": "32MB", **DUCKDB_NO_EXTENSIONS}
            if self.engine_threads:
                config["threads"] = int(self.engine_threads)
            kwargs["connect_args"] = {"read_only": read_only, "config": config}
        elif self.backend == "sqlite":
            path = self.sa_url.database
            if not Path(path).is_file():
                raise ObservationError(f"{self.public_url}: no such SQLite file ({Path(path).resolve()})")
            if read_only:  # SQLite's URI mode=ro refuses every write at the file level
                self.sa_url = self.sa_url.set(database=f"file:{Path(path).resolve()}?mode=ro",
                                              query={**self.sa_url.query, "uri": "true"})
        elif self.backend == "postgresql":
            options = [f"-c statement_timeout={max(int(self.statement_timeout_s * 1000), 1)}"]
            if read_only:
                options.append("-c default_transaction_read_only=on")
            if self.schema:
                options.append(f"-c search_path={self.schema}")
            if self.engine_threads:   # the backend itself and its parallel workers
                options.append(f"-c max_parallel_workers_per_gather={int(self.engine_threads) - 1}")
            kwargs["connect_args"] = {"options": " ".join(options), "connect_timeout": 10}
            kwargs["isolation_level"] = "AUTOCOMMIT"
        try:
            self._engine = create_engine(self.sa_url, **kwargs)
            if self.backend == "sqlite":
                event.listen(self._engine, "connect", _sqlite_setup)
            elif self.backend == "duckdb":
                event.listen(self._engine, "connect", _duckdb_lockdown)
            self.conn = self._engine.connect()
        except SQLAlchemyError as exc:
            self.close()
            raise ObservationError(f"cannot connect to {self.public_url}: {one_line(exc)}") from None
        self._backend_pid = self._pid()
        self.read_only = read_only and self.backend in ("duckdb", "sqlite", "postgresql")
        if self.schema is None:
            self.schema = self.scalar("SELECT current_schema()", record=False) if self.backend != "sqlite" else None
        return self

    def flush_audit(self) -> None:
        if self.audit is not None:
            self.audit.flush(self)

    def close(self) -> None:
        if self.conn is not None:
            self.flush_audit()
            try:
                self.conn.close()
            except SQLAlchemyError:
                pass
        if self._engine is not None:
            self._engine.dispose()
        self.conn = self._engine = None

    # queries ------------------------------------------------------------------------------------

    def rows(self, sql: str, record: bool = True) -> list[tuple]:
        """Runs one query and returns its rows; a database error raises ObservationError, a query stopped at
        its time limit StatementTimeout."""
        if self.conn is None:
            raise ObservationError(f"{self.public_url}: not connected")
        try:   # the checks write DuckDB's SQL: the engine's own is what runs and what the evidence shows
            sql = self.dialect.render(sql)
        except RenderError as exc:
            raise ObservationError(f"{self.public_url}: {exc}") from None
        started = time.monotonic()
        limit = self.statement_limit()
        watchdog = None
        if self.backend in ("duckdb", "sqlite"):
            watchdog = threading.Timer(limit, self._interrupt)
            watchdog.daemon = True
            watchdog.fired = False
        try:
            if self.backend == "spark":   # spark.py bounds and cancels its own jobs
                result = self.conn.rows(sql)
            else:
                # drivers with format-style placeholders (psycopg) read a lone % as one
                raw = sql.replace("%", "%%") if self.conn.dialect.paramstyle in ("format", "pyformat") else sql
                if watchdog is not None:
                    watchdog.start()
                try:
                    result = [tuple(r) for r in self.conn.exec_driver_sql(raw).fetchall()]
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
        except SparkQueryError as exc:
            if record:
                self._tell({"sql": sql, "error": one_line(exc), "seconds": round(time.monotonic() - started, 4)})
            raise ObservationError(f"query failed on {self.public_url}: {one_line(exc)}") from None
        except SQLAlchemyError as exc:
            timed_out = (watchdog is not None and self._interrupted) or _server_timeout(exc)
            self._interrupted = False
            self._recover()
            fired = Deadline.fired_error()
            if fired is not None:   # the run's deadline, its signal turned into a driver error by the engine
                if record:
                    self._tell({"sql": sql, "error": "interrupted", "seconds": round(time.monotonic() - started, 4)})
                raise fired from None
            message = (f"stopped after {time.monotonic() - started:.1f} s, the statement time limit of {limit:g} s"
                       if timed_out else one_line(exc))
            if self.backend == "duckdb" and "Out of Memory" in message:   # the pool vigie gave DuckDB: say how
                message += (f" (DuckDB's memory is capped at {round(self.engine_memory / 1e6)} MB: raise [limits] "
                            "engine_memory; 1 GiB ran the three warehouse profiles at 10 million persons)")
            if record:
                self._tell({"sql": sql, "error": message, "seconds": round(time.monotonic() - started, 4)})
            if timed_out:
                raise StatementTimeout(f"query on {self.public_url} {message}") from None
            raise ObservationError(f"query failed on {self.public_url}: {message}") from None
        except BaseException as exc:
            # interrupted in Python (a deadline, Ctrl-C): SQLAlchemy has dropped the connection, the statement
            # may still run on the server
            if self.backend != "spark":   # (spark.py has cancelled its job)
                backend_pid = self._backend_pid
                self._recover(replace=True)
                self._cancel(backend_pid)
            if record:
                self._tell({"sql": sql, "error": "interrupted", "seconds": round(time.monotonic() - started, 4)})
            fired = Deadline.fired_error()
            if fired is not None and exc is not fired:
                raise fired from None
            raise
        if record:
            self.queries += 1
            self._tell({"sql": sql, "rows": len(result), "seconds": round(time.monotonic() - started, 4)})
            if self.audit is not None:
                self.audit.append(self, sql)
        return result

    def statement_limit(self) -> float:
        """Seconds the next query may run: the statement limit, or less if a deadline of the run falls due
        sooner (the watchdog stops the engines that a deadline's signal cannot interrupt)."""
        left = Deadline.remaining()
        return max(min(self.statement_timeout_s, left) if left is not None else self.statement_timeout_s, 0.001)

    def _dbapi(self):
        try:
            return self.conn.connection.dbapi_connection
        except (SQLAlchemyError, AttributeError):
            return None

    def _interrupt(self) -> None:
        """From the watchdog thread: stops the statement running in the engine (DuckDB, SQLite)."""
        dbapi = self._dbapi()
        if dbapi is not None:
            self._interrupted = True
            with contextlib.suppress(Exception):   # the statement may have ended meanwhile
                dbapi.interrupt()

    def _cancel(self, backend_pid) -> None:
        """Stops the interrupted statement on the server: PostgreSQL's pg_cancel_backend from the new
        connection (the old one is closed, which the server notices only when it next writes to it); the
        in-process engines stopped with their connection."""
        if self.backend != "postgresql" or backend_pid is None or self.conn is None:
            return
        try:
            self.conn.exec_driver_sql(f"SELECT pg_cancel_backend({int(backend_pid)})").fetchall()
        except SQLAlchemyError:
            self._recover()

    def _recover(self, replace: bool = False) -> None:
        """Rolls back what the failed statement left; a connection interrupted mid-statement (replace) or
        that SQLAlchemy invalidated is replaced by a new one, so that the next check runs."""
        if self.conn is None:
            return
        if not replace and not self.conn.invalidated:
            try:
                self.conn.rollback()
                return
            except SQLAlchemyError:
                pass
        try:
            self.conn.invalidate()
        except SQLAlchemyError:
            pass
        try:
            self.conn.close()
        except SQLAlchemyError:
            pass
        try:
            self.conn = self._engine.connect()
        except SQLAlchemyError:
            self.conn = None   # the next query says "not connected"
        self._backend_pid = self._pid()

    def _pid(self):
        """The server process of the connection (PostgreSQL), to cancel its statement from another."""
        dbapi = self._dbapi() if self.backend == "postgresql" else None
        return getattr(getattr(dbapi, "info", None), "backend_pid", None)

    def scalar(self, sql: str, record: bool = True):
        rows = self.rows(sql, record)
        return rows[0][0] if rows else None

    def sample(self, sql: str, cap: int = SAMPLE_CAP) -> list[tuple]:
        return self.rows(f"SELECT * FROM ({sql}) AS vigie_sample LIMIT {int(cap)}")

    def execute_unrecorded(self, sql: str, params=None) -> None:
        """A statement that is not a check's query (the audit append itself)."""
        self.conn.execute(text(sql), params or {})
        if self.backend != "postgresql":
            self.conn.commit()

    def _tell(self, record: dict) -> None:
        for listener in list(self.listeners):
            listener(record)

    # names --------------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        return self.dialect.qualified(self.schema, name)

    def version(self) -> str:
        if self.backend == "spark" and self.conn is not None:
            return self.conn.version()
        sql = {"duckdb": "SELECT version()", "postgresql": "SHOW server_version",
               "sqlite": "SELECT sqlite_version()"}.get(self.backend, "SELECT 1")
        try:
            return str(self.scalar(sql, record=False))
        except ObservationError:
            return "unknown"


def _server_timeout(exc: SQLAlchemyError) -> bool:
    """PostgreSQL stopped the statement at its statement_timeout (SQLSTATE 57014 with that reason)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "57014" and "timeout" in str(orig)


def _duckdb_lockdown(dbapi_conn, _record):
    for statement in DUCKDB_LOCKDOWN:
        dbapi_conn.execute(statement)


def _sqlite_setup(dbapi_conn, _record):
    """SQLite already refuses load_extension() and fts3_tokenizer() in a view; the file's views and triggers
    may not call functions with side effects either, and no other file can be attached."""
    dbapi_conn.execute("PRAGMA trusted_schema = OFF")
    dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)

    def regexp(pattern, value):   # `value REGEXP pattern` calls regexp(pattern, value)
        return value is not None and re.search(pattern, str(value)) is not None

    def extract(value, pattern, group):
        m = re.search(pattern, str(value)) if value is not None else None
        return m.group(group) if m else None
    dbapi_conn.create_function("regexp", 2, regexp, deterministic=True)
    dbapi_conn.create_function("regexp_extract", 3, extract, deterministic=True)
