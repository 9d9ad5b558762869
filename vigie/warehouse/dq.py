"""The OHDSI DataQualityDashboard's active check types, run as SQL in the warehouse.

The catalogue of checks and default thresholds (`data/dqd54.csv`) holds the figures of DataQualityDashboard
2.8.4's threshold files for CDM 5.4: which table, field or concept each check type applies to, its
threshold (the percentage of violating rows allowed) and its argument (a bound, a domain, a field...).
The three check types that 2.6.0 superseded (plausibleTemporalAfter, plausibleDuringLife, plausibleGender)
are run, exported and judged (OMOP-DQ-25..27, SHOULD) as 2.8.4 still runs them by default. Check ids follow
DataQualityDashboard's rule (level, name, table, field, concept, unit, lower case, joined by "_"), so that
results can be compared across tools.

A check fails when 100 x violating / denominator rows exceeds its threshold. A check is not applicable only
on DataQualityDashboard's own grounds, each observed: its table or field is absent (and optional in the CDM:
the absence of a required one leaves the check unverified; cdmTable and cdmField report either once), its
table is empty, its field holds no value, or its concept does not occur. Each result keeps its ground
(`missing`, `empty`, `rows`): a table without rows is no evidence of quality, so a requirement whose checks
examined no row is not verified (conformance/test_omop_dq.py).
A check vigie cannot evaluate (a table it needs besides its own is missing, a check type it does not
implement) is an error: not verified, never not applicable.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from ..errors import ObservationError
from .cdm import DATA, VOCABULARY_TABLES, cdm54
from .measures import _sum
from .session import StatementTimeout

# name → (level, Kahn category, subcategory, context, DQD severity)
TYPES = {
    "cdmTable": ("TABLE", "Conformance", "Relational", "Verification", "fatal"),
    "measurePersonCompleteness": ("TABLE", "Completeness", "", "Validation", "convention"),
    "measureConditionEraCompleteness": ("TABLE", "Completeness", "", "Validation", "convention"),
    "measureObservationPeriodOverlap": ("TABLE", "Plausibility", "Temporal", "Verification", "fatal"),
    "cdmField": ("FIELD", "Conformance", "Relational", "Verification", "fatal"),
    "isRequired": ("FIELD", "Conformance", "Relational", "Validation", "fatal"),
    "cdmDatatype": ("FIELD", "Conformance", "Value", "Verification", "fatal"),
    "isPrimaryKey": ("FIELD", "Conformance", "Relational", "Verification", "fatal"),
    "isForeignKey": ("FIELD", "Conformance", "Relational", "Verification", "fatal"),
    "fkDomain": ("FIELD", "Conformance", "Value", "Verification", "convention"),
    "fkClass": ("FIELD", "Conformance", "Computational", "Verification", "convention"),
    "isStandardValidConcept": ("FIELD", "Conformance", "Value", "Verification", "convention"),
    "measureValueCompleteness": ("FIELD", "Completeness", "", "Verification", "characterization"),
    "standardConceptRecordCompleteness": ("FIELD", "Completeness", "", "Verification", "convention"),
    "sourceConceptRecordCompleteness": ("FIELD", "Completeness", "", "Verification", "convention"),
    "sourceValueCompleteness": ("FIELD", "Completeness", "", "Verification", "convention"),
    "plausibleValueLow": ("FIELD", "Plausibility", "Atemporal", "Verification", "characterization"),
    "plausibleValueHigh": ("FIELD", "Plausibility", "Atemporal", "Verification", "characterization"),
    "plausibleStartBeforeEnd": ("FIELD", "Plausibility", "Temporal", "Verification", "characterization"),
    "plausibleAfterBirth": ("FIELD", "Plausibility", "Temporal", "Verification", "characterization"),
    "plausibleBeforeDeath": ("FIELD", "Plausibility", "Temporal", "Verification", "characterization"),
    "withinVisitDates": ("FIELD", "Plausibility", "", "Verification", "characterization"),
    "plausibleGenderUseDescendants": ("CONCEPT", "Plausibility", "Atemporal", "Validation", "characterization"),
    "plausibleUnitConceptIds": ("CONCEPT", "Plausibility", "Atemporal", "Verification", "characterization"),
}
# the three types that DataQualityDashboard 2.6.0 superseded (by plausibleAfterBirth, plausibleBeforeDeath and
# plausibleGenderUseDescendants) and 2.8.4 still runs by default: run and exported as it does, so that the export
# holds the same checks and Overview, and judged (a failure DataQualityDashboard reports is not hidden)
SUPERSEDED = {
    "plausibleTemporalAfter": ("FIELD", "Plausibility", "Temporal", "Verification", "characterization"),
    "plausibleDuringLife": ("FIELD", "Plausibility", "Temporal", "Verification", "characterization"),
    "plausibleGender": ("CONCEPT", "Plausibility", "Atemporal", "Validation", "characterization"),
}
# what each type counts, in vigie's words (the export's checkDescription)
DESCRIPTIONS = {
    "cdmTable": "table {table} exists",
    "measurePersonCompleteness": "persons with no record in {table}",
    "measureConditionEraCompleteness": "persons with conditions but no condition era",
    "measureObservationPeriodOverlap": "persons whose observation periods overlap or touch",
    "cdmField": "field {table}.{field} exists",
    "isRequired": "records with no value in the required field {table}.{field}",
    "cdmDatatype": "values of {table}.{field} that are not integers",
    "isPrimaryKey": "records repeating a value of the key {table}.{field}",
    "isForeignKey": "values of {table}.{field} absent from the table they point to",
    "fkDomain": "concepts in {table}.{field} outside the {arg} domain",
    "fkClass": "concepts in {table}.{field} outside the {arg} class",
    "isStandardValidConcept": "concepts in {table}.{field} that are not standard and valid",
    "measureValueCompleteness": "records with no value in {table}.{field}",
    "standardConceptRecordCompleteness": "records mapped to concept 0 in {table}.{field}",
    "sourceConceptRecordCompleteness": "records with source concept 0 in {table}.{field}",
    "sourceValueCompleteness": "distinct source values of {table}.{field} mapped to concept 0",
    "plausibleValueLow": "values of {table}.{field} below {arg}",
    "plausibleValueHigh": "values of {table}.{field} above {arg}",
    "plausibleStartBeforeEnd": "records of {table} where {field} is after {arg}",
    "plausibleAfterBirth": "records of {table} where {field} is before the person's birth",
    "plausibleBeforeDeath": "records of {table} where {field} is more than 60 days after the person's death",
    "withinVisitDates": "records of {table} where {field} is more than a week outside their visit",
    "plausibleGenderUseDescendants": "records of descendants of {concept} for persons not of gender {arg}",
    "plausibleUnitConceptIds": "records of concept {concept} with a unit outside {arg}",
    "plausibleTemporalAfter": "records of {table} where {field} is before {arg}",
    "plausibleDuringLife": "records of persons who died where {table}.{field} is more than 60 days after death",
    "plausibleGender": "records of concept {concept} for persons not of gender {arg}",
}
GENDERS = {"male": 8507, "female": 8532}
DQD_VERSION = "2.8.4"


@dataclass(frozen=True)
class DqCheck:
    level: str
    name: str
    table: str
    field: str = ""
    concept_id: str = ""
    unit_concept_id: str = ""
    threshold: float = 0.0
    arg: str = ""

    @property
    def id(self) -> str:
        parts = [self.level, self.name, self.table, self.field, self.concept_id, self.unit_concept_id]
        return "_".join(p.replace(" ", "") for p in parts if p.replace(" ", "")).lower()

    def describe(self) -> str:
        return DESCRIPTIONS[self.name].format(table=self.table, field=self.field, arg=self.arg,
                                              concept=self.concept_id)


@dataclass
class DqResult:
    check: DqCheck
    status: str                      # passed, failed, not_applicable, error
    violated: int = 0
    denominator: int = 0
    reason: str = ""
    seconds: float = 0.0
    ground: str = ""                 # why not applicable (one of GROUNDS)
    sql: list = field(default_factory=list)

    @property
    def pct(self) -> float:
        return self.violated / self.denominator if self.denominator else 0.0


@cache
def _all_checks() -> tuple:
    with open(DATA / "dqd54.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return tuple(DqCheck(r["level"], r["check"], r["table"], r["field"], r["concept_id"], r["unit_concept_id"],
                         float(r["threshold"] or 0), r["arg"]) for r in rows if r["check"] in TYPES or r["check"] in SUPERSEDED)


def catalogue(exclude=VOCABULARY_TABLES) -> list[DqCheck]:
    left_out = set(exclude)
    return [c for c in _all_checks() if c.table not in left_out]


# the grounds of a not applicable result: its table or field is missing (and optional), a table it counts has
# no rows, or rows were examined and none concerned it (a field without value, a concept that does not occur)
GROUNDS = ("missing", "empty", "rows")


class NotApplicable(Exception):
    """DataQualityDashboard's notApplicable, on an observed reason and its ground (one of GROUNDS)."""

    def __init__(self, reason: str, ground: str):
        super().__init__(reason)
        self.ground = ground


