"""False passes of the warehouse and source checks (issue 12): each check is fed a missing or partial
observation (an empty table, a missing table, a vocabulary without ancestry, a scan of no file...) and found
not to pass; the routes end to end: an emptied reference warehouse is not conformant to omop-dq, eds-privacy or
omop-cdm-5.4, a source tree with no Python file does not pass source.bandit. The clean reference systems still
pass (tests/test_warehouse.py, tests/test_security_source.py, the flaw matrix)."""
import json
import subprocess
import sys
import uuid
from types import SimpleNamespace

import duckdb
import pytest
from checkcall import Outcome, conclude
from vigie.fixtures.warehouse import build_reference

from conformance import test_omop_dq, test_omop_schema
from security import test_eds_privacy, test_source
from vigie.campaign import Target
from vigie.source import DependencyAudit, observe_bandit, observe_pip_audit, observe_sbom, observe_semgrep
from vigie.warehouse import dq
from vigie.warehouse.catalogue import open_warehouse
from vigie.warehouse.cdm import VOCABULARY_TABLES, cdm54
from vigie.warehouse.measures import measures_of

NOT_PASSED = {"failed", "error", "not_tested"}
WAREHOUSE_PROFILES = ["--profile", "omop-cdm-5.4", "--profile", "omop-dq", "--profile", "eds-privacy"]


