"""eds-privacy on the warehouse's own engine (issue 18): identifier detection proven both ways on crafted
values (the identifier found, its look-alike left alone: UUIDs, disease eponyms, other numbers), every
NIR-shaped number of a value, names and identifiers in columns the CDM does not define, large columns
scanned by sample with the sample's size in the evidence; and vigie's own audit record never deciding a
vendor's requirement."""
import random
import re
import sqlite3
import uuid

import duckdb
import pytest
from checkcall import Outcome, conclude
from sqlalchemy.exc import OperationalError
from test_false_pass_warehouse import View, requirement
from vigie.fixtures.warehouse import build_reference

from security import test_eds_privacy
from vigie import identifiers
from vigie.warehouse import detection, privacy


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build_reference(f"duckdb:///{tmp_path_factory.mktemp('wh') / 'ref.duckdb'}", persons=60, seed=5)


# the audit log: vigie's own append ----------------------------------------------------------------------

def _poisoned(session):
    """The session as a timed-out statement left it: every write of vigie's own fails."""
    def refuse(sql, params=None):
        raise OperationalError(sql, params, Exception("Can't reconnect until invalid transaction is rolled back"))
    session.execute_unrecorded = refuse


@pytest.mark.partial_observation("privacy.audit-log")
def test_priv_audit_append_that_fails_leaves_the_audit_requirement_unverified(reference):
    """vigie's own append failing (the issue's poisoned session) says nothing of the warehouse: error with the
    reason, never failed; the same warehouse with a working session passes."""
    with View(reference) as w:
        _poisoned(w.session)
        outcome = Outcome()
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=0), w, outcome)
    assert result.status == "error", (result.status, result.summary)
    assert "the harness's own append to the audit log failed" in result.summary
    assert "Can't reconnect" in result.summary
    with View(reference) as w:
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=2), w, Outcome())
    assert result.status == "passed", result.summary


@pytest.mark.partial_observation("privacy.audit-log")
def test_priv_earlier_append_failures_are_not_a_violation(reference):
    """An append that failed earlier in the run (then the session recovered): the probe is recorded, the
    earlier gap is the harness's, so the requirement is not verified rather than failed."""
    with View(reference) as w:
        w.session.audit.append_errors, w.session.audit.last_error = 2, "statement timeout"
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=2), w, Outcome())
    assert result.status == "error" and "(failures: 2; last: statement timeout)" in result.summary, result.summary


# identifiers on crafted values, both ways -------------------------------------------------------------

def _nir(prefix13):
    return prefix13 + f"{identifiers.nir_key(prefix13):02d}"


def _wrong(prefix13):
    return prefix13 + f"{(identifiers.nir_key(prefix13) + 1) % 97:02d}"


_KEY = f"{identifiers.nir_key('1850578006084'):02d}"
FOUND = {
    "nir": [f"dossier {_wrong('2690299123456')} puis {_nir('1850575123456')}",   # a NIR after another 15 digits
            f"1 85 05 78 006 084 clé {_KEY}", f"NIR 1 85 05 78 006 084 cle {_KEY}",
            f"1 85 05 78 006 084 (clé {_KEY})", f"1850578006084 CLEF: {_KEY}", f"NIR {_nir('185052A123456')}"],
    "phone": ["+33 6 12 34 56 78", "joindre au +33 (0)6 12 34 56 78", "0033 6 12 34 56 78", "tél. 06.12.34.56.78",
              "+33612345678"],
    "email": ["jean.dupont [at] aphp [dot] fr", "écrire à jean.dupont(at)aphp.fr", "jean.dupont at aphp dot fr",
              "jeanne.doe@example.fr", "j.doe {AT} chu-lyon (dot) fr"],
    "name": ["DUPONT Jean", "vu par Mme Durand", "M. Martin rappelé", "adressé par le Dr Lefort",
             "Monsieur Girard", "Madame Sophie Lambert", "Marie-Claire Lefebvre", "LE GALL Marie-Claire",
             "syndrome de Pierre Robin chez Mme Durand"],   # an eponym beside a name: the name is found
    "address": ["domicile : 12 rue des Lilas, Lyon"],
}
LOOK_ALIKES = [
    "Pierre Robin syndrome", "syndrome de Pierre Robin", "SYNDROME DE PIERRE ROBIN", "maladie de Crohn",
    "maladie de Parkinson", "maladie d'Alzheimer", "lymphome de Hodgkin", "Charles Bonnet syndrome",
    "syndrome de Gilles de la Tourette", "maladie de Charcot-Marie-Tooth", "Thomas Hodgkin's disease",
    "uuid 3f2a1c04-0612-4a5b-9c3d-ab0612345678", "sha1 0612345678abcdef0123456789abcdef01234567",
    "0x0612345678", "commande 06123456789012", f"clé fausse 1 85 05 78 006 084 clé {(int(_KEY) + 1) % 97:02d}",
    f"deux numéros sans clé valide {_wrong('2690299123456')} et {_wrong('1850575123456')}",
    f"ref-{_nir('1850575123456')}abc", "seen at home.Then discharged", "ordonnance n° 2023-0042 renouvelée",
    "martin-pêcheur observé au jardin", "PATIENT VU EN CONSULTATION", "HTA bien contrôlée",
]