# bounds ----------------------------------------------------------------------------------------

def bound(d, arg: str) -> str:
    """DataQualityDashboard's bounds are SQL Server expressions: translate the three forms it uses."""
    a = arg.strip()
    if a.startswith("'") and a.endswith("'"):
        return d.date_literal(a.strip("'"))
    if a.upper().replace(" ", "") == "DATEADD(DD,1,GETDATE())":
        return d.today_plus(1)
    if a.upper().replace(" ", "") == "YEAR(GETDATE())+1":
        return f"({d.current_year()} + 1)"
    float(a)  # a number, or ValueError
    return a


# scan aggregates --------------------------------------------------------------------------------

def _source_field(m, table: str, field: str) -> str | None:
    src = field.replace("_concept_id", "_source_value")
    return src if src != field and m.present(table, src) else None


def _scan_exprs(m, c: DqCheck) -> dict:
    """{key: expression} of the table-scan aggregates a check needs, or {} if it needs none."""
    t, f = c.table, c.field
    col = m.col(t, f)
    key = ("dq", c.id)
    if c.name in ("isRequired", "measureValueCompleteness", "isPrimaryKey"):
        return {}
    if c.name == "cdmDatatype":
        fam = m.family(t, f)
        if fam == "integer":
            # no value of an integer column is a non-integer; still an aggregate (one row), as the scan asks:
            # measured alone after a failed one-pass scan, a bare constant returned one row per row of the table
            return {key: "COUNT(*) * 0"}
        if fam == "float":
            return {key: _sum(f"{col} IS NOT NULL AND {col} <> FLOOR({col})")}
        if fam == "text":
            return {key: _sum(f"{col} IS NOT NULL AND NOT {m.d.regex_match(col, '^-?[0-9]+$')}")}
        return {key: f"COUNT({col})"}
    if c.name in ("standardConceptRecordCompleteness", "sourceConceptRecordCompleteness"):
        required = cdm54()[t].field(f).required
        src = _source_field(m, t, f)
        if required or not src:
            return {key: _sum(f"{col} = 0"), ("dqd", c.id): f"COUNT({col})"}
        s = m.col(t, src)
        return {key: _sum(f"{col} = 0 OR ({col} IS NULL AND {s} IS NOT NULL)"),
                ("dqd", c.id): _sum(f"{col} IS NOT NULL OR {s} IS NOT NULL")}
    if c.name == "sourceValueCompleteness":
        concept = c.arg
        _need(m, (t, concept))
        k = m.col(t, concept)
        return {key: f"COUNT(DISTINCT CASE WHEN {k} = 0 THEN {col} END)", ("dqd", c.id): f"COUNT(DISTINCT {col})"}
    if c.name in ("plausibleValueLow", "plausibleValueHigh"):
        op = "<" if c.name == "plausibleValueLow" else ">"
        b = bound(m.d, c.arg)
        lhs = m.d.as_date(col) if "DATE" in b.upper() and m.family(t, f) == "datetime" else col
        return {key: _sum(f"{lhs} {op} {b}")}
    if c.name == "plausibleTemporalAfter" and c.arg.split(".")[0] == t:
        before = c.arg.split(".")[1]
        _need(m, (t, before))
        return {key: _sum(f"{m.d.as_date(m.col(t, before))} > {m.d.as_date(col)}")}
    if c.name == "plausibleStartBeforeEnd":
        end = c.arg
        _need(m, (t, end))
        # DataQualityDashboard's denominator: the records with both dates
        both = f"{col} IS NOT NULL AND {m.col(t, end)} IS NOT NULL"
        return {key: _sum(f"{both} AND {m.d.as_date(col)} > {m.d.as_date(m.col(t, end))}"), ("dqd", c.id): _sum(both)}
    return {}


