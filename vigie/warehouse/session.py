"""A session on a warehouse: one connection, read-only where the engine allows it, every query recorded.

Checks never pull tables into Python: they send aggregate queries and read counts, plus samples capped at
SAMPLE_CAP rows. Each query is timed and handed to the listeners (the outcome being measured keeps it as
evidence), and appended to the warehouse's audit log when it has one (see `audit.py`).
"""
from __future__ import annotations

import re
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from ..errors import ObservationError
from .dialect import RenderError, dialect_for
from .spark import SparkQueryError
from .url import driver_url, option, public_url

SAMPLE_CAP = 20
STATEMENT_TIMEOUT_S = 600
DUCKDB_MEMORY = "96MB"
# a warehouse file is the vendor's: its views may call read_text('/path'), read_csv, httpfs... and so pull the
# reviewer's files or the network into the report's samples. Such a view fails instead ("disabled by
# configuration"), no extension is fetched or loaded, and no query can switch this back on. External access
# goes off once connected (DuckDB refuses a temp_directory given with it), before any query of the file.
DUCKDB_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                        "allow_community_extensions": False}
DUCKDB_LOCKDOWN = ("SET enable_external_access = false", "SET lock_configuration = true")


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
        self._engine = None
        self.conn = None

    # connection ---------------------------------------------------------------------------------

    def connect(self, read_only: bool = True) -> Session:
        self.close()
        if self.backend == "spark":   # not a SQLAlchemy engine: pyspark runs the rendered SQL (spark.py)
            from .spark import open_connection
            self.conn = open_connection(self.sa_url, STATEMENT_TIMEOUT_S)
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
            kwargs["connect_args"] = {"read_only": read_only, "config": {
                "memory_limit": DUCKDB_MEMORY, "temp_directory": str(spill),
                "allocator_flush_threshold": "32MB", **DUCKDB_NO_EXTENSIONS}}
        elif self.backend == "sqlite":
            path = self.sa_url.database
            if not Path(path).is_file():
                raise ObservationError(f"{self.public_url}: no such SQLite file ({Path(path).resolve()})")
            if read_only:  # SQLite's URI mode=ro refuses every write at the file level
                self.sa_url = self.sa_url.set(database=f"file:{Path(path).resolve()}?mode=ro",
                                              query={**self.sa_url.query, "uri": "true"})
        elif self.backend == "postgresql":
            options = [f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"]
            if read_only:
                options.append("-c default_transaction_read_only=on")
            if self.schema:
                options.append(f"-c search_path={self.schema}")
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
        """Runs one query and returns its rows; a database error raises ObservationError."""
        if self.conn is None:
            raise ObservationError(f"{self.public_url}: not connected")
        try:   # the checks write DuckDB's SQL: the engine's own is what runs and what the evidence shows
            sql = self.dialect.render(sql)
        except RenderError as exc:
            raise ObservationError(f"{self.public_url}: {exc}") from None
        started = time.monotonic()
        try:
            if self.backend == "spark":
                result = self.conn.rows(sql)
            else:
                # drivers with format-style placeholders (psycopg) read a lone % as one
                raw = sql.replace("%", "%%") if self.conn.dialect.paramstyle in ("format", "pyformat") else sql
                result = [tuple(r) for r in self.conn.exec_driver_sql(raw).fetchall()]
        except (SQLAlchemyError, SparkQueryError) as exc:
            self._rollback()
            if record:
                self._tell({"sql": sql, "error": one_line(exc), "seconds": round(time.monotonic() - started, 4)})
            raise ObservationError(f"query failed on {self.public_url}: {one_line(exc)}") from None
        if record:
            self.queries += 1
            self._tell({"sql": sql, "rows": len(result), "seconds": round(time.monotonic() - started, 4)})
            if self.audit is not None:
                self.audit.append(self, sql)
        return result

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

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except SQLAlchemyError:
            pass

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