def crafted_columns():
    values = [(kind, v) for kind, vs in FOUND.items() for v in vs] + [(None, v) for v in LOOK_ALIKES]
    return [(f"c{i:02d}", kind, v) for i, (kind, v) in enumerate(values)]


@pytest.fixture(params=["duckdb", "sqlite"])
def crafted(request, tmp_path):
    """One column per crafted value (a table the CDM does not know): a finding names exactly its value."""
    cols = crafted_columns()
    ddl = f"CREATE TABLE crafted (id INTEGER, {', '.join(f'{c} VARCHAR(200)' for c, _, _ in cols)})"
    insert = f"INSERT INTO crafted VALUES (1, {', '.join('?' for _ in cols)})"
    if request.param == "duckdb":
        con = duckdb.connect(str(tmp_path / "c.duckdb"))
    else:
        con = sqlite3.connect(tmp_path / "c.db")
    con.execute(ddl)
    con.execute(insert, [v for _, _, v in cols])
    con.commit()
    con.close()
    return f"duckdb:///{tmp_path / 'c.duckdb'}" if request.param == "duckdb" else f"sqlite:///{tmp_path / 'c.db'}"


def assert_crafted_findings(url):
    cols = crafted_columns()
    with View(url) as w:
        for kind in FOUND:
            findings = privacy.identifiers(w.measures, {"kind": kind})
            flagged = {k.split(".")[1] for k in findings.measurements["columns_with_identifiers"]}
            expected = {c for c, k, _ in cols if k == kind}
            values = {c: v for c, _, v in cols}
            assert flagged == expected, (kind, {values[c] for c in expected - flagged},
                                         {values[c] for c in flagged - expected})
            assert all("*" in s for samples in findings.samples.values() for s in samples), findings.samples


def test_priv_identifiers_found_and_look_alikes_left_alone(crafted):
    assert_crafted_findings(crafted)


@pytest.mark.parametrize("value, kind", [(v, k) for k, vs in FOUND.items() for v in vs]
                         + [(v, None) for v in LOOK_ALIKES])
def test_priv_python_judgement_agrees(value, kind):
    """Python's judgement (NIR keys, eponyms) on the crafted values: the same verdicts as the warehouse scan."""
    assert {k for k in detection.KINDS if detection.confirm(k, value)} == ({kind} if kind else set())


def test_priv_random_uuids_hold_no_identifier(tmp_path):
    """10,000 random UUIDs (a Synthea-style ETL's source values): no finding of any kind. Some of them do hold
    ten digits in a row that a phone pattern without hexadecimal boundaries read as a phone number."""
    rng = random.Random(18)
    values = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(10_000)]
    assert any(re.search(r"(?:^|[^0-9])0[1-9][0-9]{8}(?:$|[^0-9])", v) for v in values)
    con = duckdb.connect(str(tmp_path / "u.duckdb"))
    con.execute("CREATE TABLE person AS SELECT CAST(i AS INTEGER) AS person_id, v AS person_source_value "
                "FROM (SELECT unnest(range(?)) AS i, unnest(CAST(? AS VARCHAR[])) AS v)", [len(values), values])
    assert con.execute("SELECT COUNT(DISTINCT person_source_value) FROM person").fetchone()[0] == 10_000
    con.close()
    with View(f"duckdb:///{tmp_path / 'u.duckdb'}") as w:
        for kind in detection.KINDS:
            findings = privacy.identifiers(w.measures, {"kind": kind})
            assert not findings.violations and findings.checked == 1, (kind, findings.violations)


def test_priv_identifiers_with_postgres_regular_expressions():
    """The same crafted values through PostgreSQL's own regular expressions (ARE, not RE2 nor Python's re)."""
    from vigie.fixtures.warehouse.postgres import connect, drop
    POSTGRES = _postgres()
    schema = f"vigie_t_{uuid.uuid4().hex[:10]}"
    cols = crafted_columns()
    try:
        with connect(POSTGRES) as con:
            con.execute(f"CREATE SCHEMA {schema}")
            con.execute(f"CREATE TABLE {schema}.crafted (id INTEGER, {', '.join(f'{c} TEXT' for c, _, _ in cols)})")
            con.execute(f"INSERT INTO {schema}.crafted VALUES (1, {', '.join('%s' for _ in cols)})",
                        [v for _, _, v in cols])
        assert_crafted_findings(f"{POSTGRES}?schema={schema}")
    finally:
        drop(POSTGRES, schema)