def want_scans(m) -> None:
    for c in catalogue(()):
        if c.level != "FIELD" or not m.present(c.table, c.field):
            continue
        try:
            for key, expr in _scan_exprs(m, c).items():
                m.want(c.table, key, expr)
        except (NotApplicable, ObservationError, ValueError):
            pass   # the check itself reports it


# evaluation -------------------------------------------------------------------------------------

# the table whose absence makes a check not applicable, when it is not the check's own (DataQualityDashboard)
HOME = {"measureConditionEraCompleteness": "condition_occurrence"}
# the tables whose emptiness makes a check not applicable, when not its own: measurePersonCompleteness counts
# persons (its own table empty is its violation), measureConditionEraCompleteness the persons with conditions
# (condition_era empty is its violation)
COUNTED = {"measurePersonCompleteness": ("person",), "measureConditionEraCompleteness": ("condition_occurrence",)}
# the tables a check joins to count its rows: when one is empty there is nothing to count
JOINED = {"plausibleAfterBirth": ("person",), "plausibleBeforeDeath": ("death",),
          "withinVisitDates": ("visit_occurrence",), "plausibleGenderUseDescendants": ("person",),
          "plausibleDuringLife": ("death",), "plausibleGender": ("person",)}
# the checks DataQualityDashboard still runs on a field that holds no value
ON_EMPTY_FIELDS = ("isRequired", "measureValueCompleteness")


def _absent(table: str, field: str | None = None) -> None:
    """A table or field of the check is absent: not applicable if the CDM makes it optional, else the check
    is not verified (cdmTable or cdmField fails on the absence)."""
    spec = cdm54()[table]
    required = spec.field(field).required if field else spec.required
    what, reporter = (f"field {table}.{field}", "cdmField") if field else (f"table {table}", "cdmTable")
    if required:
        raise ObservationError(f"{what} is missing, although the CDM requires it (reported by {reporter})")
    raise NotApplicable(f"{what} is missing (optional in the CDM; reported by {reporter})", "missing")


