"""The suite against the reference practice system, end to end, through the command line.

The flaw matrix is how the suite proves its checks: each flaw fails exactly its requirements, and the
clean system fails none.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import practice_process
from french import english_sentences
from vigie.fixtures.practice import FLAWS
from vigie.fixtures.practice.cda import CDA_FLAWS
from vigie.fixtures.warehouse import FLAWS as WAREHOUSE_FLAWS
from vigie.fixtures.warehouse import NEEDS_ROLES

SCHEMA = json.loads((Path(__file__).parent.parent / "vigie/schema/report.schema.json").read_text())

# flaw → the requirements it must fail (and no other); run → the flaws that share one demo
MATRIX = yaml.safe_load((Path(__file__).parent / "flaw_matrix.yaml").read_text())
FLAW_MATRIX = {flaw: set(fails) for flaw, fails in MATRIX["practice"].items()}
WAREHOUSE_MATRIX = {flaw: set(fails) for flaw, fails in MATRIX["warehouse"].items()}
RUNS, WAREHOUSE_RUNS = MATRIX["runs"]["practice"], MATRIX["runs"]["warehouse"]


def vigie(*args, timeout=240, **kwargs):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)


# The flaw matrices run vigie with Python's -OO: every assert stripped, docstrings too. The expected failures
# were set by runs without it, so the same outcomes under -OO prove that no verdict rests on an assert.
def optimized() -> dict:
    return {**os.environ, "PYTHONOPTIMIZE": "2"}


def load_report(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, SCHEMA)
    return report


@pytest.fixture(scope="module")
def clean_demo(tmp_path_factory):
    """`vigie demo` as the README runs it: no options, the bundle under ./reports/<run-id>/."""
    cwd = tmp_path_factory.mktemp("demo")
    result = vigie("demo", cwd=cwd)
    bundles = list((cwd / "reports").iterdir())
    assert len(bundles) == 1, result.stdout + result.stderr
    return result, bundles[0]


# FR Core 2.2.0 names packages that no registry this machine reaches publishes (hl7.fhir.uv.extensions.r4
# 5.2.0 for patient-birthPlace, ans.fr.terminologies 1.7.0 for the INSEE codes its required bindings use):
# without them the reference patients cannot be judged whole, and these requirements are `error`, naming them
FRCORE_DEPENDENCIES = (("hl7.fhir.uv.extensions.r4", "5.2.0"), ("ans.fr.terminologies", "1.7.0"))
NEEDS_FRCORE_DEPENDENCIES = {"FR-CORE-01", "FR-CORE-02", "FHIR-REST-16"}


def unjudgeable_here() -> set[str]:
    """The requirements that end `error` on the clean system of this machine, for lack of FR Core's
    dependencies in the package cache (the tests' cache holds what ../shared/data has)."""
    from vigie.fhir import PackageCache
    cache = PackageCache(os.environ.get("FHIR_PACKAGE_CACHE") or None)
    missing = [f"{n}#{v}" for n, v in FRCORE_DEPENDENCIES if cache.get(n, v) is None]
    return NEEDS_FRCORE_DEPENDENCIES if missing else set()


def assert_unjudgeable_says_why(report: dict) -> None:
    for o in report["outcomes"]:
        if o["requirement"] in unjudgeable_here() and o["status"] == "error":
            assert "not loaded" in o["summary"] and "vigie packages add" in o["summary"], o["summary"]


def test_clean_demo_is_conformant(clean_demo):
    """The clean reference systems fail nothing and leave nothing unverified but what cannot be verified here:
    the attestations no software can check (eds-privacy's SHOULDs: retention, HDS hosting, encryption at
    rest), which keep that profile conformant with reservations, and the FR Core validations that need
    packages this machine cannot get, which leave fhir-r4-rest and fr-core incomplete: not tested and not
    judged are never counted as passed."""
    result, out = clean_demo
    report = load_report(out)
    bad = [(o["requirement"], o["status"], o["summary"]) for o in report["outcomes"]
           if o["status"] not in ("passed", "not_applicable")
           and not (o["status"] == "not_tested" and o["check"] == "attestation" and o["level"] != "SHALL")
           and not (o["status"] == "error" and o["requirement"] in unjudgeable_here())]
    assert not bad, bad
    assert_unjudgeable_says_why(report)
    incomplete = {"fhir-r4-rest", "fr-core"} if unjudgeable_here() else set()
    assert {p["id"]: p["verdict"] for p in report["profiles"] if p["verdict"] != "conformant"} == \
        {"eds-privacy": "conformant-with-reservations", **dict.fromkeys(incomplete, "incomplete")}
    expected = "incomplete" if incomplete else "conformant-with-reservations"
    assert report["verdict"] == expected and result.returncode == (2 if incomplete else 0), result.stdout[-3000:]
    assert f"overall verdict: {expected}" in result.stdout and "report.html" in result.stdout


def test_demo_covers_every_area_and_every_requirement(clean_demo):
    _, out = clean_demo
    report = load_report(out)
    checks = {o["check"].split(".")[0] for o in report["outcomes"]}
    assert {"fhir", "http", "tls", "load", "omop", "privacy"} <= checks
    profiles = {p["id"]: p for p in report["profiles"]}
    assert {"fhir-r4-rest", "http-hardening", "anssi-tls", "load-baseline", "omop-cdm-5.4", "omop-dq",
            "eds-privacy"} <= set(profiles)
    for profile_id in profiles:
        doc = yaml.safe_load((Path(__file__).parent.parent / "profiles" / f"{profile_id}.yaml").read_text())
        expected = {r["id"] for r in doc["requirements"]}
        assert expected == {o["requirement"] for o in report["outcomes"] if o["profile"] == profile_id}


def test_bundle_files(clean_demo):
    _, out = clean_demo
    report = load_report(out)
    packages = {p["name"]: p for p in report["run"]["fhir_packages"]}
    assert {"hl7.fhir.r4.core", "hl7.fhir.fr.core"} <= set(packages)
    assert packages["hl7.fhir.r4.core"]["version"] == "4.0.1"
    assert all(p["digest"].startswith("sha256:") and len(p["digest"]) == 71 for p in packages.values())
    for o in report["outcomes"]:
        for path in o["evidence"]:
            assert (out / path).is_file(), path
    assert any(p.startswith("evidence/tls/") for o in report["outcomes"] for p in o["evidence"])
    assert any(p.startswith("evidence/http/") for o in report["outcomes"] for p in o["evidence"])
    html = (out / "report.html").read_text()
    assert '<html lang="en"' in html and report["verdict"] in html
    names = [tc.get("name") for tc in ET.parse(out / "junit.xml").getroot().iter("testcase")]
    assert len(names) == len(report["outcomes"]) == len(set(names))
    journal = [json.loads(line) for line in (out / "journal.ndjson").read_text().splitlines()]
    assert journal[0]["type"] == "run" and journal[-1]["type"] == "end"


def test_no_secret_in_the_bundle(clean_demo):
    _, out = clean_demo
    journal = json.loads((out / "journal.ndjson").read_text().splitlines()[0])
    assert journal["targets"][0].keys() == {"id", "kind", "url"}
    authorizations = [exchange["request"]["headers"].get("Authorization")
                      for path in (out / "evidence" / "http").glob("*.json")
                      for exchange in json.loads(path.read_text())]
    assert "[redacted]" in authorizations and set(authorizations) <= {"[redacted]", None}


def bundle_text(out: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


def test_every_flaw_is_in_the_matrix():
    assert set(FLAWS) == set(FLAW_MATRIX)
    assert set(WAREHOUSE_FLAWS) == set(WAREHOUSE_MATRIX)
    assert not set(FLAWS) & set(WAREHOUSE_FLAWS), "flaw names must be unique across reference systems"


@pytest.mark.parametrize("runs, matrix, apart", [(RUNS, FLAW_MATRIX, set(CDA_FLAWS)),
                                                 (WAREHOUSE_RUNS, WAREHOUSE_MATRIX, NEEDS_ROLES)])
def test_every_flaw_is_in_one_run_whose_flaws_fail_apart(runs, matrix, apart):
    """A run's failures can be told apart only when its flaws fail disjoint sets of requirements."""
    grouped = [flaw for flaws in runs.values() for flaw in flaws]
    assert sorted(grouped) == sorted(set(matrix) - apart), "each flaw in exactly one run"
    for name, flaws in runs.items():
        named = [r for flaw in flaws for r in matrix[flaw]]
        assert len(named) == len(set(named)), f"run {name}: two flaws fail the same requirement"


def run_fails(runs: dict, matrix: dict, run: str) -> set[str]:
    return {r for flaw in runs[run] for r in matrix[flaw]}


def flaw_args(flaws) -> list[str]:
    return [arg for flaw in flaws for arg in ("--flaw", flaw)]


WAREHOUSE_PROFILES = ["--profile", "omop-cdm-5.4", "--profile", "omop-dq", "--profile", "eds-privacy"]


@pytest.fixture
def postgres_url():
    """The machine's PostgreSQL (CI starts it): a missing server fails the test, it is not skipped."""
    from vigie.fixtures.warehouse.testing import POSTGRES, postgres_reachable
    why = postgres_reachable()
    if why:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {why}")
    return POSTGRES


def assert_fails_exactly(report, expected, returncode):
    failed = {o["requirement"] for o in report["outcomes"] if o["status"] == "failed"}
    errors = [(o["requirement"], o["summary"]) for o in report["outcomes"] if o["status"] == "error"
              and o["requirement"] not in unjudgeable_here()]
    assert not errors, errors
    assert_unjudgeable_says_why(report)
    assert failed == expected, [(o["requirement"], o["summary"]) for o in report["outcomes"] if o["status"] == "failed"]
    shall = any(o["level"] == "SHALL" for o in report["outcomes"] if o["requirement"] in failed)
    unjudged = any(o["status"] == "error" for o in report["outcomes"])
    verdict = "non-conformant" if shall else "incomplete" if unjudged else "conformant-with-reservations"
    assert report["verdict"] == verdict
    assert returncode == {"non-conformant": 1, "incomplete": 2}.get(verdict, 0)
    # what the flaws make vigie write reads as French in a French report
    assert not english_sentences(report), english_sentences(report)[:10]


@pytest.mark.parametrize("run", sorted(WAREHOUSE_RUNS))
def test_warehouse_flaw_matrix(run, tmp_path):
    """Warehouse flaws through the demo (its DuckDB warehouse), the warehouse profiles only, one demo per run."""
    out = tmp_path / "bundle"
    result = vigie("demo", *flaw_args(WAREHOUSE_RUNS[run]), *WAREHOUSE_PROFILES, "--out", str(out),
                   env=optimized())
    assert "Traceback" not in result.stderr
    assert_fails_exactly(load_report(out), run_fails(WAREHOUSE_RUNS, WAREHOUSE_MATRIX, run), result.returncode)


@pytest.mark.parametrize("flaw", sorted(NEEDS_ROLES))
def test_warehouse_role_flaw_matrix(flaw, tmp_path, postgres_url):
    """Flaws that only roles express: the reference warehouse in PostgreSQL, then `vigie run` as its reader."""
    from vigie.fixtures.warehouse.postgres import drop
    schema = f"vigie_t_{uuid.uuid4().hex[:10]}"
    built = vigie("reference", "warehouse", f"{postgres_url}?schema={schema}", "--flaw", flaw)
    try:
        assert built.returncode == 0, built.stderr
        reader = built.stdout.strip().splitlines()[-1].split("--warehouse ")[1].strip("'")
        out = tmp_path / "bundle"
        result = vigie("run", "--warehouse", reader, *WAREHOUSE_PROFILES, "--out", str(out), env=optimized())
        assert_fails_exactly(load_report(out), WAREHOUSE_MATRIX[flaw], result.returncode)
    finally:
        drop(postgres_url, schema)


def fhir_profiles() -> list[str]:
    """The default campaign's profiles for the practice system: a practice flaw cannot touch the others."""
    from vigie.catalogue import load_catalogue
    return [arg for p in load_catalogue().values() if p.in_default_campaign(["fhir"])
            for arg in ("--profile", p.id)]


LOAD_FLAWS = {"slow", "errors"}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_flaw_matrix(run, tmp_path):
    """The practice system's flaws through the demo, one demo per run of flaws, on the FHIR profiles of the
    default campaign. The load phase keeps its default length for a run with a load flaw and is shortened for
    the others (it only has to show that they do not fail a load target); only the JUnit rendering is made
    besides report.json. The checks may send 200 requests/s (the reference system's budget for professional
    software is 1000/s): the fuzzer's few hundred requests take a second instead of several (the clean demo
    keeps the default)."""
    out = tmp_path / "bundle"
    load = [] if LOAD_FLAWS & set(RUNS[run]) else ["--load-duration", "2"]
    result = vigie("demo", *flaw_args(RUNS[run]), *fhir_profiles(), *load, "--rate", "200", "--format", "junit",
                   "--out", str(out), env=optimized())
    assert "Traceback" not in result.stderr
    assert_fails_exactly(load_report(out), run_fails(RUNS, FLAW_MATRIX, run), result.returncode)


@pytest.fixture
def served(tmp_path):
    """The reference practice system in its own process, as a vendor's test server would be."""
    with practice_process(tmp_path / "state") as state:
        yield state / "vigie.toml"


def test_run_with_config_and_with_flags(served, tmp_path):
    result = vigie("run", "--config", str(served), "--profile", "fhir-r4-rest", "--out", str(tmp_path / "a"))
    report = load_report(tmp_path / "a")
    judged = unjudgeable_here()
    assert report["verdict"] == ("incomplete" if judged else "conformant"), result.stdout
    assert result.returncode == (2 if judged else 0)
    assert {o["status"] for o in report["outcomes"] if o["requirement"] not in judged} == {"passed"}
    target = tomllib.loads(served.read_text())["targets"][0]
    result = vigie("run", "--fhir", target["url"], "--ca-file", target["ca_file"], "--token", target["token"],
                   "--profile", "fhir-r4-rest", "--out", str(tmp_path / "b"))
    assert result.returncode == (2 if judged else 0), result.stdout + result.stderr
    secrets = [target["token"], *target.get("tokens", {}).values()]
    for out in (tmp_path / "a", tmp_path / "b"):
        text = bundle_text(out) + result.stdout + result.stderr
        assert not [s for s in secrets if s in text], "a token leaked into the bundle or the output"


def test_killed_run_is_rebuilt_incomplete(served, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vigie", "run", "--config", str(served), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "journal.ndjson"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_text().count('"type": "outcome"') >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {json.loads(line)["requirement"]: json.loads(line)["status"]
                for line in journal.read_text().splitlines() if line.endswith("}") and '"outcome"' in line}
    result = vigie("report", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    report = load_report(out)
    assert report["verdict"] == "incomplete" and report["run"]["complete"] is False
    rebuilt = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert all(rebuilt[r] == s for r, s in finished.items())
    assert "not_tested" in rebuilt.values()
    assert (out / "report.html").is_file()


def test_unreachable_target_gives_error_outcomes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # --run-anyway: past the pre-flight (tests/test_preflight.py), the campaign reports what it could not reach
    result = vigie("run", "--fhir", f"https://127.0.0.1:{port}/fhir", "--profile", "fhir-r4-rest",
                   "--profile", "anssi-tls", "--run-anyway", "--out", str(tmp_path / "u"), timeout=120)
    report = load_report(tmp_path / "u")
    assert {o["status"] for o in report["outcomes"]} == {"error"}
    assert all("refused" in o["summary"] or "failed" in o["summary"] for o in report["outcomes"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # under the verdicts, each reason once, in full, with the requirements it left unverified
    below = result.stdout.split("not verified (error, not tested), and why:")[1]
    from vigie.display import MAX_REASONS, unverified_reasons
    shown = unverified_reasons(report)[:MAX_REASONS]
    assert shown and all(" ".join(reason.split()) in " ".join(below.split()) for _, reason in shown), below
    assert "FHIR-REST-01" in below and "ANSSI-TLS-01" in below


# ---- a profile built at run time from an implementation guide: the Annuaire subset and its flawed twin ----

ANNUAIRE = "ig:ans.fhir.fr.annuaire"
ANNUAIRE_PREFIX = "IG-AsServerDPCapabilityStatement-"
ANNUAIRE_TWIN_FLAW = "include-ignored"


def annuaire_statuses(tmp_path, *flaws: str) -> dict[str, str]:
    out = tmp_path / ("twin" if flaws else "clean")
    result = vigie("demo", "--profile", ANNUAIRE, *flaw_args(flaws), "--out", str(out), env=optimized())
    assert "Traceback" not in result.stderr and (out / "report.json").exists(), result.stderr[-2000:]
    return {o["requirement"]: o["status"] for o in load_report(out)["outcomes"]}


def test_annuaire_flawed_twin(tmp_path):
    """`--profile ig:ans.fhir.fr.annuaire` on the reference system and on its twin whose includes are ignored:
    every declared _include and _revinclude requirement the reference passes fails on the twin (its matches
    refer to resources the include did not add), and every other requirement ends as on the reference."""
    from vigie.fhir import PackageCache
    cached = PackageCache(os.environ.get("FHIR_PACKAGE_CACHE") or None).list()
    if not any(name == "ans.fhir.fr.annuaire" for name, _, _ in cached):
        pytest.skip("the ans.fhir.fr.annuaire package is not in the FHIR package cache (../shared/data)")
    clean, twin = annuaire_statuses(tmp_path), annuaire_statuses(tmp_path, ANNUAIRE_TWIN_FLAW)
    assert set(clean) == set(twin)
    changed = {r: (clean[r], twin[r]) for r in clean if clean[r] != twin[r]}
    includes = {r for r in clean if "-include" in r or "-revinclude" in r}   # _include=* too
    assert {ANNUAIRE_PREFIX + "PractitionerRole-include-PractitionerRole-practitioner",
            ANNUAIRE_PREFIX + "Organization-revinclude-PractitionerRole-organization"} <= set(changed)
    assert changed == {r: ("passed", "failed") for r in includes if clean[r] == "passed"}, changed


def test_a_second_run_against_the_same_system_gives_the_same_verdicts(served, tmp_path):
    """vigie writes to the system it tests (the load phase's Encounters, a traced Observation): what it wrote
    carries its tag and is never judged as the vendor's data, so a second run does not fail for the first."""
    profiles = ["--profile", "load-baseline", "--profile", "traceability", "--profile", "fr-core",
                "--profile", "fr-identifiers", "--profile", "fhir-r4-rest"]
    statuses = []
    for run in ("first", "second"):
        result = vigie("run", "--config", str(served), *profiles, "--load-duration", "3", "--out",
                       str(tmp_path / run), timeout=300)
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        report = load_report(tmp_path / run)
        statuses.append(({o["requirement"]: o["status"] for o in report["outcomes"]}, report["verdict"]))
    assert statuses[0] == statuses[1], [(r, s, statuses[1][0][r]) for r, s in statuses[0][0].items()
                                        if statuses[1][0][r] != s]
    # each run did write, and deleted what it wrote at its end (the reference system allows it): nothing tagged
    # is left (where a server refuses DELETE, the tag keeps them out of what is judged)
    for run in ("first", "second"):
        [cleaned] = load_report(tmp_path / run)["run"]["cleanup"]
        assert cleaned["types"].get("Encounter", 0) > 0 and cleaned["deleted"] == cleaned["found"], cleaned
    target = tomllib.loads(served.read_text())["targets"][0]
    import requests

    from vigie.fhirrest import created_by_vigie
    created, url = 0, f"{target['url']}/Encounter?_count=100"
    for _ in range(50):   # every page
        page = requests.get(url, verify=target["ca_file"], headers={"Authorization": f"Bearer {target['token']}"},
                            timeout=30).json()
        created += sum(created_by_vigie(e["resource"]) for e in page.get("entry", []))
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        if url is None:
            break
    assert created == 0
