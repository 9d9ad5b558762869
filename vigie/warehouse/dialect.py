"""What differs between SQL engines, in one place: quoting, regular expressions, dates, types, read-only
sessions, privileges. Every check builds its SQL through a Dialect and nothing else knows an engine's name."""
from __future__ import annotations

import re

FAMILIES = ("integer", "float", "text", "date", "datetime")


def cdm_family(cdm_type: str) -> str:
    """The family of a CDM specification type (integer, float, varchar(n), date, datetime)."""
    t = cdm_type.lower()
    if t.startswith("varchar"):
        return "text"
    return {"integer": "integer", "bigint": "integer", "float": "float", "date": "date",
            "datetime": "datetime"}.get(t, t)


def db_family(db_type: str) -> str:
    """The family of a type as the engine's catalogue names it."""
    t = db_type.upper()
    if re.match(r"(BIG|SMALL|TINY|HUGE|U)?INT|INT[248]|INTEGER|SERIAL|BIGSERIAL", t):
        return "integer"
    if re.match(r"(NUMERIC|DECIMAL)\s*\(\s*\d+\s*,\s*0\s*\)", t):
        return "integer"
    if re.match(r"DOUBLE|FLOAT|REAL|NUMERIC|DECIMAL", t):
        return "float"
    if re.match(r"(CHAR|VARCHAR|CHARACTER|TEXT|STRING|NVARCHAR|NCHAR|CLOB)", t):
        return "text"
    if t.startswith(("TIMESTAMP", "DATETIME")):
        return "datetime"
    if t == "DATE":
        return "date"
    return t.lower()


# which stored families can hold each specified family without loss
COMPATIBLE = {"integer": {"integer"}, "float": {"float"}, "text": {"text"},
              "date": {"date", "datetime"}, "datetime": {"datetime"}}


def compatible(cdm_type: str, db_type: str) -> bool:
    return db_family(db_type) in COMPATIBLE.get(cdm_family(cdm_type), {cdm_family(cdm_type)})


class Dialect:
    """ANSI SQL; subclasses override what their engine spells differently."""

    name = "generic"
    has_roles = False
    integer_type = "INTEGER"
    float_type = "DOUBLE PRECISION"
    text_type = "TEXT"
    datetime_type = "TIMESTAMP"

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal(self, value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    def qualified(self, schema: str | None, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def regex_match(self, expr: str, pattern: str, icase: bool = False) -> str:
        raise NotImplementedError

    def regex_extract(self, expr: str, pattern: str) -> str:
        """The first capturing group of the first match (the pattern has exactly one)."""
        raise NotImplementedError

    def date_literal(self, yyyymmdd: str) -> str:
        return f"DATE '{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}'"

    def add_days(self, expr: str, days: int) -> str:
        sign = "+" if days >= 0 else "-"
        return f"({expr} {sign} INTERVAL '{abs(days)} days')"

    def today_plus(self, days: int) -> str:
        return self.add_days("CURRENT_DATE", days)

    def as_date(self, expr: str) -> str:
        return f"CAST({expr} AS DATE)"

    def make_date(self, year: str, month: str | None, day: str | None) -> str:
        parts = [year, f"COALESCE({month}, 1)" if month else "1", f"COALESCE({day}, 1)" if day else "1"]
        return "make_date(" + ", ".join(f"CAST({p} AS INTEGER)" for p in parts) + ")"

    def current_year(self) -> str:
        return "EXTRACT(YEAR FROM CURRENT_DATE)"

    def ddl_type(self, cdm_type: str) -> str:
        t = cdm_type.lower()
        family = cdm_family(t)
        if family == "text":
            return self.text_type if "max" in t else t.upper()
        return {"integer": self.integer_type, "float": self.float_type, "date": "DATE",
                "datetime": self.datetime_type}[family]

    def columns_sql(self, schema: str | None) -> str:
        where = f"table_schema = {self.literal(schema)}" if schema else self.default_schema_filter()
        return ("SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE {where} ORDER BY table_name, ordinal_position")

    def default_schema_filter(self) -> str:
        return "table_schema = current_schema()"


class DuckDBDialect(Dialect):
    name = "duckdb"
    float_type = "DOUBLE"
    text_type = "VARCHAR"

    def regex_match(self, expr, pattern, icase=False):
        return f"regexp_matches({expr}, {self.literal(pattern)}{', ' + repr('i') if icase else ''})"

    def regex_extract(self, expr, pattern):
        return f"regexp_extract({expr}, {self.literal(pattern)}, 1)"

    def default_schema_filter(self):
        return "table_schema = current_schema() AND table_catalog = current_database()"


class PostgresDialect(Dialect):
    name = "postgresql"
    has_roles = True

    def text(self, expr):
        return f"CAST({expr} AS TEXT)"

    def regex_match(self, expr, pattern, icase=False):
        return f"({expr} {'~*' if icase else '~'} {self.literal(pattern)})"

    def regex_extract(self, expr, pattern):
        return f"substring({expr} from {self.literal(pattern)})"


class SQLiteDialect(Dialect):
    """SQLite has no regular expressions of its own: the session registers REGEXP functions."""
    name = "sqlite"

    def text(self, expr):
        return f"CAST({expr} AS TEXT)"

    def regex_match(self, expr, pattern, icase=False):
        return f"vigie_regexp({self.literal(pattern)}, {expr}, {1 if icase else 0})"

    def regex_extract(self, expr, pattern):
        return f"vigie_regexp_extract({self.literal(pattern)}, {expr})"

    def add_days(self, expr, days):
        return f"date({expr}, '{days:+d} days')"

    def today_plus(self, days):
        return f"date('now', '{days:+d} days')"

    def date_literal(self, yyyymmdd):
        return f"'{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}'"

    def as_date(self, expr):
        return f"date({expr})"

    def make_date(self, year, month, day):
        return (f"date(printf('%04d-%02d-%02d', {year}, {f'COALESCE({month}, 1)' if month else 1}, "
                f"{f'COALESCE({day}, 1)' if day else 1}))")

    def current_year(self):
        return "CAST(strftime('%Y', 'now') AS INTEGER)"


def dialect_for(backend: str) -> Dialect:
    return {"duckdb": DuckDBDialect, "postgresql": PostgresDialect, "sqlite": SQLiteDialect}.get(backend, Dialect)()
