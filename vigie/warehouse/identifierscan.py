"""The direct identifiers a warehouse's columns hold, found in the warehouse itself: every row of every text
column of every table but the vocabulary and the audit log scanned in one query per table (a large table in
partitions of its integer key, `partition_rows` rows each: read whole, never sampled, since a pass on a sample
would claim rows nobody looked at), with the patterns of detection.py; what SQL cannot decide portably (the key of a
NIR-shaped number beyond a value's first, disease eponyms) judged in Python on the distinct candidate values,
so that counts stay exact. A NIR counts only when its key is valid (computed in SQL, Corsica's 2A/2B as 19/18,
the rule of vigie.identifiers). Samples are masked.
"""
from __future__ import annotations

import re
from itertools import pairwise

from ..errors import ObservationError
from . import detection
from .cdm import VOCABULARY_TABLES, cdm54
from .dialect import db_family
from .findings import Findings, mask
from .measures import _sum
from .session import SAMPLE_CAP

KINDS = {name: kind.label for name, kind in detection.KINDS.items()}
PARTITION_ROWS = 1_000_000   # rows one statement of the scan reads at most (profile parameter partition_rows)
JUDGED_CAP = 20_000       # distinct candidate values judged in Python per column and kind


def nir_valid_sql(d, extracted: str) -> str:
    """True when the extracted NIR (grouped, its key announced or not) has a valid key: 97 - (13 digits mod 97)."""
    x = extracted
    for piece in (*detection.KEY_WORDS, *detection.NIR_SEPARATORS):
        x = f"replace({x}, {d.literal(piece)}, '')"
    body = (f"substr({x}, 1, 5) || replace(replace(upper(substr({x}, 6, 2)), '2A', '19'), '2B', '18') "
            f"|| substr({x}, 8, 6)")
    # CASE, not AND: an engine may evaluate both sides of AND on every row, and the CAST fails on a non-number
    shape = d.regex_match(x, "^[0-9]{5}(?:[0-9]{2}|2[ABab])[0-9]{8}$")
    return (f"(CASE WHEN {shape} THEN 97 - CAST({body} AS BIGINT) % 97 = CAST(substr({x}, 14, 2) AS INTEGER) "
            "ELSE false END)")


def _any(d, kind: str, col: str) -> str:
    """The value matches one of the kind's patterns."""
    return "(" + " OR ".join(d.regex_match(col, p, icase) for p, icase in detection.KINDS[kind].patterns) + ")"


def _match(d, kind: str, col: str) -> str:
    """The value holds the kind, as far as SQL decides alone: for a NIR, its first NIR-shaped number has a valid
    key; for a name, a pattern matches (eponyms are judged in Python, `_candidate`)."""
    if kind == "nir":
        return f"({d.regex_match(col, detection.NIR)} AND {nir_valid_sql(d, d.regex_extract(col, detection.NIR))})"
    return _any(d, kind, col)


def _candidate(d, kind: str, col: str) -> str:
    """The values only Python can judge: a NIR-shaped number after a first one whose key is wrong; any name."""
    if kind == "nir":
        return (f"({d.regex_match(col, detection.NIR_TWICE)} AND NOT "
                f"({d.regex_match(col, detection.NIR)} AND {nir_valid_sql(d, d.regex_extract(col, detection.NIR))}))")
    return _match(d, kind, col)


def _extract(d, kind: str, col: str) -> str:
    """The identifier that a value matched by `_match` holds (for a masked sample)."""
    pats = detection.KINDS[kind].patterns
    flagged = [("(?i)" + p if icase else p) for p, icase in pats]   # an embedded flag: every engine reads it
    if len(pats) == 1:
        return d.regex_extract(col, flagged[0])
    whens = " ".join(f"WHEN {d.regex_match(col, p, icase)} THEN {d.regex_extract(col, f)}"
                     for (p, icase), f in zip(pats, flagged))
    return f"CASE {whens} END"


VALUES = "values"   # the key of a scanned column's count of non-null values
MAX_PARTITIONS = 10_000   # beyond, the key is sparse: partitions sized by the table's row count instead


