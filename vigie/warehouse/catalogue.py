"""What the warehouse holds (tables, columns, types), read from its own catalogue once per run.

Registered as the observation "warehouse-catalogue": its value also carries the live session that every
warehouse check of the run shares, so that each table is scanned once for all requirements.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import inspect as sa_inspect

from ..errors import ObservationError
from ..observations import observation
from . import audit
from .session import Session


@dataclass
class Column:
    name: str
    type: str
    nullable: bool = True


@dataclass
class Table:
    name: str
    columns: dict = field(default_factory=dict)   # lower-case name → Column

    def column(self, name: str) -> Column | None:
        return self.columns.get(name.lower())


@dataclass
class Catalogue:
    schema: str | None
    tables: dict = field(default_factory=dict)    # lower-case name → Table

    def table(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def to_json(self) -> dict:
        return {t.name: {c.name: c.type for c in t.columns.values()} for t in self.tables.values()}


def introspect(session: Session) -> Catalogue:
    catalogue = Catalogue(schema=session.schema)
    if session.backend == "sqlite":
        inspector = sa_inspect(session.conn)
        for name in inspector.get_table_names():
            table = catalogue.tables.setdefault(name.lower(), Table(name))
            for col in inspector.get_columns(name):
                table.columns[col["name"].lower()] = Column(col["name"], str(col["type"]), bool(col["nullable"]))
        return catalogue
    found = (session.conn.columns(session.schema) if session.backend == "spark"   # Spark's own catalogue
             else session.rows(session.dialect.columns_sql(session.schema)))
    for tname, cname, ctype, nullable in found:
        table = catalogue.tables.setdefault(tname.lower(), Table(tname))
        table.columns[cname.lower()] = Column(cname, str(ctype), str(nullable).upper() in ("YES", "TRUE"))
    return catalogue


class WarehouseObservation:
    """The catalogue, and the session the checks share (closed at the end of the run)."""

    def __init__(self, session: Session, catalogue: Catalogue):
        self.session = session
        self.catalogue = catalogue

    def to_json(self) -> dict:
        s = self.session
        return {"url": s.public_url, "engine": s.backend, "version": s.version(), "schema": s.schema,
                "read_only": s.read_only, "audit": s.audit.to_json() if s.audit else None,
                "tables": self.catalogue.to_json()}

    def close(self) -> None:
        self.session.close()


def open_warehouse(url: str) -> WarehouseObservation:
    session = Session(url).connect(read_only=True)
    catalogue = introspect(session)
    if not catalogue.tables:   # a wrong ?schema= more likely than a warehouse without tables
        session.close()
        raise ObservationError(f"{session.public_url}: no table in schema {session.schema or '(default)'}")
    if audit.needs_writable_session(session, catalogue):
        # DuckDB and SQLite have no roles nor procedures: the harness appends to the audit table itself
        session.connect(read_only=False)
    audit.attach(session, catalogue)
    return WarehouseObservation(session, catalogue)


@observation("warehouse-catalogue", kinds=("warehouse",))
def observe_catalogue(target, store) -> WarehouseObservation:
    return open_warehouse(target.url)