# large tables: read whole, in partitions of their key, never sampled ---------------------------------------

@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """1,000 notes, one in 50 with a phone number and the last one with a NULL key holding an e-mail; a table
    without a key, 300 rows, one with an e-mail."""
    path = tmp_path_factory.mktemp("large") / "l.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE note (note_id INTEGER, note_text VARCHAR)")
    con.execute("INSERT INTO note SELECT i, CASE WHEN i % 50 = 0 THEN 'rappeler au 06 12 34 56 78' "
                "ELSE 'consultation de suivi' END FROM range(1, 1000) t(i)")
    con.execute("INSERT INTO note VALUES (NULL, 'ecrire a c.d@example.fr')")
    con.execute("CREATE TABLE extract_notes (txt VARCHAR)")
    con.execute("INSERT INTO extract_notes SELECT CASE WHEN i = 250 THEN 'a.b@example.fr' ELSE 'rien' END "
                "FROM range(0, 300) t(i)")
    con.close()
    return f"duckdb:///{path}"


def test_priv_large_tables_are_read_whole_in_partitions(large):
    """Partitions of 100 rows: every row counted, a NULL key and a table without a key included; the counts are
    those of one statement over the whole table."""
    with View(large) as w:
        phone = privacy.identifiers(w.measures, {"kind": "phone", "partition_rows": 100})
        email = privacy.identifiers(w.measures, {"kind": "email", "partition_rows": 100})
    with View(large) as w:
        whole = privacy.identifiers(w.measures, {"kind": "phone"})
        whole_email = privacy.identifiers(w.measures, {"kind": "email"})
    rows = phone.measurements["rows_examined"]
    assert rows["note"] == {"rows_examined": 1000, "statements": 11, "partitioned_by": "note_id"}
    assert rows["extract_notes"] == {"rows_examined": 300, "statements": 1, "partitioned_by": ""}
    assert whole.measurements["rows_examined"]["note"] == {"rows_examined": 1000, "statements": 1,
                                                           "partitioned_by": ""}
    assert phone.violations == whole.violations == ["note.note_text: 19 values with a French phone number"]
    # the e-mail of the row whose key is NULL, and the one of the table without a key: none escapes
    assert email.violations == whole_email.violations == [
        "extract_notes.txt: 1 value with an e-mail address", "note.note_text: 1 value with an e-mail address"]


@pytest.mark.partial_observation("privacy.identifiers")
def test_priv_a_partition_that_cannot_be_read_leaves_the_scan_unverified(large, monkeypatch):
    """One partition of the note table fails (a time limit, a lost connection): the rows read are not the
    table, so the requirement is not passed, and the table is named."""
    from vigie.errors import ObservationError
    with View(large) as w:
        rows = w.session.rows

        def failing(sql, *a, **k):
            if '"note_id" >= 501 AND' in sql:
                raise ObservationError("statement cancelled after 300 s")
            return rows(sql, *a, **k)
        monkeypatch.setattr(w.session, "rows", failing)
        found = privacy.identifiers(w.measures, {"kind": "email", "partition_rows": 100})
    assert found.problems == ["note: statement cancelled after 300 s"]
    assert found.violations == ["extract_notes.txt: 1 value with an e-mail address"]
    assert "note" not in found.measurements["rows_examined"]


def test_priv_max_rows_of_sampling_versions_is_refused(large):
    """max_rows meant a sample: a profile still giving it is told, not silently read another way."""
    with View(large) as w, pytest.raises(ValueError, match="partition_rows"):
        privacy.identifiers(w.measures, {"kind": "phone", "max_rows": 100})


# columns the CDM does not define (EDS-PRIV-14, SHALL) -------------------------------------------------------

def _extra(url, seen=None):
    with View(url) as w:
        return conclude(test_eds_privacy.test_no_identity_in_columns_outside_the_cdm, requirement(), w,
                        seen or Outcome())


def test_priv_clean_reference_has_no_identity_outside_the_cdm(reference):
    result = _extra(reference)
    assert result.status == "passed" and "are all defined by the CDM" in result.summary, result.summary


def test_priv_names_in_a_column_outside_the_cdm_fail_the_shall(tmp_path):
    url = build_reference(f"duckdb:///{tmp_path / 'x.duckdb'}", persons=40, seed=5, flaws=["names-in-extra-column"])
    result = _extra(url)
    assert result.status == "failed", result.summary
    assert result.summary == "person.patient_name: a column the CDM does not define holds 40 values with a person's name"