def _integer_key(tname: str, table) -> str | None:
    """The column of the integer primary key the CDM gives the table, when the warehouse has it."""
    spec = cdm54().get(tname)
    for f in spec.fields if spec else ():
        col = table.column(f.name) if f.pk else None
        if col is not None and db_family(col.type) == "integer":
            return col.name
    return None


def _partitions(m, tname: str, table, rows_per: int) -> tuple[list[str], str]:
    """(WHERE conditions that together select every row of the table exactly once, the key they split on):
    ranges of the table's integer primary key holding about `rows_per` rows each, so that no statement reads
    more than that (a time limit stays a limit per statement, and a large table is read whole, never sampled).
    The first range is open below, the last open above, and a NULL key has its own: no row escapes them, even
    one added since the bounds were read. One condition ("") for a small table or one without such a key."""
    key = _integer_key(tname, table)
    if not rows_per or key is None:
        return [""], ""
    k, rel = m.d.quote(key), m.s.table(table.name)
    lo, hi = m.s.rows(f"SELECT MIN({k}), MAX({k}) FROM {rel}")[0]
    if lo is None or int(hi) - int(lo) < rows_per:
        return [""], ""
    lo, span = int(lo), int(hi) - int(lo) + 1
    parts = -(-span // rows_per)
    if parts > MAX_PARTITIONS:
        rows = int(m.s.scalar(f"SELECT COUNT(*) FROM {rel}") or 0)
        parts = min(MAX_PARTITIONS, max(1, -(-rows // rows_per)))
    width = -(-span // parts)
    bounds = [lo + i * width for i in range(1, parts)]
    if not bounds:
        return [""], ""
    where = [f"{k} < {bounds[0]}", *(f"{k} >= {a} AND {k} < {b}" for a, b in pairwise(bounds)),
             f"{k} >= {bounds[-1]}", f"{k} IS NULL"]
    return where, key


def _from(rel: str, where: str, extra: str = "") -> str:
    conditions = " AND ".join(f"({c})" for c in (where, extra) if c)
    return f"FROM {rel}" + (f" WHERE {conditions}" if conditions else "")


def _judge(m, rel: str, parts: list[str], col: str, kind: str, cap: int) -> tuple[int, list, int]:
    """(values confirmed, masked samples, candidate values left unjudged) among the candidates SQL selects,
    gathered partition by partition."""
    found: dict = {}
    for where in parts:
        for value, n in m.s.rows(f"SELECT {col}, COUNT(*) {_from(rel, where, _candidate(m.d, kind, col))} "
                                 f"GROUP BY {col} LIMIT {int(cap) + 1}"):
            found[value] = found.get(value, 0) + int(n)
        if len(found) > cap:
            break
    left = max(0, len(found) - cap)
    confirmed, samples = 0, []
    for value, n in list(found.items())[:cap]:
        hit = detection.confirm(kind, value)
        if hit:
            confirmed += n
            if len(samples) < SAMPLE_CAP:
                samples.append(mask(hit))
    return confirmed, samples, left


def identifier_scan(m, exclude=(), rows_per: int = PARTITION_ROWS) -> dict:
    """{"found": {(table, column): {kind: rows, VALUES: non-null values}}, "problems": [...], "tables": {table:
    {rows_examined, statements, partitioned_by}}, "samples": {(table, column, kind): [masked]}} over every row
    of every text column of every table but the vocabulary and the audit log; one query per table and
    partition (plus one per column whose candidates Python judges), memoised on the session."""
    key = ("privacy-scan", tuple(exclude), rows_per)
    if key in m.s.memo:
        return m.s.memo[key]
    skip = set(VOCABULARY_TABLES) | set(exclude) | {"audit_log"}
    scan = {"found": {}, "problems": [], "unjudged": [], "tables": {}, "samples": {}}
    for tname, table in sorted(m.cat.tables.items()):
        if tname in skip:
            continue
        cols = [c for c in table.columns.values() if db_family(c.type) == "text"]
        if not cols:
            continue
        rel = m.s.table(table.name)
        try:
            parts, split = _partitions(m, tname, table, rows_per)
            exprs, keys = ["COUNT(*)"], [None]
            for c in cols:
                q = m.d.quote(c.name)
                exprs.append(f"COUNT({q})")   # the values examined: an empty column shows no identifier
                keys.append((c.name, VALUES))
                for kind in detection.KINDS:
                    exprs.append(_sum(_match(m.d, kind, q)))
                    keys.append((c.name, kind))
                    if kind == "nir":
                        exprs.append(_sum(_candidate(m.d, kind, q)))
                        keys.append((c.name, "nir-candidates"))
            counts: dict = {}
            for where in parts:
                for k, n in zip(keys, m.s.rows(f"SELECT {', '.join(exprs)} {_from(rel, where)}")[0]):
                    counts[k] = counts.get(k, 0) + int(n or 0)
            examined = counts.pop(None)
            for (c, kind), n in counts.items():
                scan["found"].setdefault((tname, c), {})[kind] = n
            for c in cols:
                got = scan["found"][(tname, c.name)]
                for kind, k in detection.KINDS.items():
                    candidates = got.pop("nir-candidates", 0) if kind == "nir" else got[kind]
                    if not k.judged or not candidates:
                        continue
                    confirmed, samples, left = _judge(m, rel, parts, m.d.quote(c.name), kind, JUDGED_CAP)
                    got[kind] = (got[kind] if kind == "nir" else 0) + confirmed
                    if samples:
                        scan["samples"][(tname, c.name, kind)] = samples
                    if left:
                        why = (f"{tname}.{c.name}: more than {JUDGED_CAP} distinct values to judge for {k.label}, "
                               f"only the first {JUDGED_CAP} were")
                        scan["unjudged"].append((kind, why))
        except ObservationError as exc:
            scan["problems"].append(f"{tname}: {exc}")
            continue
        scan["tables"][tname] = {"rows_examined": examined, "statements": len(parts), "partitioned_by": split}
    m.s.memo[key] = scan
    return scan


def _rows_per(params) -> int:
    if "max_rows" in params:   # the parameter of versions that sampled large tables: its meaning changed
        raise ValueError("the identifier requirements take partition_rows (rows read per statement), not "
                         "max_rows: large tables are read whole, in partitions, never sampled")
    return int(params.get("partition_rows", PARTITION_ROWS))


def identifiers(m, params) -> Findings:
    kind = params["kind"]
    if kind not in detection.KINDS:
        raise ValueError(f"unknown identifier kind '{kind}' (known: {', '.join(detection.KINDS)})")
    scan = identifier_scan(m, tuple(params.get("exclude_tables", ())), _rows_per(params))
    # a table that could not be read concerns every kind; a column with too many candidates, its own kind
    f = Findings(problems=[*scan["problems"], *(p for k, p in scan["unjudged"] if k == kind)])
    hits, empty = {}, []
    for (t, c), kinds in sorted(scan["found"].items()):
        if not kinds[VALUES]:   # no text to examine
            empty.append(f"{t}.{c}")
            continue
        f.checked += 1
        n = kinds.get(kind, 0)
        if n:
            hits[f"{t}.{c}"] = n
            f.violation(f"{t}.{c}: {n} value{'s' if n > 1 else ''} with {KINDS[kind]}")
            judged = scan["samples"].get((t, c, kind), [])
            if kind == "nir" or not judged:   # SQL's own matches (the NIR's first number)
                col = m.d.quote(m.cat.table(t).column(c).name)
                rel = m.s.table(m.cat.table(t).name)
                sample = m.samples(f"SELECT {_extract(m.d, kind, col)} FROM {rel} WHERE {_match(m.d, kind, col)}")
                judged = [*[mask(v) for v in sample if v is not None], *judged][:SAMPLE_CAP]
            f.samples[f"{t}.{c}"] = judged
    f.measurements.update(kind=kind, columns_with_identifiers=hits, text_columns=f.checked,
                          empty_text_columns=len(empty), rows_examined=scan["tables"])
    f.unobserved = (f"the {len(empty)} text columns hold no value" if empty
                    else "the warehouse has no text column outside the vocabulary and the audit log")
    return f


# columns the CDM does not define ------------------------------------------------------------------

# a column named for a person's identity (snake_case words): a word that says it alone (prenom, nir, email,
# telephone, adresse...), or "name"/"nom" beside a word that makes it a person's (patient_name, nom_naissance),
# since nom_service or drug_name are not; "ins" and "insee" are left out (ins_date, code_insee)
_IDENTITY_WORDS = {"prenom", "prénom", "prenoms", "prénoms", "surname", "firstname", "lastname", "fullname",
                   "nir", "nss", "ssn", "email", "mail", "courriel", "phone", "telephone", "téléphone", "tel",
                   "address", "adresse"}
_NAME_OWNERS = {"patient", "person", "personne", "first", "last", "family", "given", "full", "birth", "maiden",
                "naissance", "usage", "famille", "jeune", "fille", "marital", "epouse", "époux"}


def named_as_identity(column: str) -> bool:
    words = {w for w in re.split(r"[^0-9a-zà-ÿ]+", column.lower()) if w}
    return bool(words & _IDENTITY_WORDS) or bool(words & {"name", "nom"} and words & _NAME_OWNERS)


def extra_columns(m, params) -> Findings:
    """Columns the CDM does not define (in a CDM table or in a table of their own) that hold a person's name or
    a direct identifier: by their content (the identifier scan, every kind, names included), or by their name
    when they hold values (patient_name, nir, email... whatever their type)."""
    exclude = tuple(params.get("exclude_tables", ()))
    scan = identifier_scan(m, exclude, _rows_per(params))
    skip = set(exclude) | {"audit_log"}
    f = Findings(problems=[*scan["problems"], *(p for _, p in scan["unjudged"])])
    spec, extra, columns = cdm54(), [], 0
    for tname, table in sorted(m.cat.tables.items()):
        if tname in skip:
            continue
        known = {x.name for x in spec[tname].fields} if tname in spec else set()
        columns += len(table.columns)
        extra += [(tname, c) for c in sorted(table.columns) if c not in known]
    f.checked = columns
    f.measurements.update(columns=columns, extra_columns=[f"{t}.{c}" for t, c in extra])
    for t, c in extra:
        kinds = scan["found"].get((t, c), {})
        held = [k for k in detection.KINDS if kinds.get(k)]
        for k in held:
            f.violation(f"{t}.{c}: a column the CDM does not define holds {kinds[k]} value{'s' if kinds[k] > 1 else ''} "
                        f"with {KINDS[k]}")
        col = m.cat.table(t).column(c)
        rel, q = m.s.table(m.cat.table(t).name), m.d.quote(col.name)
        try:
            if not held and db_family(col.type) == "integer":   # a NIR kept as a number
                n = int(m.s.scalar(f"SELECT {_sum(_match(m.d, 'nir', m.d.text(q)))} FROM {rel}") or 0)
                if n:
                    held = ["nir"]
                    f.violation(f"{t}.{c}: a column the CDM does not define holds {n} value{'s' if n > 1 else ''} "
                                f"with {KINDS['nir']}")
            if not held and named_as_identity(c):
                n = int(m.s.scalar(f"SELECT COUNT({q}) FROM {rel}") or 0)
                if n:
                    f.violation(f"{t}.{c}: a column the CDM does not define, named as a person's identity, holds "
                                f"{n} value{'s' if n > 1 else ''}")
        except ObservationError as exc:
            f.problems.append(f"{t}.{c}: {exc}")
    f.seen = (f"the {columns} columns of the tables examined are all defined by the CDM" if not extra else
              f"{len(extra)} columns the CDM does not define, none holds a name or a direct identifier")
    f.unobserved = "the warehouse has no table outside the audit log"
    return f
