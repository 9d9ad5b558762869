"""What differs between SQL engines, in one place. Every check writes its SQL once, in DuckDB's SQL (the
source dialect), through the small builders of `Dialect` (quote, literal, regex_match, add_days, make_date...);
`render` translates it for the warehouse's engine with sqlglot, a maintained transpiler, when the query is
sent. The few constructs sqlglot leaves untranslated or translates wrongly for an engine are fixed on the
parsed tree here (`_FIXES`), so that nothing else knows an engine's name."""
from __future__ import annotations

import logging
import re
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

FAMILIES = ("integer", "float", "text", "date", "datetime")
SOURCE = "duckdb"
# vigie's engine names (SQLAlchemy backends, URL schemes) → sqlglot's dialects
ENGINES = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite",
           "spark": "spark", "databricks": "databricks", "trino": "trino", "bigquery": "bigquery",
           "snowflake": "snowflake", "mssql": "tsql", "tsql": "tsql", "mysql": "mysql", "oracle": "oracle",
           "redshift": "redshift", "hive": "hive", "presto": "presto", "athena": "athena"}
# the engines every check's SQL is proven to render for (tests/test_warehouse_dialects.py)
TARGETS = ("duckdb", "postgres", "sqlite", "spark", "databricks", "trino", "bigquery", "snowflake", "tsql")

logging.getLogger("sqlglot").setLevel(logging.ERROR)   # "falling back to a Command" is not the user's business


class RenderError(ValueError):
    """A query that cannot be written in the engine's SQL (a construct the engine lacks)."""


def engine_of(backend: str) -> str:
    """sqlglot's dialect for a vigie engine name; an engine sqlglot does not know gets its generic SQL."""
    name = ENGINES.get(backend.lower(), backend.lower())
    try:
        sqlglot.Dialect.get_or_raise(name)
        return name
    except (ValueError, SqlglotError):
        return ""


@lru_cache(maxsize=512)   # a run sends each query once; the cache serves repeated samples
def render(sql: str, engine: str) -> str:
    """The query `sql` (DuckDB's SQL, as the checks write it) in the SQL of `engine` (a vigie engine name such as
    postgresql, or a sqlglot dialect such as tsql). DuckDB's is the source itself. RenderError when the engine
    cannot express it."""
    target = engine_of(engine)
    if target == SOURCE:
        return sql
    try:
        trees = sqlglot.parse(sql, read=SOURCE)
        out = [_fix(tree, target).sql(dialect=target, unsupported_level=ErrorLevel.RAISE) for tree in trees if tree]
    except SqlglotError as exc:
        raise RenderError(f"cannot write this query in {target or 'generic'} SQL: "
                          f"{str(exc).splitlines()[0][:200]}") from None
    return ";\n".join(out)


# fixes on the parsed tree, per target -------------------------------------------------------------

def _num(node):
    """An INTERVAL's quantity as a number ('1' → 1), for the engines that add days by a function."""
    if isinstance(node, exp.Literal) and node.is_string and re.fullmatch(r"-?\d+", node.this):
        return exp.Literal.number(int(node.this))
    return node


def _days(node, target):
    # date_add(x, INTERVAL n DAY) arrives with an INTERVAL or a bare number: one form for every generator
    if isinstance(node, exp.DateAdd) and isinstance(node.expression, exp.Interval):
        iv = node.expression
        return exp.DateAdd(this=node.this, expression=_num(iv.this), unit=exp.Var(this=iv.unit.name if iv.unit else "DAY"))
    if isinstance(node, exp.DateAdd) and isinstance(node.expression, exp.Literal):
        return exp.DateAdd(this=node.this, expression=_num(node.expression), unit=node.args.get("unit"))
    return node


def _icase(node, target):
    """regexp_matches(x, p, 'i'): most engines read an embedded (?i) (RE2, Java, Python, PostgreSQL's AREs) and
    drop a flags argument they do not have; Snowflake reads the flag."""
    if isinstance(node, exp.RegexpLike) and target not in ("postgres", "snowflake", "duckdb"):
        flag = node.args.get("flag")
        if flag is not None and "i" in flag.name and isinstance(node.expression, exp.Literal):
            return exp.RegexpLike(this=node.this, expression=exp.Literal.string("(?i)" + node.expression.this))
    return node


def _snowflake_search(node, target):
    """Snowflake's REGEXP_LIKE matches the whole value; the checks look for a match anywhere in it."""
    if isinstance(node, exp.RegexpLike) and target == "snowflake":
        args = [node.this, node.expression, exp.Literal.number(1), exp.Literal.number(1), exp.Literal.number(0)]
        if node.args.get("flag") is not None:
            args.append(node.args["flag"])
        return exp.GT(this=exp.Anonymous(this="REGEXP_INSTR", expressions=args), expression=exp.Literal.number(0))
    return node


