"""Pseudonymisation and access rules of a health data warehouse (CNIL référentiel on health data
warehouses, 2021): no direct identifier in text columns, k-anonymity and small cells of the declared
quasi-identifiers, an audit log that records the harness and that its role cannot alter, least privilege.

Identifiers are found by identifierscan.py, in the warehouse itself.
"""
from __future__ import annotations

import secrets
import time

from ..errors import ObservationError
from .findings import Findings
from .identifierscan import (  # noqa: F401
    KINDS,
    PARTITION_ROWS,
    extra_columns,
    identifier_scan,
    identifiers,
    named_as_identity,
    nir_valid_sql,
)
from .measures import _sum

# quasi-identifiers ------------------------------------------------------------------------------

def cells(m, params, floor_param: str) -> Findings:
    """Cells of the quasi-identifiers' table (one cell per combination of values) below a floor."""
    table = params.get("table", "person")
    qis = params.get("quasi_identifiers", ["year_of_birth", "gender_concept_id", "location_id"])
    floor = int(params[floor_param])
    f = Findings()
    missing = [q for q in qis if not m.present(table, q)]
    if missing:
        raise ObservationError(f"quasi-identifier{'s' if len(missing) > 1 else ''} not found: "
                               f"{', '.join(f'{table}.{q}' for q in missing)}")
    cols = ", ".join(m.col(table, q) for q in qis)
    grouped = f"SELECT {cols}, COUNT(*) AS n FROM {m.rel(table)} GROUP BY {cols}"
    total, smallest, small, people = m.query(("cells", table, tuple(qis), floor),
                                             f"SELECT COUNT(*), MIN(n), {_sum(f'n < {floor}')}, "
                                             f"SUM(CASE WHEN n < {floor} THEN n ELSE 0 END) FROM ({grouped}) g")
    f.checked = int(total or 0)
    f.unobserved = f"{table} has no rows: there is no person whose anonymity could be observed"
    f.measurements.update(quasi_identifiers=[f"{table}.{q}" for q in qis], cells=int(total or 0),
                          smallest_cell=smallest, **{floor_param: floor}, cells_below=int(small or 0),
                          persons_in_cells_below=int(people or 0))
    if small:
        sample = m.samples(f"SELECT * FROM ({grouped}) g WHERE n < {floor} ORDER BY n")
        f.samples["cells_below"] = [dict(zip([*qis, "n"], row)) for row in sample]
        f.violation(f"{small} combination{'s' if small > 1 else ''} of {', '.join(qis)} with fewer than {floor} "
                    f"persons ({people} persons; smallest: {smallest})")
    return f


# audit log and privileges -----------------------------------------------------------------------

NO_ROLES = "{engine} has no roles: its only access control is the file's permissions, so {what} cannot be enforced there"


def _without_roles(s, what: str):
    """An engine whose SQL shows vigie no roles: a local one (files) has none, so the rule does not concern it;
    a Spark cluster keeps its grants in its own catalogue (Unity Catalog, Ranger...), out of Spark SQL's
    sight, so the rule is not observed there, never set aside."""
    if s.backend == "spark" and getattr(s.conn, "remote", False):
        raise ObservationError(f"a Spark Connect server shows no grants to Spark SQL (a cluster keeps them in its "
                               f"own catalogue: Unity Catalog, Ranger...): {what} cannot be observed by vigie")
    raise NotApplicableRule(NO_ROLES.format(engine=s.backend, what=what))


def audit_records(m, params) -> Findings:
    s, d, f = m.s, m.d, Findings()
    a = s.audit
    if a is None:
        f.violation(f"no audit log: no relation '{'audit_log'}' in schema {s.schema or '(default)'} "
                    "(or named by the URL option audit_log=schema.table)")
        return f
    rel = a.relation(d)
    f.measurements["audit"] = a.to_json()
    missing = [what for what, col in (("statement", a.statement), ("user", a.user), ("time", a.time)) if not col]
    if missing:
        f.violation(f"{rel}: no {', '.join(missing)} column")
        return f
    # the harness's own appends (mode "table": vigie writes the log; "procedure": vigie calls the warehouse's
    # function) failing says nothing of the warehouse: they leave the requirement unverified, never failed
    before = a.append_errors
    nonce = secrets.token_hex(6)
    s.rows(f"SELECT 'vigie-probe-{nonce}' AS vigie_probe")
    s.flush_audit()
    probe_not_appended = a.append_errors > before
    if a.append_errors:
        n, last = a.append_errors, a.last_error
        f.problems.append(f"{rel}: the harness's own append to the audit log failed (failures: {n}; last: {last}), "
                          "which says nothing of the warehouse's log")
    if probe_not_appended:
        f.measurements["probe_found"] = False
        return f
    needle = f"'%' || 'vigie-probe-' || '{nonce}' || '%'"   # the lookup's own text never holds the probe
    deadline = time.monotonic() + float(params.get("wait_s", 5))
    while True:
        rows = s.rows(f"SELECT {d.text(d.quote(a.user))}, {d.text(d.quote(a.time))} FROM {rel} "
                      f"WHERE {d.quote(a.statement)} LIKE {needle}")
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    f.checked = 1
    f.measurements["probe_found"] = bool(rows)
    if not rows:
        f.violation(f"{rel}: the harness's probe query was not recorded")
        return f
    user, when = rows[0]
    f.measurements.update(recorded_user=user, recorded_at=when)
    if not user or not when:
        f.violation(f"{rel}: the record of the probe has no user or no time")
    if s.backend == "postgresql":
        me = s.scalar("SELECT session_user")
        if user != me:
            f.violation(f"{rel}: the probe is recorded under '{user}', not the harness's role '{me}'")
    f.seen = f"{rel} recorded the harness's probe query, under '{user}' at {when}"
    return f