def test_priv_identifiers_by_name_or_as_numbers_outside_the_cdm(tmp_path):
    """A table of its own: a NIR kept as a BIGINT, a column named for the patient's family name holding
    pseudonyms that no pattern reads as a name, a harmless extra column."""
    path = tmp_path / "t.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE person (person_id INTEGER, year_of_birth INTEGER, site_code VARCHAR)")
    con.execute("INSERT INTO person VALUES (1, 1950, 'S1'), (2, 1960, 'S2')")
    con.execute("CREATE TABLE identite (id INTEGER, nir BIGINT, nom_naissance VARCHAR, commentaire VARCHAR)")
    con.execute(f"INSERT INTO identite VALUES (1, {_nir('1850575123456')}, 'X7Q', 'rien'), (2, NULL, 'Z9K', NULL)")
    con.close()
    seen = Outcome()
    result = _extra(f"duckdb:///{path}", seen)
    assert result.status == "failed"
    assert seen.measurements["extra_columns"] == ["identite.commentaire", "identite.id", "identite.nir",
                                                    "identite.nom_naissance", "person.site_code"]
    assert set(seen.messages) >= {
        "identite.nir: a column the CDM does not define holds 1 value with a NIR/INS number with a valid key",
        "identite.nom_naissance: a column the CDM does not define, named as a person's identity, holds 2 values"}
    assert not any("site_code" in d or "commentaire" in d or "identite.id" in d for d in seen.messages)


@pytest.mark.partial_observation("privacy.extra-columns")
def test_priv_no_table_leaves_the_extra_columns_unverified(tmp_path):
    path = tmp_path / "e.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE audit_log (logged_at TIMESTAMP, db_user VARCHAR, statement VARCHAR)")
    con.close()
    result = _extra(f"duckdb:///{path}")
    assert result.status == "error" and "no table outside the audit log" in result.summary, result.summary


def _postgres():
    from vigie.fixtures.warehouse.testing import POSTGRES, postgres_reachable
    why = postgres_reachable()
    if why:   # CI starts PostgreSQL (.ci/run): its absence is a failure, not a skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {why}")
    return POSTGRES


@pytest.mark.partial_observation("privacy.audit-log")
def test_priv_a_log_the_harness_does_not_write_and_that_keeps_no_probe_fails():
    """On PostgreSQL without the audit function the log is the server's to keep (mode "server": vigie appends
    nothing): a log that never records the probe fails, whatever vigie's own writes."""
    from vigie.fixtures.warehouse.postgres import connect, drop
    pg, schema = _postgres(), f"vigie_t_{uuid.uuid4().hex[:10]}"
    try:
        with connect(pg) as con:
            con.execute(f"CREATE SCHEMA {schema}")
            con.execute(f"CREATE TABLE {schema}.person (person_id INTEGER)")
            con.execute(f"CREATE TABLE {schema}.audit_log (logged_at TIMESTAMP, db_user TEXT, statement TEXT)")
        outcome = Outcome()
        with View(f"{pg}?schema={schema}") as w:
            assert w.session.audit.mode == "server"
            result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=0), w, outcome)
        assert result.status == "failed" and "probe query was not recorded" in result.summary, result.summary
    finally:
        drop(pg, schema)


@pytest.mark.parametrize("column, identity", [
    ("patient_name", True), ("nom_naissance", True), ("NOM_PATIENT", True), ("prenom", True), ("nir", True),
    ("ins_nir", True), ("email_contact", True), ("tel_mobile", True), ("adresse", True), ("last_name", True),
    ("drug_name", False), ("nom_service", False), ("ins_date", False), ("code_insee", False), ("site_code", False),
    ("hotel", False), ("telemetry", False)])
def test_priv_columns_named_for_a_persons_identity(column, identity):
    assert privacy.named_as_identity(column) is identity


@pytest.mark.partial_observation("privacy.identifiers")
def test_priv_candidates_beyond_what_python_judges_leave_the_requirement_unverified(tmp_path, monkeypatch):
    """More distinct candidate values than Python judges: the values not judged may hold names, so no pass."""
    from vigie.warehouse import identifierscan
    monkeypatch.setattr(identifierscan, "JUDGED_CAP", 2)
    path = tmp_path / "j.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE note (note_id INTEGER, note_text VARCHAR)")
    con.execute("INSERT INTO note VALUES (1, 'Pierre Robin syndrome'), (2, 'syndrome de Pierre Robin'), "
                "(3, 'PIERRE ROBIN')")
    con.close()
    with View(f"duckdb:///{path}") as w:
        result = conclude(test_eds_privacy.test_no_direct_identifiers, requirement(kind="name"), w, Outcome())
    assert result.status == "error", result.summary
    assert "more than 2 distinct values to judge for a person's name, only the first 2 were" in result.summary