def _applies(m, c: DqCheck) -> None:
    """DataQualityDashboard's grounds for not applicable, in its order: the table or field missing, a table
    empty, the field holding no value. Each is observed; NotApplicable, or ObservationError (see _absent)."""
    t, f = c.table, c.field
    home = HOME.get(c.name, t)
    if not m.present(home):
        _absent(home)
    if c.name == "cdmField":
        return
    if c.level != "TABLE" and not m.present(t, f):
        _absent(t, f)
    tables = COUNTED.get(c.name, (t,)) + JOINED.get(c.name, ())
    empty = [x for x in tables if m.present(x) and m.value(x, "rows") == 0]
    if empty:
        raise NotApplicable(f"empty table: {', '.join(empty)}", "empty")
    if c.level != "TABLE" and c.name not in ON_EMPTY_FIELDS and m.value(t, ("nonnull", f)) == 0:
        raise NotApplicable(f"field {t}.{f} holds no value", "rows")


def _resolved(m, t: str, f: str, what: str) -> dict:
    """The concept pointer's counts, once every value of it was found in the concept table: the attribute of a
    concept that is not there cannot be read (isForeignKey reports such values)."""
    fk = m.foreign_key(t, f)
    if fk["orphans"]:
        raise ObservationError(f"values of {t}.{f} not in the concept table ({fk['orphans']}): their {what} "
                               "cannot be read")
    return fk


def _count(m, c: DqCheck) -> tuple[int, int]:
    """(violating rows, denominator) of one check; NotApplicable, ObservationError or NotImplementedError
    otherwise."""
    t, f, d = c.table, c.field, m.d
    if c.name in ("cdmTable", "cdmField") and m.s.backend != "sqlite":
        m._use(("sql", d.columns_sql(m.s.schema)))   # what the catalogue was read with
    if c.name == "cdmTable":
        return (0 if m.present(t) else 1), 1
    _applies(m, c)
    if c.name == "cdmField":
        return (0 if m.present(t, f) else 1), 1
    if c.name in ("isRequired", "measureValueCompleteness"):
        return m.value(t, "rows") - m.value(t, ("nonnull", f)), m.value(t, "rows")
    if c.name == "isPrimaryKey":
        return m.value(t, ("nonnull", f)) - m.value(t, ("distinct", f)), m.value(t, "rows")
    if c.name in ("isForeignKey", "isStandardValidConcept", "fkDomain", "fkClass") \
            and not cdm54()[t].field(f).fk_table:
        raise NotImplementedError(f"vigie's table of the CDM names no table that {t}.{f} points to "
                                  "(DataQualityDashboard's names one)")
    if c.name == "isForeignKey":
        fk = m.foreign_key(t, f)
        return fk["orphans"], fk["rows"]
    if c.name == "isStandardValidConcept":
        fk = _resolved(m, t, f, "standard status")
        return fk["not_standard"], fk["nonnull"]
    if c.name in ("fkDomain", "fkClass"):
        attribute = "domain_id" if c.name == "fkDomain" else "concept_class_id"
        _resolved(m, t, f, attribute)
        return m.concept_attribute(t, f, attribute, c.arg)
    if c.name == "cdmDatatype":
        return m.value(t, ("dq", c.id)), m.value(t, "rows")
    if c.name in ("standardConceptRecordCompleteness", "sourceConceptRecordCompleteness", "sourceValueCompleteness",
                  "plausibleStartBeforeEnd"):
        _scan_exprs(m, c)  # raises NotApplicable as the scan registration did
        return m.value(t, ("dq", c.id)), m.value(t, ("dqd", c.id))
    if c.name in ("plausibleValueLow", "plausibleValueHigh"):
        _scan_exprs(m, c)
        return m.value(t, ("dq", c.id)), m.value(t, ("nonnull", f))
    if c.name in ("plausibleAfterBirth", "plausibleBeforeDeath", "withinVisitDates"):
        return _temporal(m, c)
    if c.name == "measurePersonCompleteness":
        _need(m, ("person", "person_id"), (t, "person_id"))
        left, right = m.join_key(m.col("person", "person_id", "p"), m.col(t, "person_id", "x"), "person",
                                 "person_id", t, "person_id")
        # NOT EXISTS in WHERE: the planner's hash anti-join, with no aggregation of the table's person ids
        row = m.query(("dq", c.id), f"SELECT (SELECT COUNT(*) FROM {m.rel('person')} p WHERE NOT EXISTS "
                                    f"(SELECT 1 FROM {m.rel(t)} x WHERE {right} = {left})), "
                                    f"(SELECT COUNT(*) FROM {m.rel('person')} p)")
        return row[0] or 0, row[1]
    if c.name == "measureConditionEraCompleteness":
        _need(m, ("condition_occurrence", "condition_concept_id"), ("condition_era", "person_id"))
        co = m.rel("condition_occurrence")
        pid, cid = m.col("condition_occurrence", "person_id", "o"), m.col("condition_occurrence", "condition_concept_id", "o")
        left, right = m.join_key("q.pid", m.col("condition_era", "person_id", "e"), "condition_occurrence",
                                 "person_id", "condition_era", "person_id")
        persons = f"(SELECT DISTINCT {pid} AS pid FROM {co} o WHERE {cid} <> 0) q"
        row = m.query(("dq", c.id), f"SELECT (SELECT COUNT(*) FROM {persons} WHERE NOT EXISTS (SELECT 1 FROM "
                                    f"{m.rel('condition_era')} e WHERE {right} = {left})), (SELECT COUNT(*) FROM {persons})")
        return row[0] or 0, row[1]
    if c.name == "measureObservationPeriodOverlap":
        _need(m, ("observation_period", "observation_period_start_date"))
        op = m.rel("observation_period")
        a = {k: m.col("observation_period", k, "a") for k in ("person_id", "observation_period_id",
                                                             "observation_period_start_date", "observation_period_end_date")}
        b = {k: m.col("observation_period", k, "b") for k in a}
        # a self-join on the person (a hash join), not a search of the table per period
        touching = (f"{b['person_id']} = {a['person_id']} AND {b['observation_period_id']} <> {a['observation_period_id']} "
                    f"AND {b['observation_period_start_date']} >= {a['observation_period_start_date']} "
                    f"AND {b['observation_period_start_date']} <= {d.add_days(a['observation_period_end_date'], 1)}")
        row = m.query(("dq", c.id), f"SELECT (SELECT COUNT(DISTINCT {a['person_id']}) FROM {op} a JOIN {op} b ON {touching}), "
                                    f"(SELECT COUNT(DISTINCT {a['person_id']}) FROM {op} a)")
        return row[0] or 0, row[1]
    if c.name == "plausibleTemporalAfter":
        other = c.arg.split(".")[0]
        if other == t:
            _scan_exprs(m, c)
            return m.value(t, ("dq", c.id)), m.value(t, "rows")
        if m.present(other) and m.value(other, "rows") == 0:
            raise NotApplicable(f"empty table: {other}", "empty")
        return _temporal(m, c)
    if c.name == "plausibleDuringLife":
        return _temporal(m, c)
    if c.name == "plausibleGender":
        return _gender_of(m, c)
    if c.name == "plausibleUnitConceptIds":
        return _units(m, c)
    if c.name == "plausibleGenderUseDescendants":
        return _gender(m, c)
    raise NotImplementedError(f"vigie does not implement the check type {c.name}")