def _extract(node, target):
    """regexp_extract(x, p, 1): the first group of the first match."""
    if not isinstance(node, exp.RegexpExtract):
        return node
    if target == "postgres":   # substring(x from p) returns the first parenthesised group
        return exp.Anonymous(this="SUBSTRING", expressions=[
            exp.Var(this=f"{node.this.sql('postgres')} FROM {node.expression.sql('postgres')}")])
    if target == "tsql":       # SQL Server 2025's REGEXP_SUBSTR(x, p, start, occurrence, flags, group)
        return exp.Anonymous(this="REGEXP_SUBSTR", expressions=[
            node.this, node.expression, exp.Literal.number(1), exp.Literal.number(1), exp.Literal.string(""),
            exp.Literal.number(1)])
    if target == "sqlite":     # a function the session registers (sqlite3 has no regular expressions)
        return exp.Anonymous(this="regexp_extract", expressions=[node.this, node.expression, exp.Literal.number(1)])
    return node


def _make_date(node, target):
    """make_date(y, m, d): PostgreSQL spells it make_date; SQLite and Trino build the ISO text."""
    if not isinstance(node, exp.DateFromParts):
        return node
    parts = [node.args.get("year"), node.args.get("month"), node.args.get("day")]
    if target == "postgres":
        return exp.Anonymous(this="make_date", expressions=parts)
    if target in ("sqlite", "trino"):
        fmt = exp.Literal.string("%04d-%02d-%02d")
        text = exp.Anonymous(this="printf" if target == "sqlite" else "format", expressions=[fmt, *parts])
        return exp.Anonymous(this="date", expressions=[text])
    return node


def _sqlite_year(node, target):
    """SQLite has no EXTRACT: the year of a date is strftime('%Y', d)."""
    if target == "sqlite" and isinstance(node, (exp.Extract, exp.Year)):
        unit = node.this.name.upper() if isinstance(node, exp.Extract) else "YEAR"
        if unit == "YEAR":
            value = node.expression if isinstance(node, exp.Extract) else node.this
            if isinstance(value, exp.CurrentDate):
                value = exp.Literal.string("now")
            return exp.Cast(this=exp.Anonymous(this="strftime", expressions=[exp.Literal.string("%Y"), value]),
                            to=exp.DataType.build("INTEGER"))
    return node


def _values_as_union(node, target):
    """(VALUES (..), (..)) AS a(c, u): SQLite names no column of a VALUES list; a UNION ALL of SELECTs does."""
    if target != "sqlite" or not isinstance(node, exp.Values):
        return node
    alias = node.args.get("alias")
    columns = [c.name for c in alias.columns] if alias is not None else []
    if not columns:
        return node
    selects = [exp.select(*[exp.alias_(v.copy(), c) for v, c in zip(row.expressions, columns)])
               for row in node.expressions]
    union = selects[0]
    for s in selects[1:]:
        union = exp.union(union, s, distinct=False)
    return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(alias.name)))


_FIXES = (_days, _icase, _snowflake_search, _extract, _make_date, _sqlite_year, _values_as_union)


def _fix(tree, target):
    for fix in _FIXES:
        tree = tree.transform(lambda node, f=fix: f(node, target), copy=False)
    return tree


# types ---------------------------------------------------------------------------------------------

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
    """The builders the checks write their SQL with. They write DuckDB's SQL (the source dialect, see `render`);
    what an engine spells otherwise is rendered when the query is sent (Session.rows)."""

    name = "generic"
    engine = ""                      # sqlglot's dialect of the engine ("" is sqlglot's generic SQL)
    has_roles = False
    integer_type = "INTEGER"
    float_type = "DOUBLE PRECISION"
    text_type = "TEXT"
    datetime_type = "TIMESTAMP"

    def render(self, sql: str) -> str:
        return render(sql, self.engine)

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal(self, value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    def qualified(self, schema: str | None, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def regex_match(self, expr: str, pattern: str, icase: bool = False) -> str:
        flags = ", 'i'" if icase else ""
        return f"regexp_matches({expr}, {self.literal(pattern)}{flags})"

    def regex_extract(self, expr: str, pattern: str) -> str:
        """The first capturing group of the first match (the pattern has exactly one)."""
        return f"regexp_extract({expr}, {self.literal(pattern)}, 1)"

    def date_literal(self, yyyymmdd: str) -> str:
        return f"DATE '{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}'"

    def add_days(self, expr: str, days: int) -> str:
        return f"date_add({expr}, INTERVAL ({int(days)}) DAY)"

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
    name = engine = "duckdb"
    float_type = "DOUBLE"
    text_type = "VARCHAR"

    def default_schema_filter(self):
        return "table_schema = current_schema() AND table_catalog = current_database()"


class PostgresDialect(Dialect):
    name, engine = "postgresql", "postgres"
    has_roles = True


class SQLiteDialect(Dialect):
    """SQLite has no regular expressions of its own: the session registers regexp and regexp_extract."""
    name = engine = "sqlite"


class SparkDialect(Dialect):
    """Spark SQL (local sessions, Spark Connect, Databricks): the catalogue is read from Spark's own."""
    name = engine = "spark"
    float_type = "DOUBLE"
    text_type = "STRING"


def dialect_for(backend: str) -> Dialect:
    known = {"duckdb": DuckDBDialect, "postgresql": PostgresDialect, "sqlite": SQLiteDialect,
             "spark": SparkDialect}
    if backend in known:
        return known[backend]()
    d = Dialect()
    d.name, d.engine = backend, engine_of(backend)
    return d