def vigie(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def requirement(**params):
    return SimpleNamespace(params=params)


# warehouses ---------------------------------------------------------------------------------------

def _duckdb(url):
    return duckdb.connect(url.split(":///", 1)[1])


def _build(path, *statements, persons=40, flaws=()):
    url = build_reference(f"duckdb:///{path}", persons=persons, seed=5, flaws=flaws)
    con = _duckdb(url)
    try:
        for sql in statements:
            con.execute(sql)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return url


DATA_TABLES = [t for t in cdm54() if t not in VOCABULARY_TABLES]


@pytest.fixture(scope="module")
def emptied(tmp_path_factory):
    """The reference warehouse with every CDM data table emptied (the vocabulary and the audit log kept)."""
    return _build(tmp_path_factory.mktemp("wh") / "emptied.duckdb", *(f"DELETE FROM {t}" for t in DATA_TABLES))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build_reference(f"duckdb:///{tmp_path_factory.mktemp('wh') / 'ref.duckdb'}", persons=60, seed=5)


class View:
    """What the `warehouse` fixture gives a check: the shared session and its measures."""

    def __init__(self, url):
        self.observation = open_warehouse(url)
        self.session, self.catalogue = self.observation.session, self.observation.catalogue
        self.measures = measures_of(self.session, self.catalogue)
        self.target_id = "warehouse"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.observation.close()


def dq_outcome(url, name):
    with View(url) as w:
        return conclude(test_omop_dq.test_dq_check_type, requirement(check=name), w, Outcome())


# omop.dq --------------------------------------------------------------------------------------------

@pytest.mark.partial_observation("omop.dq")
def test_dq_on_empty_tables_is_not_verified(emptied):
    """Every table empty: DataQualityDashboard marks each check not applicable, which is no evidence of quality.
    Only the checks of structure (tables and fields exist) pass: they observed the structure."""
    with View(emptied) as w:
        outcomes = {name: conclude(test_omop_dq.test_dq_check_type, requirement(check=name), w, Outcome())
                    for name in dq.TYPES}
    structure = {"cdmTable", "cdmField"}
    assert {n for n, o in outcomes.items() if o.status == "passed"} == structure, \
        {n: (o.status, o.summary) for n, o in outcomes.items()}
    for name in set(dq.TYPES) - structure:
        assert outcomes[name].status == "error", (name, outcomes[name].summary)
    assert "has rows to examine" in outcomes["isRequired"].summary and "empty" in outcomes["isRequired"].summary
    assert "empty table: person" in outcomes["measurePersonCompleteness"].summary


@pytest.mark.partial_observation("omop.dq")
def test_dq_with_no_person_is_not_verified(tmp_path):
    """Persons removed, the other tables kept: completeness per person cannot be measured (DataQualityDashboard
    would pass it on 0 of 0), and the tables pointing to persons fail isForeignKey."""
    url = _build(tmp_path / "nobody.duckdb", "DELETE FROM person")
    assert dq_outcome(url, "measurePersonCompleteness").status == "error"
    assert dq_outcome(url, "isForeignKey").status == "failed"


@pytest.mark.partial_observation("omop.dq")
def test_dq_on_a_missing_required_table_is_not_verified(tmp_path):
    """observation_period is required by the CDM: its absence fails cdmTable and leaves its own checks unverified
    (not 'not applicable'); an optional table's absence (note_nlp) is a ground for not applicable."""
    url = _build(tmp_path / "noop.duckdb", "DROP TABLE observation_period", "DROP TABLE note_nlp")
    assert dq_outcome(url, "cdmTable").status == "failed"
    overlap = dq_outcome(url, "measureObservationPeriodOverlap")
    assert overlap.status == "error" and "the CDM requires it" in overlap.summary
    with View(url) as w:
        results = {r.check.id: r for r in dq.run_checks(w.measures)}
    assert results["field_isrequired_note_nlp_note_nlp_id"].status == "not_applicable"
    assert results["field_isrequired_note_nlp_note_nlp_id"].ground == "missing"
    assert results["field_isrequired_observation_period_person_id"].status == "error"


@pytest.mark.partial_observation("omop.dq")
def test_dq_without_the_vocabulary_ancestry_is_not_verified(tmp_path):
    """The gender checks follow concept_ancestor: without it they would find no record to check and say
    'not applicable' (as DataQualityDashboard does); the clean reference carries the ancestry."""
    url = _build(tmp_path / "noancestry.duckdb", "DELETE FROM concept_ancestor")
    gender = dq_outcome(url, "plausibleGenderUseDescendants")
    assert gender.status == "error" and "concept_ancestor holds none" in gender.summary


@pytest.mark.partial_observation("omop.dq")
def test_dq_concept_attributes_of_unknown_concepts_are_not_verified(tmp_path):
    """Concepts the concept table lacks have no domain, class or standard status to read: those checks must not
    pass on the concepts that happen to be there."""
    url = _build(tmp_path / "noconcepts.duckdb", "DELETE FROM concept WHERE concept_id = 1503297")   # metformin
    for name in ("fkDomain", "isStandardValidConcept"):
        result = dq_outcome(url, name)
        assert result.status == "error" and "not in the concept table" in result.summary, (name, result.summary)
    assert dq_outcome(url, "isForeignKey").status == "failed"


@pytest.mark.partial_observation("omop.dq")
def test_dq_check_type_not_implemented_is_not_verified(reference, monkeypatch):
    """A check type of the catalogue that vigie cannot evaluate is unverified, never not applicable."""
    monkeypatch.setitem(dq.TYPES, "newCheckType", ("FIELD", "Plausibility", "", "Verification", "characterization"))
    monkeypatch.setitem(dq.DESCRIPTIONS, "newCheckType", "values of {table}.{field}")
    new = dq.DqCheck("FIELD", "newCheckType", "person", "year_of_birth")
    monkeypatch.setattr(dq, "_all_checks", lambda: (new,))
    result = dq_outcome(reference, "newCheckType")
    assert result.status == "error" and "vigie does not implement the check type newCheckType" in result.summary


def test_dq_clean_reference_gender_checks_find_no_record(reference):
    """The other way: with its ancestry, the clean reference's gender checks apply to rows that exist and find
    none of the concepts (not applicable on an observed ground), and a populated check type passes."""
    gender = dq_outcome(reference, "plausibleGenderUseDescendants")
    assert gender.status == "not_applicable" and "no record of a descendant of concept" in gender.summary
    required = dq_outcome(reference, "isRequired")
    assert required.status == "passed" and "on tables without rows" in required.summary


# omop.structure -------------------------------------------------------------------------------------

@pytest.mark.partial_observation("omop.structure")
def test_structure_rules_on_empty_tables_are_not_verified(emptied, reference):
    """Required values, keys and references examine rows: on empty tables they examined nothing. The rules on
    the structure itself (tables, fields, types) observed it and pass."""
    with View(emptied) as w:
        outcomes = {rule: conclude(test_omop_schema.test_structure, requirement(rule=rule), w, Outcome())
                    for rule in ("tables", "fields", "types", "required", "primary-keys", "foreign-keys")}
    assert {r: o.status for r, o in outcomes.items()} == {
        "tables": "passed", "fields": "passed", "types": "passed",
        "required": "error", "primary-keys": "error", "foreign-keys": "error"}
    assert "the data tables hold no rows" in outcomes["required"].summary
    with View(reference) as w:
        clean = conclude(test_omop_schema.test_structure, requirement(rule="required"), w, Outcome())
    assert clean.status == "passed"


@pytest.mark.partial_observation("omop.structure")
def test_structure_rule_on_no_table_is_not_verified(reference):
    with View(reference) as w:
        result = conclude(test_omop_schema.test_structure, requirement(rule="tables", tables=["no_such_table"]), w,
                          Outcome())
    assert result.status == "error" and "nothing was observed" in result.summary


# eds-privacy ----------------------------------------------------------------------------------------

def privacy_outcome(url, check, recorder=None, **params):
    with View(url) as w:
        return conclude(check, requirement(**params), w, recorder or Outcome())


QI = {"table": "person", "quasi_identifiers": ["year_of_birth", "gender_concept_id", "location_id"]}


@pytest.mark.partial_observation("privacy.identifiers", "privacy.k-anonymity", "privacy.small-cells")
def test_privacy_on_an_empty_warehouse_is_not_verified(emptied):
    """No person and no text: there is nobody whose anonymity, and no text whose identifiers, were observed."""
    result = privacy_outcome(emptied, test_eds_privacy.test_no_direct_identifiers, kind="nir")
    assert result.status == "error" and "hold no value" in result.summary, result.summary
    k = privacy_outcome(emptied, test_eds_privacy.test_k_anonymity, **QI, k=5)
    assert k.status == "error" and "person has no rows" in k.summary, k.summary
    cells = privacy_outcome(emptied, test_eds_privacy.test_small_cells, **QI, threshold=11)
    assert cells.status == "error"


@pytest.mark.partial_observation("privacy.identifiers")
def test_identifiers_count_only_columns_with_text(tmp_path, reference):
    """Two text columns emptied, the rest kept: the scan still passes, but on the columns that held text only
    (the emptied ones are not counted as examined)."""
    url = _build(tmp_path / "notext.duckdb", "UPDATE person SET person_source_value = NULL, gender_source_value = NULL")
    seen, seen_clean = Outcome(), Outcome()
    emptied = privacy_outcome(url, test_eds_privacy.test_no_direct_identifiers, seen, kind="email")
    clean = privacy_outcome(reference, test_eds_privacy.test_no_direct_identifiers, seen_clean, kind="email")
    assert clean.status == emptied.status == "passed"
    assert seen.measurements["text_columns"] == seen_clean.measurements["text_columns"] - 2
    assert seen.measurements["empty_text_columns"] == seen_clean.measurements["empty_text_columns"] + 2
    assert f"{seen.measurements['text_columns']} text columns checked" in emptied.summary


@pytest.mark.partial_observation("privacy.audit-log")
def test_audit_log_that_keeps_no_probe_does_not_pass(tmp_path):
    """An audit_log that records nothing (a view that is always empty): on DuckDB the harness appends to it
    itself, and that append fails; the harness's own write failing decides nothing (issue 18), so the
    requirement is not verified, never passed. A log that the harness does not write and that keeps no probe
    fails (tests/test_warehouse_privacy.py, on PostgreSQL)."""
    url = _build(tmp_path / "deaf.duckdb", "DROP TABLE audit_log",
                 "CREATE VIEW audit_log AS SELECT TIMESTAMP '2020-01-01' AS logged_at, 'etl' AS db_user, "
                 "'x' AS statement WHERE false")
    outcome = Outcome()
    with View(url) as w:
        result = conclude(test_eds_privacy.test_audit_log_records_the_harness, requirement(wait_s=0), w, outcome)
    assert result.status == "error" and "the harness's own append to the audit log failed" in result.summary
    no_audit = _build(tmp_path / "none.duckdb", flaws=["no-audit"])
    assert privacy_outcome(no_audit, test_eds_privacy.test_audit_log_records_the_harness).status == "failed"


def test_audit_log_pass_says_what_it_saw(reference):
    result = privacy_outcome(reference, test_eds_privacy.test_audit_log_records_the_harness, wait_s=2)
    assert result.status == "passed" and "recorded the harness's probe query, under 'vigie'" in result.summary


def _roles_warehouse(rows_of_pg_roles=(), audit=None):
    """A warehouse on an engine with roles, as far as the privilege rules see it."""
    session = SimpleNamespace(audit=audit, backend="postgresql", schema="cdm", rows=lambda sql: list(rows_of_pg_roles))
    dialect = SimpleNamespace(has_roles=True, literal=lambda x: f"'{x}'")
    return SimpleNamespace(measures=SimpleNamespace(s=session, d=dialect))


@pytest.mark.partial_observation("privacy.audit-immutable")
def test_audit_immutability_without_an_audit_log_is_not_verified():
    """On an engine with roles but no audit log, there are no rights on it to observe: not verified, never
    'not applicable' (that is reserved to engines without roles, tests/test_warehouse.py)."""
    result = conclude(test_eds_privacy.test_audit_log_immutable, requirement(), _roles_warehouse(), Outcome())
    assert result.status == "error" and "no audit log" in result.summary


@pytest.mark.partial_observation("privacy.least-privilege")
def test_least_privilege_without_the_role_attributes_is_not_verified():
    """pg_roles shows nothing of the harness's role: its privileges were not observed."""
    result = conclude(test_eds_privacy.test_least_privilege, requirement(), _roles_warehouse(), Outcome())
    assert result.status == "error" and "pg_roles" in result.summary


def test_no_audit_log_in_postgres_leaves_immutability_unverified(tmp_path):
    """The same on the machine's PostgreSQL: the reference warehouse without its audit log."""
    from vigie.fixtures.warehouse.postgres import drop
    from vigie.fixtures.warehouse.testing import POSTGRES, postgres_reachable
    why = postgres_reachable()
    if why:   # CI starts PostgreSQL (.ci/run): its absence is a failure, not a skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {why}")
    schema = f"vigie_t_{uuid.uuid4().hex[:10]}"
    try:
        reader = build_reference(f"{POSTGRES}?schema={schema}", persons=30, flaws=["no-audit"])
        out = tmp_path / "bundle"
        vigie("run", "--warehouse", reader, "--profile", "eds-privacy", "--out", str(out))
        report = json.loads((out / "report.json").read_text())
        by_id = {o["requirement"]: o for o in report["outcomes"]}
        assert by_id["EDS-PRIV-08"]["status"] == "failed"
        assert by_id["EDS-PRIV-09"]["status"] == "error" and "no audit log" in by_id["EDS-PRIV-09"]["summary"]
        assert by_id["EDS-PRIV-10"]["status"] == "passed"
    finally:
        drop(POSTGRES, schema)


# the routes, end to end -----------------------------------------------------------------------------

def test_an_emptied_warehouse_is_not_conformant(emptied, tmp_path):
    """Every data table truncated: nothing about the data was observed, so neither its quality, its structure's
    integrity nor its pseudonymisation can be conformant."""
    out = tmp_path / "bundle"
    result = vigie("run", "--warehouse", emptied, *WAREHOUSE_PROFILES, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    verdicts = {p["id"]: p["verdict"] for p in report["profiles"]}
    assert verdicts == {"omop-cdm-5.4": "incomplete", "omop-dq": "incomplete", "eds-privacy": "incomplete"}, \
        [(o["requirement"], o["status"], o["summary"]) for o in report["outcomes"]]
    assert report["verdict"] == "incomplete" and result.returncode == 2
    passed = {o["requirement"] for o in report["outcomes"] if o["status"] == "passed"}
    # what the catalogue shows without rows: the structure, and that no column lies outside the CDM (EDS-PRIV-14)
    assert passed == {"OMOP-CDM-01", "OMOP-CDM-02", "OMOP-CDM-03", "OMOP-DQ-01", "OMOP-DQ-05", "EDS-PRIV-08",
                      "EDS-PRIV-14"}


# source-security ------------------------------------------------------------------------------------

def source_tree(tmp_path, files: dict):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return Target(id="src", kind="source", url=str(tmp_path))


SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
BROKEN = "def f(:\n    return\n"
BANDIT = requirement(min_severity="HIGH", min_confidence="HIGH")


def bandit_outcome(target):
    return conclude(test_source.test_no_bandit_finding, BANDIT, {"bandit": observe_bandit(target, None)}.get,
                    Outcome())


@pytest.mark.partial_observation("source.bandit")
def test_bandit_on_no_python_file_is_not_verified(tmp_path):
    result = bandit_outcome(source_tree(tmp_path, {"README.md": "# cabinet\n", "app.js": "eval(x)\n"}))
    assert result.status == "error" and "read no Python file" in result.summary


@pytest.mark.partial_observation("source.bandit")
def test_bandit_on_a_file_it_cannot_parse_is_not_verified(tmp_path):
    """A file bandit cannot parse is not analysed; a finding elsewhere still fails."""
    result = bandit_outcome(source_tree(tmp_path / "a", {"pkg/ok.py": "x = 1\n", "pkg/broken.py": BROKEN}))
    assert result.status == "error" and "pkg/broken.py" in result.summary and "1 of 2" in result.summary
    result = bandit_outcome(source_tree(tmp_path / "b", {"pkg/run.py": SHELL, "pkg/broken.py": BROKEN}))
    assert result.status == "failed" and "B602" in result.summary
    result = bandit_outcome(source_tree(tmp_path / "c", {"pkg/ok.py": "x = 1\n"}))
    assert result.status == "passed" and "in 1 Python files" in result.summary


@pytest.mark.partial_observation("source.semgrep")
def test_semgrep_on_no_file_or_a_partly_parsed_file_is_not_verified(tmp_path):
    def outcome(target):
        return conclude(test_source.test_no_semgrep_finding, requirement(min_severity="ERROR"),
                        {"semgrep": observe_semgrep(target, None)}.get, Outcome())
    result = outcome(source_tree(tmp_path / "a", {"README.md": "# cabinet\n"}))
    assert result.status == "error" and "read no Python file" in result.summary
    result = outcome(source_tree(tmp_path / "b", {"pkg/ok.py": "x = 1\n", "pkg/broken.py": "def f(:\n  x = \n"}))
    assert result.status == "error" and "pkg/broken.py" in result.summary


CDX = '{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1%s}'


def sbom_outcome(target):
    return conclude(test_source.test_sbom_present, requirement(), {"sbom": observe_sbom(target, None)}.get, Outcome())


@pytest.mark.partial_observation("source.sbom")
def test_an_sbom_that_lists_nothing_does_not_pass(tmp_path):
    result = sbom_outcome(source_tree(tmp_path / "a", {"bom.json": CDX % ', "components": []'}))
    assert result.status == "failed" and "lists nothing" in result.summary


@pytest.mark.partial_observation("source.sbom")
def test_an_sbom_without_the_pinned_dependencies_does_not_pass(tmp_path):
    subject = ', "metadata": {"component": {"type": "application", "name": "cabinet", "version": "1"}}'
    listed = ', "components": [{"type": "library", "name": "Requests", "version": "2.32.3"}]'
    partial = source_tree(tmp_path / "a", {"bom.json": CDX % subject, "requirements.txt": "requests==2.32.3\n"})
    result = sbom_outcome(partial)
    assert result.status == "failed" and "omits 1" in result.summary and "requests" in result.summary
    whole = source_tree(tmp_path / "b", {"bom.json": CDX % (subject + listed),
                                          "requirements.txt": "requests==2.32.3\n"})
    assert sbom_outcome(whole).status == "passed"


def dependencies_outcome(audit):
    return conclude(test_source.test_no_known_vulnerable_dependency, requirement(), {"pip-audit": audit}.get,
                    Outcome())


@pytest.mark.partial_observation("source.dependencies")
def test_dependencies_pip_audit_did_not_audit_are_not_verified():
    """Requirement lines from which pip-audit audited nothing (an include, an editable path): not verified."""
    audit = DependencyAudit(["requirements.txt"], 1, [], unaudited=["requirements.txt"])
    result = dependencies_outcome(audit)
    assert result.status == "error" and "audited no dependency of requirements.txt" in result.summary


@pytest.mark.partial_observation("source.dependencies")
def test_nothing_pinned_passes_only_when_the_code_imports_nothing_third_party(tmp_path):
    """No requirements file pins anything: a pass needs the code to import only the standard library and its
    own modules (observed without the network: pip-audit has nothing to run)."""
    cases = {
        "imports": ({"app/main.py": "import requests\nfrom app import util\n", "app/util.py": "import os\n"},
                    "error", "imports requests"),
        "pyproject": ({"pyproject.toml": "[project]\nname = 'x'\ndependencies = ['flask']\n", "x.py": "import os\n"},
                      "error", "pyproject.toml"),
        "unparsable": ({"requirements.txt": "# none\n", "x.py": BROKEN}, "error", "could not be parsed"),
        "nothing": ({"README.md": "docs\n"}, "not_applicable", "no Python file"),
        "stdlib": ({"requirements.txt": "# none\n", "app/main.py": "import json\nfrom . import util\n",
                    "app/util.py": "from app.main import x\n"}, "passed", "import only the standard library"),
    }
    for name, (files, status, words) in cases.items():
        audit = observe_pip_audit(source_tree(tmp_path / name, files), None)
        result = dependencies_outcome(audit)
        assert result.status == status and words in result.summary, (name, result.status, result.summary)


def test_a_tree_without_python_does_not_pass_source_bandit(tmp_path):
    """The route end to end: `vigie run --source` on a tree of JavaScript and documentation."""
    tree = tmp_path / "tree"
    source_tree(tree, {"README.md": "# cabinet\n", "web/app.js": "document.write(location.hash)\n"})
    out = tmp_path / "bundle"
    result = vigie("run", "--source", str(tree), "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    status = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert status["SRC-01"] == status["SRC-02"] == status["SRC-03"] == "error", status
    assert status["SRC-06"] == status["SRC-07"] == "error" and status["SRC-04"] == "failed"
    assert status["SRC-05"] == "not_applicable"
    assert report["verdict"] != "conformant" and result.returncode != 0