def _need(m, *pairs) -> None:
    """What a check reads besides its own table and field: without it the check cannot be evaluated (as
    DataQualityDashboard's query would fail)."""
    for t, f in pairs:
        if not m.present(t, f):
            raise ObservationError(f"{t}.{f} is missing: the check cannot be evaluated without it")


def _temporal(m, c: DqCheck) -> tuple[int, int]:
    """Every field of the check's type and table in one join, memoised; a field the engine cannot compare is
    measured on its own."""
    t = c.table
    key = ("dq-temporal", c.name, t)
    if key not in m._queries:
        fields = [k.field for k in catalogue(()) if k.name == c.name and k.table == t and m.present(t, k.field)
                  and k.arg == c.arg]
        try:
            m._queries[key] = _temporal_counts(m, c.name, t, fields)
        except ObservationError as exc:
            m._queries[key] = exc
    found = m._queries[key]
    if isinstance(found, dict) and c.field in found:
        m._use(("sql", m.sql_of.get(key)))
        return found[c.field]
    if isinstance(found, StatementTimeout):   # alone, the field would wait out the limit again
        raise found
    return _temporal_counts(m, c.name, t, [c.field])[c.field]


def _temporal_counts(m, name: str, t: str, fields: list) -> dict:
    """{field: (violating rows, denominator)} of a temporal check type on a table's fields, in one query."""
    d = m.d
    xs = {f: m.col(t, f, "x") for f in fields}
    if name == "withinVisitDates":
        _need(m, (t, "visit_occurrence_id"), ("visit_occurrence", "visit_start_date"))
        v = {k: m.col("visit_occurrence", k, "v") for k in ("visit_occurrence_id", "visit_start_date", "visit_end_date")}
        left, right = m.join_key(m.col(t, "visit_occurrence_id", "x"), v["visit_occurrence_id"], t,
                                 "visit_occurrence_id", "visit_occurrence", "visit_occurrence_id")
        exprs = [(_sum(f"{d.as_date(x)} < {d.add_days(v['visit_start_date'], -7)} OR "
                       f"{d.as_date(x)} > {d.add_days(v['visit_end_date'], 7)}"), "COUNT(*)") for x in xs.values()]
        source = f"{m.rel(t)} x JOIN {m.rel('visit_occurrence')} v ON {left} = {right}"
    elif name == "plausibleDuringLife":
        # DataQualityDashboard's shape: every death record of the person (no MIN), the denominator the records of
        # persons with one
        _need(m, (t, "person_id"), ("death", "death_date"), ("death", "person_id"))
        pid = m.col(t, "person_id", "x")
        left, right = m.join_key(pid, m.col("death", "person_id", "de"), t, "person_id", "death", "person_id")
        late = d.add_days(d.as_date(m.col("death", "death_date", "de")), 60)
        died = m.anti_join("dn", pid, t, "person_id", "death", "person_id")
        sql = (f"SELECT {', '.join(_sum(f'{d.as_date(x)} > {late}') for x in xs.values())}, "
               f"(SELECT {_sum('dn.k IS NOT NULL')} FROM {m.rel(t)} x {died}) "
               f"FROM {m.rel(t)} x JOIN {m.rel('death')} de ON {left} = {right}")
        row = m.query(("dq-temporal", name, t, tuple(fields)), sql)
        m.sql_of[("dq-temporal", name, t)] = sql
        return {f: (row[i] or 0, row[-1] or 0) for i, f in enumerate(fields)}
    elif name == "plausibleTemporalAfter":   # after the person's birth (the same-table ones are in the scan)
        _need(m, (t, "person_id"), ("person", "year_of_birth"), ("person", "birth_datetime"))
        p = {k: m.col("person", k, "p") for k in ("person_id", "year_of_birth", "birth_datetime")}
        born = f"COALESCE({d.as_date(p['birth_datetime'])}, {d.make_date(p['year_of_birth'], '6', '1')})"
        left, right = m.join_key(m.col(t, "person_id", "x"), p["person_id"], t, "person_id", "person", "person_id")
        sql = (f"SELECT {', '.join(_sum(f'{born} > {d.as_date(x)}') for x in xs.values())} "
               f"FROM {m.rel(t)} x JOIN {m.rel('person')} p ON {left} = {right}")
        row = m.query(("dq-temporal", name, t, tuple(fields)), sql)
        m.sql_of[("dq-temporal", name, t)] = sql
        m._use(("scan", t), "rows")
        return {f: (row[i] or 0, m.value(t, "rows")) for i, f in enumerate(fields)}
    else:
        _need(m, (t, "person_id"), ("person", "year_of_birth"))
        pid = m.col(t, "person_id", "x")
        if name == "plausibleAfterBirth":
            p = {k: m.col("person", k, "p") for k in ("person_id", "year_of_birth", "month_of_birth", "day_of_birth",
                                                      "birth_datetime") if m.present("person", k)}
            born = d.make_date(p["year_of_birth"], p.get("month_of_birth"), p.get("day_of_birth"))
            if "birth_datetime" in p:
                born = f"COALESCE({d.as_date(p['birth_datetime'])}, {born})"
            left, right = m.join_key(pid, p["person_id"], t, "person_id", "person", "person_id")
            exprs = [(_sum(f"{x} IS NOT NULL AND {d.as_date(x)} < {born}"), f"COUNT({x})") for x in xs.values()]
            source = f"{m.rel(t)} x JOIN {m.rel('person')} p ON {left} = {right}"
        else:
            _need(m, ("death", "death_date"), ("death", "person_id"))
            dp, dd = m.col("death", "person_id", "e"), m.col("death", "death_date", "e")
            left, right = m.join_key(pid, "de.pid", t, "person_id", "death", "person_id")
            late = d.add_days("de.dd", 60)
            exprs = [(_sum(f"{x} IS NOT NULL AND {d.as_date(x)} > {late}"), f"COUNT({x})") for x in xs.values()]
            source = (f"{m.rel(t)} x JOIN (SELECT {dp} AS pid, MIN({dd}) AS dd FROM {m.rel('death')} e "
                      f"GROUP BY {dp}) de ON {left} = {right}")
    sql = f"SELECT {', '.join(e for pair in exprs for e in pair)} FROM {source}"
    row = m.query(("dq-temporal", name, t, tuple(fields)), sql)
    m.sql_of[("dq-temporal", name, t)] = sql
    return {f: (row[2 * i] or 0, row[2 * i + 1]) for i, f in enumerate(fields)}


