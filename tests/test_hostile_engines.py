"""vigie against hostile inputs it opens with engines of its own (fixtures/hostile/engines.py): a warehouse file
whose views read the reviewer's files, a source tree that links outside itself or hides a password beside other
findings, FHIR packages that lie about who they are, expand a thousandfold or nest JSON 100,000 deep."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from vigie.fixtures.hostile import engines

from vigie.errors import ObservationError
from vigie.warehouse.catalogue import open_warehouse

CANARY = "CANARY-4f1e-reviewer-file"


def vigie(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)


def bundle_text(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


# --- issue 16, item 5: a warehouse file never reads the reviewer's files


@pytest.fixture(scope="module")
def duckdb_reading_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-duckdb")
    secret = folder / "reviewer-notes.txt"
    secret.write_text(f"{CANARY} line one\n{CANARY} line two\n")
    return engines.duckdb_reading_files(folder / "w.duckdb", secret), secret


def test_duckdb_views_cannot_read_local_files_into_the_bundle(duckdb_reading_files, tmp_path):
    url, _ = duckdb_reading_files
    out = tmp_path / "bundle"
    result = vigie("run", "--warehouse", url, "--profile", "omop-cdm-5.4", "--profile", "eds-privacy",
                   "--out", str(out))
    assert "Traceback" not in result.stderr and result.returncode in (1, 2), result.stderr[-2000:]
    assert CANARY not in bundle_text(out) + result.stdout + result.stderr
    by_id = {o["requirement"]: o for o in json.loads((out / "report.json").read_text())["outcomes"]}
    # the rules that read care_site's rows could not observe them: error, with the reason
    for requirement in ("OMOP-CDM-04", "OMOP-CDM-05", "OMOP-CDM-06"):
        assert by_id[requirement]["status"] == "error", by_id[requirement]
        assert "disabled by configuration" in by_id[requirement]["summary"]


def test_duckdb_session_is_locked_down(duckdb_reading_files):
    url, secret = duckdb_reading_files
    w = open_warehouse(url)
    try:
        for sql in (f"SELECT content FROM read_text('{secret}')", "SELECT * FROM note_file",
                    f"ATTACH '{secret.parent / 'other.duckdb'}' AS other", "INSTALL httpfs", "LOAD httpfs"):
            with pytest.raises(ObservationError, match="disabled"):
                w.session.rows(sql)
        with pytest.raises(ObservationError, match="locked"):
            w.session.rows("SET enable_external_access = true")
        assert w.session.scalar("SELECT COUNT(*) FROM person") == 40     # the file's own tables still read
    finally:
        w.close()
    assert not (secret.parent / "other.duckdb").exists()


def test_sqlite_views_cannot_load_extensions_nor_attach(tmp_path):
    url = engines.sqlite_loading_extension(tmp_path / "w.db", tmp_path / "evil.so")
    w = open_warehouse(url)
    try:
        with pytest.raises(ObservationError, match="unsafe use of load_extension"):
            w.session.rows("SELECT * FROM note")
        with pytest.raises(ObservationError, match="too many attached databases"):
            w.session.rows(f"ATTACH '{tmp_path / 'other.db'}' AS other")
        assert w.session.scalar("SELECT COUNT(*) FROM person") == 1
    finally:
        w.close()
    assert not (tmp_path / "other.db").exists()


# --- issue 16, item 9: a fake hl7.fhir.r4.core in the package cache


def test_a_fake_core_in_the_cache_leaves_validation_in_error(tmp_path):
    from vigie.fhirvalidation import FhirPackages
    with tarfile.open(engines.fake_core(tmp_path / "fake.tgz")) as tar:
        tar.extractall(tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1", filter="data")
    packages = FhirPackages(str(tmp_path / "cache"))
    with pytest.raises(ObservationError, match="differ from those of the official hl7.fhir.r4.core#4.0.1"):
        packages.validator()


# --- issue 16, item 6: a source tree's secrets stay out of the bundle, and its links are not followed

PASSWORD, OUTSIDE_KEY = "Hunter2-Sesame-7731", "outside-key-5512"


@pytest.fixture(scope="module")
def hostile_source(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile-source")
    engines.source_with_secret_and_links(work / "src", work / "outside")
    out = work / "bundle"
    result = vigie("run", "--source", str(work / "src"), "--profile", "source-security", "--out", str(out))
    return result, out


def test_a_password_is_in_no_evidence_of_its_file(hostile_source):
    result, out = hostile_source
    assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr[-2000:]
    text = bundle_text(out) + result.stdout
    assert PASSWORD not in text and OUTSIDE_KEY not in text
    bandit = json.loads((out / "evidence" / "bandit" / "source.json").read_text())
    results = bandit["sarif"]["runs"][0]["results"]
    neighbour = next(r for r in results if r["ruleId"] == "B311")   # the line after the password
    context = neighbour["locations"][0]["physicalLocation"]["contextRegion"]
    assert context["startLine"] <= 4 <= context["endLine"]          # its context covers the password's line
    assert context["snippet"]["text"] == "[code withheld: a secret was found in this file]"
    assert {r["ruleId"] for r in results} == {"B105", "B301", "B311", "B403"}    # .bandit's skips ignored


def test_links_out_of_the_tree_are_reported_not_followed(hostile_source):
    _, out = hostile_source
    bandit = json.loads((out / "evidence" / "bandit" / "source.json").read_text())
    semgrep = json.loads((out / "evidence" / "semgrep" / "source.json").read_text())
    outside = str(out.parent / "outside")
    expected = [f"linked.py -> {outside}/elsewhere.py", f"vendored -> {outside}"]
    assert sorted(bandit["links_out"]) == sorted(semgrep["links_out"]) == expected
    assert bandit["scanned"] == semgrep["scanned"] == ["app.py", "client.py"]     # same.py is app.py
    assert not any("elsewhere" in f["file"] or "vendored" in f["file"] for f in bandit["findings"])
    by_id = {o["requirement"]: o for o in json.loads((out / "report.json").read_text())["outcomes"]}
    assert by_id["SRC-01"]["status"] == "error" and "lead out of the source tree" in by_id["SRC-01"]["summary"]
    assert by_id["SRC-07"]["status"] == "error" and "vendored ->" in by_id["SRC-07"]["summary"]
    # a finding in what was read still fails: the one the vendor hid with .semgrepignore and `# nosemgrep`
    assert by_id["SRC-06"]["status"] == "failed" and "client.py:5" in by_id["SRC-06"]["summary"]
