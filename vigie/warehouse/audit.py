"""The warehouse's audit log as the harness sees it, and how the harness's own queries get into it.

Contract (documented in docs/warehouse.md, "eds-privacy"): the warehouse exposes a relation `audit_log` (in its schema,
or where the URL option `audit_log=schema.table` says) with a time, a user and a statement column.
- PostgreSQL: the warehouse's access layer is a function `audit_record(statement text)` next to it
  (SECURITY DEFINER, owned by another role): the harness calls it after each of its queries; the function
  stamps the time and `session_user` itself, so the harness cannot forge them, and the harness's role has
  no right on `audit_log` but SELECT. A warehouse that logs on the server side instead (pgaudit,
  log_statement fed to a table) exposes that log as `audit_log` and needs no function: the check only
  looks for the harness's probe in it.
- DuckDB and SQLite have no roles nor procedures: the harness appends to `audit_log` itself, through a
  session opened read-write for that purpose; immutability cannot be enforced there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from .dialect import db_family

NAME = "audit_log"
PROCEDURE = "audit_record"
STATEMENT_COLUMNS = ("statement", "query", "query_text", "sql", "statement_text")
USER_COLUMNS = ("db_user", "username", "user_name", "role", "usename", "session_user")
TIME_COLUMNS = ("logged_at", "event_time", "at", "ts", "timestamp", "log_time", "created_at")


@dataclass
class AuditLog:
    schema: str | None
    table: str
    statement: str | None
    user: str | None
    time: str | None
    mode: str                      # "procedure", "table" (the harness inserts) or "server" (nothing to do)
    appended: int = 0
    pending: list = field(default_factory=list)
    append_errors: int = 0
    last_error: str | None = None

    def relation(self, dialect) -> str:
        return dialect.qualified(self.schema, self.table)

    def append(self, session, sql: str) -> None:
        """Queues one of the harness's queries; flush() writes the queue (one transaction per outcome:
        a commit per query would cost an fsync each)."""
        if self.mode != "server":
            self.pending.append(sql)

    def flush(self, session) -> None:
        if not self.pending or session.conn is None:
            return
        batch, self.pending = self.pending, []
        try:
            if self.mode == "procedure":
                proc = session.dialect.qualified(self.schema, PROCEDURE)
                session.execute_unrecorded("BEGIN READ WRITE")
                session.execute_unrecorded(f"SELECT {proc}(s) FROM unnest(CAST(:batch AS TEXT[])) AS s",
                                           {"batch": batch})
                session.execute_unrecorded("COMMIT")
            else:
                q = session.dialect.quote
                into = f"INSERT INTO {self.relation(session.dialect)} ({q(self.time)}, {q(self.user)}, {q(self.statement)})"
                if session.backend == "duckdb":  # one statement for the batch: DuckDB runs executemany row by row
                    session.execute_unrecorded(f"{into} SELECT CURRENT_TIMESTAMP, :u, unnest(CAST(:b AS VARCHAR[]))",
                                               {"u": "vigie", "b": batch})
                else:
                    session.execute_unrecorded(f"{into} VALUES (CURRENT_TIMESTAMP, :u, :s)",
                                               [{"u": "vigie", "s": x} for x in batch])
            self.appended += len(batch)
        except SQLAlchemyError as exc:
            self.append_errors += 1
            self.last_error = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            try:
                session.execute_unrecorded("ROLLBACK") if self.mode == "procedure" else session.conn.rollback()
            except SQLAlchemyError:
                pass

    def to_json(self) -> dict:
        return {"relation": f"{self.schema}.{self.table}" if self.schema else self.table, "mode": self.mode,
                "statement_column": self.statement, "user_column": self.user, "time_column": self.time,
                "appended": self.appended + len(self.pending), "append_errors": self.append_errors, "last_error": self.last_error}


def _where(session, catalogue):
    """(schema, table name) of the audit relation, or None."""
    from .url import option
    named = option(session.url, "audit_log")
    if named:
        schema, _, table = named.rpartition(".")
        return (schema or session.schema, table)
    table = catalogue.table(NAME)
    return (session.schema, table.name) if table else None


def needs_writable_session(session, catalogue) -> bool:
    return session.backend in ("duckdb", "sqlite") and _where(session, catalogue) is not None


def _pick(columns: dict, names, family=None):
    for n in names:
        if n in columns:
            return columns[n][0]
    if family:
        for name, ctype in columns.values():
            if db_family(ctype) == family:
                return name
    return None


def attach(session, catalogue) -> AuditLog | None:
    where = _where(session, catalogue)
    if where is None:
        return None
    schema, table = where
    d = session.dialect
    if session.backend in ("sqlite", "spark"):   # no information_schema: the catalogue read at opening
        cols = {c.name.lower(): (c.name, c.type) for c in (catalogue.table(table).columns.values()
                                                          if catalogue.table(table) else [])}
    else:
        cols = {r[0].lower(): (r[0], r[1]) for r in session.rows(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
            f"{d.literal(schema)} AND lower(table_name) = {d.literal(table.lower())}", record=False)}
    if not cols:
        return None
    mode = "table"
    if session.backend == "postgresql":
        has_proc = session.scalar(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE p.proname = {d.literal(PROCEDURE)} AND n.nspname = {d.literal(schema)} "
            "AND has_function_privilege(p.oid, 'EXECUTE')", record=False)
        mode = "procedure" if has_proc else "server"
    elif session.backend not in ("duckdb", "sqlite"):
        mode = "server"
    session.audit = AuditLog(schema, table, _pick(cols, STATEMENT_COLUMNS, "text"), _pick(cols, USER_COLUMNS),
                             _pick(cols, TIME_COLUMNS, "datetime"), mode)
    return session.audit