def _units(m, c: DqCheck) -> tuple[int, int]:
    """One grouped query for every concept of the check type, memoised; this check reads its concept."""
    t = c.table
    _need(m, (t, c.field), (t, "unit_concept_id"))
    key = ("dq-units", t)
    if key not in m._queries:
        checks = [k for k in catalogue(()) if k.name == "plausibleUnitConceptIds" and k.table == t]
        allowed = ", ".join(f"({int(k.concept_id)}, {int(u)})" for k in checks for u in k.arg.split(",") if u)
        concepts = ", ".join(sorted({k.concept_id for k in checks}))
        cc, u = m.col(t, c.field, "x"), m.col(t, "unit_concept_id", "x")
        # DataQualityDashboard's -1 stands for no unit; a hash join to the allowed pairs, not a search of them
        # per row
        sql = (f"SELECT {cc}, {_sum('a.c IS NULL')}, COUNT(*) FROM {m.rel(t)} x "
               f"LEFT JOIN (SELECT DISTINCT c, u FROM (VALUES {allowed}) AS v(c, u)) a "
               f"ON a.c = {cc} AND a.u = COALESCE({u}, -1) WHERE {cc} IN ({concepts}) "
               f"AND ({u} IS NULL OR {u} <> 0) GROUP BY {cc}")
        m.sql_of[key] = sql
        try:
            m._queries[key] = {str(r[0]): (r[1] or 0, r[2]) for r in m.s.rows(sql)}
        except ObservationError as exc:
            m._queries[key] = exc
    m._use(("sql", m.sql_of[key]))
    found = m._queries[key]
    if isinstance(found, Exception):
        raise found
    return found.get(c.concept_id, (0, 0))


