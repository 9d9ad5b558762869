"""Profiles built from an implementation guide's CapabilityStatements (`--profile ig:<package>`)."""
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vigie.catalogue import load_catalogue, select
from vigie.errors import VigieError
from vigie.igprofile import DEFAULT_LEVEL, EXPECTATION, build_ig_profile

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-packages"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fhir-packages is not beside the repo")


def _expect(level):
    return [{"url": EXPECTATION, "valueCode": level}]


STATEMENT = {
    "resourceType": "CapabilityStatement", "id": "DemoServer", "url": "https://ig.vigie.example/CapabilityStatement/DemoServer",
    "kind": "requirements", "fhirVersion": "4.0.1", "format": ["json"],
    "rest": [
        {"mode": "client", "resource": [{"type": "Patient", "interaction": [{"code": "read"}]}]},
        {"mode": "server", "resource": [
            {"type": "Slot", "extension": _expect("SHALL"),
             "interaction": [{"code": "search-type"}, {"code": "read", "extension": _expect("SHOULD")}],
             "searchParam": [{"name": "demo-sp-start", "type": "date",
                              "definition": "https://ig.vigie.example/SearchParameter/demo-sp-start"},
                             {"name": "label-without-definition", "type": "token", "extension": _expect("MAY")}],
             "searchInclude": ["Slot:schedule", "Schedule:actor"],
             "_searchInclude": [None, {"extension": _expect("SHOULD")}]},
            {"type": "Device", "extension": _expect("SHOULD-NOT"), "interaction": [{"code": "read"}]},
        ]},
    ],
}
SEARCH_PARAMETER = {"resourceType": "SearchParameter", "id": "demo-sp-start", "code": "start", "type": "date",
                    "url": "https://ig.vigie.example/SearchParameter/demo-sp-start", "base": ["Slot"]}


def _package(tmp_path: Path, statements=(STATEMENT,)) -> Path:
    files = {"package/package.json": {"name": "vigie.demo.ig", "version": "0.1.0", "title": "Demo IG",
                                      "canonical": "https://ig.vigie.example", "fhirVersions": ["4.0.1"],
                                      "dependencies": {}},
             "package/SearchParameter-demo-sp-start.json": SEARCH_PARAMETER}
    for s in statements:
        files[f"package/CapabilityStatement-{s['id']}.json"] = s
    path = tmp_path / "vigie.demo.ig-0.1.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_requirements_from_a_capability_statement(tmp_path):
    profile = build_ig_profile(f"ig:{_package(tmp_path)}")
    assert profile.id == "ig:vigie.demo.ig" and profile.version == "0.1.0" and not profile.default_campaign
    by_id = {r.id: r for r in profile.requirements}
    assert set(by_id) == {
        "IG-DemoServer-Slot-interaction-search-type", "IG-DemoServer-Slot-interaction-read",
        "IG-DemoServer-Slot-param-start", "IG-DemoServer-Slot-param-label-without-definition",
        "IG-DemoServer-Slot-include-Slot-schedule", "IG-DemoServer-Slot-include-Schedule-actor"}
    # levels: the expectation extension where present (on primitives, in the _ twin), else the default
    assert by_id["IG-DemoServer-Slot-interaction-read"].level == "SHOULD"
    assert by_id["IG-DemoServer-Slot-interaction-search-type"].level == DEFAULT_LEVEL == "SHALL"
    assert by_id["IG-DemoServer-Slot-param-label-without-definition"].level == "MAY"
    assert by_id["IG-DemoServer-Slot-include-Schedule-actor"].level == "SHOULD"
    assert by_id["IG-DemoServer-Slot-include-Slot-schedule"].level == "SHALL"
    # the HTTP name is the SearchParameter's code, not the label
    start = by_id["IG-DemoServer-Slot-param-start"]
    assert (start.check, start.params["code"], start.params["label"]) == ("ig.search-param", "start", "demo-sp-start")
    assert all(r.profile == "ig:vigie.demo.ig" and r.title["en"] and r.title["fr"] for r in profile.requirements)


