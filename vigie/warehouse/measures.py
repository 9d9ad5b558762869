"""The measurements the warehouse checks are made of, each computed in the warehouse and memoised on the
session: one aggregate scan per table serves every single-table rule (nulls, duplicates, value ranges,
concept completeness...), one query per foreign-key field, one per temporal join.

A scan that fails as a whole (a type the engine cannot compare, for example) is retried one expression
at a time, so that one odd column costs its own rules, not the table's.
"""
from __future__ import annotations

import re

from ..errors import ObservationError
from .cdm import cdm54
from .dialect import db_family
from .session import StatementTimeout


def _sum(cond: str) -> str:
    return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"


class Measures:
    def __init__(self, session, catalogue):
        self.s = session
        self.cat = catalogue
        self.d = session.dialect
        self._scans: dict = {}
        self._scan_exprs: dict = {}   # table → {key: expression} of its scan
        self._queries: dict = {}
        self.sql_of: dict = {}        # memo key → the statement that computed it
        self._trace: dict | None = None
        self.requests: dict = {}   # table → {key: expression} asked of its scan before it runs

    # names --------------------------------------------------------------------------------------

    def present(self, table: str, field: str | None = None) -> bool:
        t = self.cat.table(table)
        return t is not None and (field is None or t.column(field) is not None)

    def rel(self, table: str) -> str:
        return self.s.table(self.cat.table(table).name)

    def col(self, table: str, field: str, alias: str | None = None) -> str:
        name = self.d.quote(self.cat.table(table).column(field).name)
        return f"{alias}.{name}" if alias else name

    def family(self, table: str, field: str) -> str:
        return db_family(self.cat.table(table).column(field).type)

    # what a measurement rests on ----------------------------------------------------------------

    def trace(self) -> None:
        """Starts noting the statements the next measurements rest on (a DataQualityDashboard check's
        queryText), memoised or not."""
        self._trace = {}

    def traced(self) -> list[str]:
        """The statements noted since trace(): for numbers taken from a table's shared scan, a statement
        computing just those aggregates (the same values: each aggregate of a scan is independent)."""
        found, self._trace = self._trace or {}, None
        out = []
        for what, items in found.items():
            if what[0] == "scan":
                exprs = self._scan_exprs.get(what[1], {})
                out.append(f"SELECT {', '.join(exprs[k] for k in items if k in exprs)} FROM {self.rel(what[1])}")
            else:
                out.append(what[1])
        return out

    def _use(self, what: tuple, item=None) -> None:
        if self._trace is not None and what[-1]:
            items = self._trace.setdefault(what, [])
            if item is not None and item not in items:
                items.append(item)

    # the per-table scan -------------------------------------------------------------------------

    def want(self, table: str, key, expression: str) -> None:
        """Registers an aggregate for the table's scan (before it runs): one value whatever the table's size,
        also when measured on its own (SELECT expression FROM table) after the one-pass scan failed."""
        self.requests.setdefault(table, {})[key] = expression

    def scan(self, table: str) -> dict:
        """{key: value} for every aggregate wanted of the table; a key whose expression failed maps to
        an ObservationError."""
        if table in self._scans:
            return self._scans[table]
        exprs = {"rows": "COUNT(*)"}
        spec = cdm54().get(table)
        for f in (spec.fields if spec else []):
            if self.present(table, f.name):
                exprs[("nonnull", f.name)] = f"COUNT({self.col(table, f.name)})"
                if f.pk:
                    exprs[("distinct", f.name)] = f"COUNT(DISTINCT {self.col(table, f.name)})"
        exprs.update(self.requests.get(table, {}))
        self._scan_exprs[table] = exprs
        keys = list(exprs)
        sql = f"SELECT {', '.join(exprs[k] for k in keys)} FROM {self.rel(table)}"
        try:
            row = self.s.rows(sql)[0]
            result = dict(zip(keys, row))
        except StatementTimeout as exc:   # one expression at a time would wait out the limit once each
            result = dict.fromkeys(keys, exc)
        except ObservationError:
            result = {}
            for k in keys:
                try:
                    result[k] = self.s.scalar(f"SELECT {exprs[k]} FROM {self.rel(table)}")
                except ObservationError as exc:
                    result[k] = exc
        self._scans[table] = result
        return result

    def value(self, table: str, key):
        v = self.scan(table).get(key)
        self._use(("scan", table), key)
        if isinstance(v, Exception):
            raise v
        return v

    # queries beyond one table -------------------------------------------------------------------

    def query(self, key, sql: str) -> tuple:
        """One memoised query returning one row."""
        self.sql_of[key] = sql
        self._use(("sql", sql))
        if key not in self._queries:
            try:
                rows = self.s.rows(sql)
                self._queries[key] = rows[0] if rows else ()
            except ObservationError as exc:
                self._queries[key] = exc
        v = self._queries[key]
        if isinstance(v, Exception):
            raise v
        return v

    def join_key(self, left: str, right: str, lt: str, lf: str, rt: str, rf: str) -> tuple[str, str]:
        """The two sides of an equality between columns of different tables, cast to text when their
        families differ (a warehouse may store an id as text on one side)."""
        families = {self.family(lt, lf), self.family(rt, rf)}
        if len(families) > 1 and not families <= {"integer", "float"}:
            return self.d.text(left), self.d.text(right)
        return left, right

    def anti_join(self, alias: str, left: str, lt: str, lf: str, rt: str, rf: str) -> str:
        """LEFT JOIN to the values of rt.rf, as `alias.k`: a row whose `left` finds no `alias.k` has no match.
        A hash join that every engine runs in one pass without an index; a correlated NOT EXISTS per row is a
        scan of rt per row on PostgreSQL (100,000 persons: 300 s instead of 0.3 s). A key that the target's
        scan found unique is joined as it is; otherwise its distinct values are (a repeated key must not
        multiply the rows counted), which costs an aggregation (on PostgreSQL about 5 times the join)."""
        left, right = self.join_key(left, self.col(rt, rf, "u"), lt, lf, rt, rf)
        if self.unique(rt, rf):
            return f"LEFT JOIN (SELECT {right} AS k FROM {self.rel(rt)} u) {alias} ON {alias}.k = {left}"
        return f"LEFT JOIN (SELECT DISTINCT {right} AS k FROM {self.rel(rt)} u) {alias} ON {alias}.k = {left}"

    def unique(self, table: str, field: str) -> bool:
        """The field's values are unique, as the table's scan counted them (primary keys only)."""
        try:
            return self.value(table, ("distinct", field)) == self.value(table, ("nonnull", field))
        except ObservationError:
            return False
        except KeyError:
            return False

    def _foreign_keys_of(self, table: str) -> dict:
        """Every foreign key of the table in one query (a LEFT JOIN to concept per concept pointer, an anti-join
        per other pointer): {field: {rows, nonnull, orphans[, not_standard, (attribute, expected)]}}.
        The concept attributes compared are those DataQualityDashboard expects (fkDomain, fkClass)."""
        key = ("fk-table", table)
        if key in self._queries:
            self._use(("sql", self.sql_of.get(key)))
            found = self._queries[key]
            if isinstance(found, Exception):
                raise found
            return found
        from .dq import catalogue as dq_catalogue
        expected = {}
        for c in dq_catalogue(()):
            if c.table == table and c.name in ("fkDomain", "fkClass"):
                expected.setdefault(c.field, []).append(("domain_id" if c.name == "fkDomain" else "concept_class_id", c.arg))
        fields = [f for f in cdm54()[table].fields if f.fk_table and self.present(table, f.name)
                  and self.present(f.fk_table, f.fk_field)]
        exprs, keys, joins = ["COUNT(*)"], [None], []
        for i, f in enumerate(fields):
            c = self.col(table, f.name, "t")
            exprs.append(f"COUNT({c})")
            keys.append((f.name, "nonnull"))
            if f.fk_table == "concept":
                a = f"c{i}"
                k = self.col("concept", "concept_id", a)
                left, right = self.join_key(c, k, table, f.name, "concept", "concept_id")
                joins.append(f"LEFT JOIN {self.rel('concept')} {a} ON {left} = {right}")
                std, inv = self.col("concept", "standard_concept", a), self.col("concept", "invalid_reason", a)
                exprs += [_sum(f"{c} IS NOT NULL AND {k} IS NULL"),
                          _sum(f"{k} IS NOT NULL AND {left} <> 0 AND (COALESCE({std}, '') <> 'S' OR {inv} IS NOT NULL)")]
                keys += [(f.name, "orphans"), (f.name, "not_standard")]
                for attr, value in expected.get(f.name, []):
                    v = self.col("concept", attr, a)
                    # concept 0 ("no matching concept") belongs to no domain: completeness checks count it
                    exprs.append(_sum(f"{v} IS NOT NULL AND {left} <> 0 AND lower({v}) <> lower({self.d.literal(value)})"))
                    keys.append((f.name, (attr, value)))
            else:
                a = f"r{i}"
                joins.append(self.anti_join(a, c, table, f.name, f.fk_table, f.fk_field))
                exprs.append(_sum(f"{c} IS NOT NULL AND {a}.k IS NULL"))
                keys.append((f.name, "orphans"))
        sql = self.sql_of[key] = f"SELECT {', '.join(exprs)} FROM {self.rel(table)} t {' '.join(joins)}"
        self._use(("sql", sql))
        try:
            row = self.s.rows(sql)[0]
        except ObservationError as exc:
            self._queries[key] = exc
            raise
        found: dict = {}
        for k, v in zip(keys[1:], row[1:]):
            found.setdefault(k[0], {"rows": row[0]})[k[1]] = v or 0
        self._queries[key] = found
        return found

    def foreign_key(self, table: str, field: str) -> dict:
        """{rows, nonnull, orphans} for a field pointing to another table; for a pointer to concept also
        domain_ids / class_ids (counts per value) and not_standard."""
        f = cdm54()[table].field(field)
        ft, ff = f.fk_table, f.fk_field
        if not self.present(ft, ff):
            raise ObservationError(f"{ft}.{ff} is missing: {table}.{field} cannot be resolved")
        try:
            batch = self._foreign_keys_of(table)
            if field in batch:
                return batch[field]
        except ObservationError:
            pass   # one pointer the engine cannot compare: measure each on its own
        c = self.col(table, field, "t")
        if ft == "concept":
            left, right = self.join_key(c, self.col("concept", "concept_id", "c"), table, field, "concept", "concept_id")
            std, inv = self.col("concept", "standard_concept", "c"), self.col("concept", "invalid_reason", "c")
            key = self.col("concept", "concept_id", "c")
            not_standard = f"{key} IS NOT NULL AND {left} <> 0 AND (COALESCE({std}, '') <> 'S' OR {inv} IS NOT NULL)"
            sql = (f"SELECT COUNT(*), COUNT({c}), {_sum(f'{c} IS NOT NULL AND {key} IS NULL')}, {_sum(not_standard)} "
                   f"FROM {self.rel(table)} t LEFT JOIN {self.rel('concept')} c ON {left} = {right}")
            rows, nonnull, orphans, not_standard = self.query(("fk", table, field), sql)
            result = {"rows": rows, "nonnull": nonnull, "orphans": orphans or 0, "not_standard": not_standard or 0}
            return result
        sql = (f"SELECT COUNT(*), COUNT({c}), {_sum(f'{c} IS NOT NULL AND r.k IS NULL')} "
               f"FROM {self.rel(table)} t {self.anti_join('r', c, table, field, ft, ff)}")
        rows, nonnull, orphans = self.query(("fk", table, field), sql)
        return {"rows": rows, "nonnull": nonnull, "orphans": orphans or 0}

    def concept_attribute(self, table: str, field: str, attribute: str, expected: str) -> tuple[int, int]:
        """(rows whose concept's attribute is not `expected`, rows) for a concept pointer."""
        try:
            found = self._foreign_keys_of(table).get(field, {})
            if (attribute, expected) in found:
                return found[(attribute, expected)], found["rows"]
        except ObservationError:
            pass
        c = self.col(table, field, "t")
        left, right = self.join_key(c, self.col("concept", "concept_id", "c"), table, field, "concept", "concept_id")
        a = self.col("concept", attribute, "c")
        # concept 0 ("no matching concept") belongs to no domain: the completeness checks count it
        sql = (f"SELECT {_sum(f'{a} IS NOT NULL AND {left} <> 0 AND lower({a}) <> lower({self.d.literal(expected)})')}, COUNT(*) "
               f"FROM {self.rel(table)} t LEFT JOIN {self.rel('concept')} c ON {left} = {right}")
        bad, rows = self.query(("concept-attr", table, field, attribute, expected), sql)
        return bad or 0, rows or 0

    def samples(self, sql: str) -> list:
        try:
            return [r[0] if len(r) == 1 else list(r) for r in self.s.sample(sql)]
        except ObservationError as exc:
            return [f"(no sample: {exc})"]


_MEASURES = "vigie-measures"


def measures_of(session, catalogue) -> Measures:
    """The run's Measures for this session (shared by every check)."""
    if _MEASURES not in session.memo:
        from .dq import want_scans
        m = session.memo[_MEASURES] = Measures(session, catalogue)
        want_scans(m)   # the data-quality aggregates ride on the same scans
    return session.memo[_MEASURES]


def plain(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None