def _gender(m, c: DqCheck) -> tuple[int, int]:
    t = c.table
    _need(m, (t, c.field), (t, "person_id"), ("person", "gender_concept_id"),
          ("concept_ancestor", "descendant_concept_id"))
    gender = GENDERS.get(c.arg.lower())
    ancestors = ", ".join(str(int(x)) for x in c.concept_id.split(",") if x.strip())
    cc, pid = m.col(t, c.field, "x"), m.col(t, "person_id", "x")
    ca = {k: m.col("concept_ancestor", k, "ca") for k in ("ancestor_concept_id", "descendant_concept_id")}
    # a vocabulary without these concepts' descendants (each is its own) would find no record to check
    known = m.query(("dq-ancestors", ancestors), f"SELECT COUNT(*) FROM {m.rel('concept_ancestor')} ca "
                                                 f"WHERE {ca['ancestor_concept_id']} IN ({ancestors})")
    if not known[0]:
        raise ObservationError(f"concept_ancestor holds none of the concepts {ancestors}: the records of their "
                               "descendants cannot be found")
    sex, person = m.col("person", "gender_concept_id", "p"), m.col("person", "person_id", "p")
    left, right = m.join_key(pid, person, t, "person_id", "person", "person_id")
    sql = (f"SELECT {_sum(f'{sex} <> {gender}')}, COUNT(*) FROM {m.rel(t)} x "
           f"JOIN {m.rel('person')} p ON {left} = {right} "
           f"WHERE {cc} IN (SELECT {ca['descendant_concept_id']} FROM {m.rel('concept_ancestor')} ca "
           f"WHERE {ca['ancestor_concept_id']} IN ({ancestors}))")
    row = m.query(("dq", c.id), sql)
    return row[0] or 0, row[1]


def _gender_of(m, c: DqCheck) -> tuple[int, int]:
    """plausibleGender: every concept of the table's field in two grouped queries, memoised: the records of
    the concept, and those of persons of the other gender (DataQualityDashboard's inner join to person)."""
    t, f = c.table, c.field
    key = ("dq-gender", t, f)
    if key not in m._queries:
        _need(m, (t, "person_id"), ("person", "gender_concept_id"))
        checks = [k for k in catalogue(()) if k.name == "plausibleGender" and k.table == t and k.field == f]
        pairs = ", ".join(f"({int(k.concept_id)}, {GENDERS[k.arg.lower()]})" for k in checks)
        cc = m.col(t, f, "x")
        left, right = m.join_key(m.col(t, "person_id", "x"), m.col("person", "person_id", "p"), t, "person_id",
                                 "person", "person_id")
        counted = (f"SELECT {cc}, COUNT(*) FROM {m.rel(t)} x WHERE {cc} IN "
                   f"({', '.join(str(int(k.concept_id)) for k in checks)}) GROUP BY {cc}")
        wrong = (f"SELECT {cc}, COUNT(*) FROM {m.rel(t)} x JOIN (SELECT DISTINCT c, g FROM (VALUES {pairs}) AS v(c, g)) a "
                 f"ON a.c = {cc} JOIN {m.rel('person')} p ON {left} = {right} "
                 f"WHERE {m.col('person', 'gender_concept_id', 'p')} <> a.g GROUP BY {cc}")
        m.sql_of[key] = f"{counted};\n{wrong}"
        try:
            found = {str(r[0]): [0, r[1]] for r in m.s.rows(counted)}
            for r in m.s.rows(wrong):
                found.setdefault(str(r[0]), [0, 0])[0] = r[1]
            m._queries[key] = found
        except ObservationError as exc:
            m._queries[key] = exc
    m._use(("sql", m.sql_of.get(key)))
    found = m._queries[key]
    if isinstance(found, Exception):
        raise found
    return tuple(found.get(c.concept_id, (0, 0)))


def _nothing_to_count(c: DqCheck) -> str:
    if c.level != "CONCEPT":
        return f"no row of {c.table} to check"
    which = "a descendant of " if c.name == "plausibleGenderUseDescendants" else ""
    return f"no record of {which}concept {c.concept_id.replace(',', ', ')} in {c.table}.{c.field}"


