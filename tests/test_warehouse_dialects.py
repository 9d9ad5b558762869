"""The checks write their SQL once (DuckDB's) and sqlglot renders it for each engine: every query that the
omop-cdm-5.4, omop-dq and eds-privacy rules send, captured on a flawed reference warehouse (so that the
queries of samples run too), renders for every target engine and parses back in that engine's SQL; the
fixes vigie makes to sqlglot's output are held to what each engine runs."""
import sqlite3

import pytest
import sqlglot
from vigie.fixtures.warehouse import build_reference

from vigie.errors import ObservationError
from vigie.warehouse import dq, privacy, schema
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.dialect import TARGETS, Dialect, RenderError, render
from vigie.warehouse.measures import measures_of

FLAWS = ["nir-in-clear", "emails-in-notes", "phones-in-notes", "addresses-in-notes", "names-in-notes",
         "null-required", "broken-fk", "small-cells", "implausible-dates"]
RULES = [schema.tables_present, schema.fields_present, schema.types_compatible, schema.required_filled,
         schema.keys_unique, schema.foreign_keys_resolve]


def every_query(url) -> list[str]:
    """The SQL of every warehouse rule of the three profiles, as the checks wrote it (DuckDB runs it as is)."""
    w = open_warehouse(url)
    sent = []
    w.session.listeners.append(lambda record: sent.append(record["sql"]))
    try:
        m = measures_of(w.session, w.catalogue)
        for rule in RULES:
            rule(m, {})
        dq.run_checks(m)
        for kind in privacy.KINDS:
            privacy.identifiers(m, {"kind": kind})
        privacy.cells(m, {"k": 5}, "k")
        privacy.cells(m, {"threshold": 1000}, "threshold")   # a floor every cell misses: its sample query runs
        privacy.audit_records(m, {"wait_s": 0})
    finally:
        w.close()
    return sent


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dialects")
    flawed = build_reference(f"duckdb:///{folder / 'flawed.duckdb'}", persons=60, seed=5, flaws=FLAWS)
    found = list(dict.fromkeys(every_query(flawed)))
    assert len(found) > 60
    return found


@pytest.mark.parametrize("engine", TARGETS)
def test_every_check_renders_and_parses_back(queries, engine):
    for sql in queries:
        out = render(sql, engine)
        assert sqlglot.parse_one(out, read=engine) is not None, out
    if engine == "duckdb":   # the source dialect runs as written: DuckDB's results cannot move
        assert all(render(q, "duckdb") == q for q in queries)


def test_the_dq_checks_regex_dates_and_make_date_are_rendered(queries):
    joined = "\n".join(queries)
    assert "date_add(" in joined and "make_date(" in joined and "regexp_matches(" in joined
    pg = "\n".join(render(q, "postgresql") for q in queries)
    assert "MAKE_DATE(" in pg and "INTERVAL '60 DAY'" in pg and " ~ " in pg and "SUBSTRING(" in pg
    spark = "\n".join(render(q, "spark") for q in queries)
    assert "DATE_ADD(" in spark and "MAKE_DATE(" in spark and " RLIKE " in spark and "INTERVAL" not in spark
    tsql = "\n".join(render(q, "mssql") for q in queries)
    assert "DATEADD(DAY" in tsql and "DATEFROMPARTS(" in tsql and "LIMIT" not in tsql


d = Dialect()


def test_fixes_to_sqlglot_output():
    assert render(f"SELECT {d.make_date('y', None, None)}", "postgresql").startswith("SELECT MAKE_DATE(")
    # Snowflake's REGEXP_LIKE matches the whole value; the checks look for a match anywhere
    assert render(f"SELECT {d.regex_match('x', 'a', True)}", "snowflake") == \
        "SELECT REGEXP_INSTR(x, 'a', 1, 1, 0, 'i') > 0"
    # Spark reads backslashes in literals as escapes: sqlglot doubles them
    assert render("SELECT " + d.regex_match("x", "av[.]|av\\.", False), "spark") == \
        "SELECT x RLIKE 'av[.]|av\\\\.'"
    # engines without a flags argument read the embedded flag
    assert "'(?i)ab'" in render(f"SELECT {d.regex_match('x', 'ab', True)}", "bigquery")


def test_sqlite_renderings_run_in_sqlite():
    """SQLite lacks EXTRACT, make_date, named VALUES columns and date arithmetic by INTERVAL: the rendered
    forms give the values DuckDB gives."""
    con = sqlite3.connect(":memory:")
    con.create_function("regexp", 2, lambda p, v: v is not None and __import__("re").search(p, v) is not None)
    sql = (f"SELECT {d.add_days(d.date_literal('20200110'), -7)}, {d.make_date('1990', '2', None)}, "
           f"{d.current_year()} >= 2024, {d.regex_match(d.literal('Jean DUPONT'), 'dupont', True)}, "
           "(SELECT SUM(a.u) FROM (VALUES (1, 2), (3, -1)) AS a(c, u) WHERE a.c > 0)")
    assert con.execute(render(sql, "sqlite")).fetchone() == ("2020-01-03", "1990-02-01", 1, 1, 1)


def test_a_query_an_engine_cannot_express_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(RenderError, match="tsql"):
        render("SELECT a FROM t ORDER BY 1 NULLS LAST", "mssql")
    path = tmp_path / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (a INTEGER)")
    w = open_warehouse(f"sqlite:///{path}")
    try:
        with pytest.raises(ObservationError, match="cannot write this query"):
            w.session.rows("SELECT a FROM t WHERE a = ANY(SELECT * FROM t) QUALIFY ")
    finally:
        w.close()