def test_ids_are_stable_across_builds(tmp_path):
    path = _package(tmp_path)
    first = [(r.id, r.level, r.params) for r in build_ig_profile(f"ig:{path}").requirements]
    assert first == [(r.id, r.level, r.params) for r in build_ig_profile(f"ig:{path}").requirements]


def test_select_builds_ig_profiles_and_refuses_unknown_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path / "empty-cache"))
    catalogue = load_catalogue()
    assert [p.id for p in select(catalogue, ["fhir-r4-rest", f"ig:{_package(tmp_path)}"])] == \
        ["fhir-r4-rest", "ig:vigie.demo.ig"]
    with pytest.raises(VigieError, match="'no.such.ig' is not in the FHIR package cache"):
        select(catalogue, ["ig:no.such.ig"])
    with pytest.raises(VigieError, match="needs a package id"):
        select(catalogue, ["ig:"])


def test_a_package_without_server_statement_is_refused(tmp_path):
    client_only = dict(STATEMENT, rest=[STATEMENT["rest"][0]])
    with pytest.raises(VigieError, match="no CapabilityStatement of the package describes a server"):
        build_ig_profile(f"ig:{_package(tmp_path, [client_only])}")


def test_cli_reports_an_unknown_guide_in_one_line(tmp_path):
    env = {"FHIR_PACKAGE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--fhir", "https://127.0.0.1:9/fhir",
                             "--profile", "ig:no.such.ig", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "no.such.ig" in result.stderr and "Traceback" not in result.stderr


@needs_shared
def test_annuaire_and_sas_packages():
    annuaire = build_ig_profile("ig:ans.fhir.fr.annuaire")
    ids = {r.id for r in annuaire.requirements}
    assert len(ids) == len(annuaire.requirements) > 60
    assert {"IG-AsServerDPCapabilityStatement-Organization-interaction-read",
            "IG-AsServerDPCapabilityStatement-PractitionerRole-param-practitioner",
            "IG-AsServerDPCapabilityStatement-Organization-revinclude-PractitionerRole-organization"} <= ids
    assert {r.level for r in annuaire.requirements} == {"SHALL"}   # no expectation extension in the JSON
    sas = build_ig_profile("ig:ans.fhir.fr.sas#1.1.0")
    codes = {r.params["code"] for r in sas.requirements if r.check == "ig.search-param" and
             r.params["resource"] == "Slot"}
    assert "start" in codes and "SPDateDebutSlot" not in codes   # label → SearchParameter code
    # client-side statements (Consommateur-*) make no requirement of a server
    assert not [r for r in sas.requirements if "Consommateur" in r.id]


@needs_shared
def test_annuaire_run_against_the_reference_system(tmp_path):
    out = tmp_path / "ig"
    result = subprocess.run([sys.executable, "-m", "vigie", "demo", "--profile", "ig:ans.fhir.fr.annuaire",
                             "--out", str(out)], capture_output=True, text=True, timeout=240, check=False)
    report = json.loads((out / "report.json").read_text())
    status = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert "error" not in status.values(), [(o["requirement"], o["summary"]) for o in report["outcomes"]
                                            if o["status"] == "error"]
    prefix = "IG-AsServerDPCapabilityStatement-"
    # the reference serves an Annuaire-like subset: Organization, Practitioner, PractitionerRole...
    for served in ("Organization-interaction-read", "Organization-interaction-search-type",
                   "Organization-param-name", "Organization-param-partof", "PractitionerRole-param-practitioner",
                   "PractitionerRole-include-PractitionerRole-practitioner",
                   "Organization-revinclude-PractitionerRole-organization", "Practitioner-param-given"):
        assert status[prefix + served] == "passed", served
    # ...but neither Device nor HealthcareService, nor the ANS-specific parameters
    for missing in ("Device-interaction-read", "HealthcareService-interaction-search-type",
                    "Organization-param-mailbox-mss", "Practitioner-param-number-smartcard"):
        assert status[prefix + missing] == "failed", missing
    assert report["verdict"] == "non-conformant" and result.returncode == 1
