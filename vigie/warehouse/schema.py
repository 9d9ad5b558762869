"""The OMOP CDM 5.4 rules: tables and fields present, types compatible, required fields filled, primary
keys unique, foreign keys resolved. Each is one requirement with per-table and per-field measurements."""
from __future__ import annotations

from ..errors import ObservationError
from .cdm import VOCABULARY_TABLES, cdm54
from .dialect import cdm_family, compatible, db_family
from .findings import Findings


def _tables(params) -> list:
    wanted = params.get("tables")
    tables = [t for t in cdm54().values() if not wanted or t.name in wanted]
    return tables


def _data_tables(m, params) -> list:
    exclude = set(params.get("exclude_tables", VOCABULARY_TABLES))
    return [t for t in _tables(params) if t.name not in exclude and m.present(t.name)]


def _tables_with_rows(m, params, f: Findings) -> list:
    """The data tables that hold rows: a rule on values examines nothing in an empty table, so only these
    count as checked (the empty ones are measured, and named when no table has rows)."""
    found, empty = [], []
    for t in _data_tables(m, params):
        try:
            (found if m.value(t.name, "rows") else empty).append(t)
        except ObservationError as exc:
            f.problems.append(f"{t.name}: {exc}")
    f.measurements["empty_tables"] = [t.name for t in empty]
    f.unobserved = (f"the data tables hold no rows ({len(empty)} empty)" if empty
                    else "no data table of the CDM is present")
    return found


def tables_present(m, params) -> Findings:
    f = Findings()
    for t in _tables(params):
        f.checked += 1
        if not m.present(t.name):
            f.violation(f"{t.name}: table missing")
    f.measurements["missing_tables"] = [t.name for t in _tables(params) if not m.present(t.name)]
    return f


def fields_present(m, params) -> Findings:
    f = Findings()
    missing: dict = {}
    for t in _tables(params):
        if not m.present(t.name):
            continue
        for fld in t.fields:
            f.checked += 1
            if not m.present(t.name, fld.name):
                missing.setdefault(t.name, []).append(fld.name)
                f.violation(f"{t.name}.{fld.name}: field missing" + (" (required)" if fld.required else ""))
        extra = sorted(set(m.cat.table(t.name).columns) - {x.name for x in t.fields})
        if extra:
            f.measurements.setdefault("extra_fields", {})[t.name] = extra
    f.measurements["missing_fields"] = missing
    return f


def types_compatible(m, params) -> Findings:
    f = Findings()
    found: dict = {}
    for t in _tables(params):
        if not m.present(t.name):
            continue
        for fld in t.fields:
            col = m.cat.table(t.name).column(fld.name)
            if col is None:
                continue
            f.checked += 1
            found.setdefault(t.name, {})[fld.name] = col.type
            if not compatible(fld.type, col.type):
                f.violation(f"{t.name}.{fld.name}: {col.type} ({db_family(col.type)}) where the specification "
                            f"says {fld.type} ({cdm_family(fld.type)})")
    f.measurements["engine"] = m.s.backend
    return f


def required_filled(m, params) -> Findings:
    f = Findings()
    nulls: dict = {}
    for t in _tables_with_rows(m, params, f):
        pk = t.primary_key
        for fld in t.fields:
            if not fld.required or not m.present(t.name, fld.name):
                continue
            f.checked += 1
            try:
                n = m.value(t.name, "rows") - m.value(t.name, ("nonnull", fld.name))
            except ObservationError as exc:
                f.problems.append(f"{t.name}.{fld.name}: {exc}")
                continue
            nulls.setdefault(t.name, {})[fld.name] = n
            if n:
                f.violation(f"{t.name}.{fld.name}: {n} null value{'s' if n > 1 else ''} (required)")
                if pk is not None and m.present(t.name, pk.name):
                    f.samples[f"{t.name}.{fld.name}"] = m.samples(
                        f"SELECT {m.col(t.name, pk.name)} FROM {m.rel(t.name)} WHERE {m.col(t.name, fld.name)} IS NULL")
    f.measurements["nulls"] = nulls
    return f


def keys_unique(m, params) -> Findings:
    f = Findings()
    dups: dict = {}
    for t in _tables_with_rows(m, params, f):
        pk = t.primary_key
        if pk is None or not m.present(t.name, pk.name):
            continue
        f.checked += 1
        try:
            n = m.value(t.name, ("nonnull", pk.name)) - m.value(t.name, ("distinct", pk.name))
        except ObservationError as exc:
            f.problems.append(f"{t.name}.{pk.name}: {exc}")
            continue
        dups[f"{t.name}.{pk.name}"] = n
        if n:
            f.violation(f"{t.name}.{pk.name}: {n} duplicate value{'s' if n > 1 else ''} (primary key)")
            k = m.col(t.name, pk.name)
            f.samples[f"{t.name}.{pk.name}"] = m.samples(
                f"SELECT {k}, COUNT(*) AS n FROM {m.rel(t.name)} GROUP BY {k} HAVING COUNT(*) > 1")
    f.measurements["duplicates"] = dups
    return f


def foreign_keys_resolve(m, params) -> Findings:
    f = Findings()
    orphans: dict = {}
    targets_left_out = set(params.get("exclude_targets", ()))
    without_values = []
    for t in _tables_with_rows(m, params, f):
        for fld in t.fields:
            if not fld.fk_table or fld.fk_table in targets_left_out or not m.present(t.name, fld.name):
                continue
            try:
                fk = m.foreign_key(t.name, fld.name)
            except ObservationError as exc:
                f.problems.append(f"{t.name}.{fld.name}: {exc}")
                continue
            n = fk["orphans"]
            orphans[f"{t.name}.{fld.name}"] = n
            if not fk["nonnull"]:   # no value to resolve: nothing examined
                without_values.append(f"{t.name}.{fld.name}")
                continue
            f.checked += 1
            if n:
                f.violation(f"{t.name}.{fld.name}: {n} value{'s' if n > 1 else ''} not found in "
                            f"{fld.fk_table}.{fld.fk_field}")
                c = m.col(t.name, fld.name, "t")
                left, right = m.join_key(c, m.col(fld.fk_table, fld.fk_field, "r"), t.name, fld.name,
                                         fld.fk_table, fld.fk_field)
                f.samples[f"{t.name}.{fld.name}"] = m.samples(
                    f"SELECT DISTINCT {c} FROM {m.rel(t.name)} t WHERE {c} IS NOT NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {m.rel(fld.fk_table)} r WHERE {right} = {left})")
    f.measurements["orphans"] = {k: v for k, v in orphans.items() if v}
    f.measurements["fields_checked"] = len(orphans)
    f.measurements["fields_without_values"] = without_values
    if orphans and not f.checked:
        f.unobserved = f"none of the {len(orphans)} foreign key fields of the tables with rows holds a value"
    return f


# the rule a requirement of the omop.structure check names (params.rule) → (measure, what it counts)
RULES = {"tables": (tables_present, "tables"), "fields": (fields_present, "fields"),
         "types": (types_compatible, "field types"), "required": (required_filled, "required fields"),
         "primary-keys": (keys_unique, "primary keys"), "foreign-keys": (foreign_keys_resolve, "foreign keys")}