def run_checks(m, exclude=VOCABULARY_TABLES) -> list[DqResult]:
    """Every check of the catalogue against the warehouse, once per run (memoised on the session)."""
    key = ("dq-results", tuple(exclude))
    if key in m.s.memo:
        return m.s.memo[key]
    results = []
    for c in catalogue(exclude):
        started = time.monotonic()
        m.trace()
        try:
            violated, denominator = _count(m, c)
            violated, denominator = int(violated or 0), int(denominator or 0)
            if denominator == 0:   # its tables have rows, none of them concerned (a concept that does not occur)
                r = DqResult(c, "not_applicable", 0, 0, _nothing_to_count(c), ground="rows")
            else:
                failed = 100.0 * violated / denominator > c.threshold
                r = DqResult(c, "failed" if failed else "passed", violated, denominator)
        except NotApplicable as exc:
            r = DqResult(c, "not_applicable", reason=str(exc), ground=exc.ground)
        except NotImplementedError as exc:
            r = DqResult(c, "error", reason=f"not verified: {exc}")
        except (ObservationError, ValueError) as exc:
            r = DqResult(c, "error", reason=str(exc))
        r.seconds = round(time.monotonic() - started, 4)
        r.sql = m.traced()
        results.append(r)
    m.s.memo[key] = results
    return results


def _metadata(m) -> list[dict]:
    if not m.present("cdm_source"):
        return []
    names = ["cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "source_description",
             "source_documentation_reference", "cdm_etl_reference", "source_release_date", "cdm_release_date",
             "cdm_version", "vocabulary_version"]
    present = [n for n in names if m.present("cdm_source", n)]
    try:
        rows = m.s.rows(f"SELECT {', '.join(m.col('cdm_source', n) for n in present)} FROM {m.rel('cdm_source')} "
                        "LIMIT 1")
    except ObservationError:
        return []
    if not rows:
        return []
    camel = {n: "".join(w if i == 0 else w.capitalize() for i, w in enumerate(n.split("_"))) for n in names}
    meta = {camel[n]: (str(v) if v is not None else None) for n, v in zip(present, rows[0])}
    return [{**{camel[n]: None for n in names}, **meta, "dqdVersion": DQD_VERSION}]


def dqd_export(m, results: list[DqResult], started: str, seconds: float) -> dict:
    """The results in DataQualityDashboard's JSON layout (what its viewer reads)."""
    checks = []
    for r in results:
        c = r.check
        level, category, subcategory, context, severity = TYPES.get(c.name) or SUPERSEDED[c.name]
        failed = r.status in ("failed", "error")
        checks.append({
            "numViolatedRows": r.violated, "pctViolatedRows": round(r.pct, 4), "numDenominatorRows": r.denominator,
            "executionTime": f"{r.seconds:.3f} secs", "executionTimeSeconds": r.seconds,
            "queryText": ";\n".join(r.sql) or None,
            "checkName": c.name, "checkLevel": level, "checkDescription": c.describe(),
            "cdmTableName": c.table.upper(), "cdmFieldName": c.field.upper() or None,
            "conceptId": c.concept_id or None, "unitConceptId": c.unit_concept_id or None, "sqlFile": None,
            "category": category, "subcategory": subcategory or None, "context": context, "severity": severity,
            "warning": None, "error": r.reason if r.status == "error" else None, "checkId": c.id,
            "failed": int(failed), "passed": int(r.status == "passed"), "isError": int(r.status == "error"),
            "notApplicable": int(r.status == "not_applicable"),
            "notApplicableReason": r.reason if r.status == "not_applicable" else None,
            "thresholdValue": c.threshold, "notesValue": None})
    total = len(checks)
    failed = sum(ch["failed"] for ch in checks)

    def count(cat, what):
        return sum(1 for ch in checks if ch["category"] == cat and (what is None or ch[what]))
    # DataQualityDashboard's Overview: countPassed is every check that did not fail (not applicable ones
    # included), its percentages are of all checks; the per-category counts take the passed flag
    overview = {"countTotal": total, "countPassed": total - failed,
                "countErrorFailed": sum(ch["isError"] for ch in checks),
                "countThresholdFailed": sum(1 for ch in checks if ch["failed"] and not ch["isError"]),
                "countOverallFailed": failed,
                "percentPassed": round(100.0 * (total - failed) / total, 2) if total else 0,
                "percentFailed": round(100.0 * failed / total, 2) if total else 0}
    for cat in ("Plausibility", "Conformance", "Completeness"):
        overview[f"countTotal{cat}"] = count(cat, None)
        overview[f"countFailed{cat}"] = count(cat, "failed")
        overview[f"countPassed{cat}"] = count(cat, "passed")
    ended = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {"startTimestamp": started, "endTimestamp": ended, "executionTime": f"{seconds:.0f} secs",
            "executionTimeSeconds": round(seconds, 3), "CheckResults": checks, "Metadata": _metadata(m),
            "Overview": overview}