def audit_immutable(m, params) -> Findings:
    s, d, f = m.s, m.d, Findings()
    if not d.has_roles:
        _without_roles(s, "the audit log's immutability")
    a = s.audit
    if a is None:   # nothing whose rights could be observed (the absence fails the audit log requirement)
        f.unobserved = "the warehouse has no audit log"
        return f
    reg = f"to_regclass({d.literal(a.schema + '.' + a.table)})"
    row = s.rows(f"SELECT has_table_privilege({reg}, 'INSERT'), has_table_privilege({reg}, 'UPDATE'), "
                 f"has_table_privilege({reg}, 'DELETE'), has_table_privilege({reg}, 'TRUNCATE'), "
                 f"pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = {reg}")
    f.checked = 1
    if not row:
        raise ObservationError(f"{a.schema}.{a.table} is not a relation the harness's role can see")
    ins, upd, dele, trunc, owner = row[0]
    rights = [name for name, has in (("INSERT", ins), ("UPDATE", upd), ("DELETE", dele), ("TRUNCATE", trunc)) if has]
    f.measurements.update(rights=rights, owner=bool(owner))
    if owner:
        f.violation(f"{a.schema}.{a.table}: the harness's role owns the audit log (it can alter it)")
    if rights:
        f.violation(f"{a.schema}.{a.table}: the harness's role may {', '.join(rights)} the audit log")
    return f


def least_privilege(m, params) -> Findings:
    s, d, f = m.s, m.d, Findings()
    if not d.has_roles:
        _without_roles(s, "least privilege")
    schemas = sorted({s.schema, *([s.audit.schema] if s.audit else []), *params.get("schemas", [])})
    names = ", ".join(d.literal(x) for x in schemas)
    roles = s.rows("SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
                   "WHERE rolname = current_user")
    if not roles:
        raise ObservationError("the harness's role is not visible in pg_roles: its attributes cannot be read")
    role = roles[0]
    f.measurements["role"] = role[0]
    for attr, has in zip(("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS"), role[1:]):
        f.checked += 1
        if has:
            f.violation(f"role {role[0]} has {attr}")
    writable = (f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN (VALUES ('INSERT'), "
                f"('UPDATE'), ('DELETE'), ('TRUNCATE')) AS p(priv) WHERE n.nspname IN ({names}) "
                f"AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (has_table_privilege(c.oid, p.priv) "
                f"OR pg_has_role(c.relowner, 'USAGE'))")
    relations, grants = s.rows(f"SELECT COUNT(DISTINCT c.oid), COUNT(*) {writable}")[0]
    creatable = [x for x in schemas if s.scalar(f"SELECT has_schema_privilege({d.literal(x)}, 'CREATE')")]
    f.checked += len(schemas)
    f.measurements.update(schemas=schemas, writable_relations=relations, write_grants=grants,
                          schemas_with_create=creatable)
    if relations:
        f.samples["writable"] = [f"{n}.{r}: {p}" for n, r, p in s.sample(
            f"SELECT n.nspname, c.relname, p.priv {writable} ORDER BY 1, 2, 3")]
        f.violation(f"role {role[0]} may write {relations} relation{'s' if relations > 1 else ''} "
                    f"({grants} grants, e.g. {f.samples['writable'][0]})")
    for x in creatable:
        f.violation(f"role {role[0]} may CREATE in schema {x}")
    return f


class NotApplicableRule(Exception):
    """The rule does not concern this engine (the check reports not_applicable)."""
