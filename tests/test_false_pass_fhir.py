"""The FHIR area's false-pass routes (issue 12), each reproduced end to end: `vigie run` against a small FHIR
server (tests/fhirstub.py) that offers exactly the partial observation that once passed, and the report
read as a regulator would read it."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fhirstub import FhirStub, capability
from vigie.fixtures.practice.data import build

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-packages"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/fhir-packages is not beside the repo")
DATA = build(42)
SEARCH = {"searchParam": [{"name": "identifier", "type": "token"}, {"name": "family", "type": "string"},
                          {"name": "birthdate", "type": "date"}, {"name": "name", "type": "string"}]}


def run(stub: FhirStub, out: Path, *profiles: str) -> tuple[dict, dict, int]:
    """`vigie run` against the stub: (report, outcomes by requirement, exit code)."""
    args = [a for p in profiles for a in ("--profile", p)]
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--fhir", stub.url, "--token", "x", *args,
                             "--out", str(out)], capture_output=True, text=True, timeout=240, check=False)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    return report, {o["requirement"]: o for o in report["outcomes"]}, result.returncode


def verdicts(report: dict) -> dict:
    return {p["id"]: p["verdict"] for p in report["profiles"]}


def test_a_server_that_serves_nothing_is_not_conformant(tmp_path):
    """Once: fr-core and fr-identifiers conformant with 0 passed and 11 not_applicable. The server declares
    Patient, Practitioner, Organization and Encounter searchable and serves none: nothing was seen to conform."""
    types = {t: SEARCH for t in ("Patient", "Practitioner", "Organization", "Encounter")}
    with FhirStub(capability(types), {t: [] for t in types}) as stub:
        report, outcomes, code = run(stub, tmp_path / "b", "fr-core", "fr-identifiers")
    assert verdicts(report) == {"fr-core": "incomplete", "fr-identifiers": "incomplete"}, verdicts(report)
    assert code == 2
    assert not [o for o in outcomes.values() if o["status"] in ("passed", "not_applicable")], outcomes
    assert "the server declares Patient search but served no Patient" in outcomes["FR-ID-01"]["summary"]


def test_a_server_that_declares_nothing_it_serves_is_not_applicable_not_conformant(tmp_path):
    """The other side: a server whose CapabilityStatement declares none of those types is observed not to
    serve them; the profiles do not apply (never conformant on nothing)."""
    with FhirStub(capability({"Observation": SEARCH}), {"Observation": []}) as stub:
        report, outcomes, code = run(stub, tmp_path / "b", "fr-identifiers")
    assert verdicts(report) == {"fr-identifiers": "not_applicable"} and code == 2
    assert all("declares no search on" in o["summary"] for o in outcomes.values()), outcomes


def test_a_capability_statement_without_search_parameters(tmp_path):
    """Once: FHIR-REST-06..09 and -11 not_applicable and FHIR-REST-01 passed. Now FHIR-REST-01 fails and the
    search requirements are tried (this server ignores what it does not declare): none is excused."""
    types = {t: {} for t in ("Patient", "Encounter")}
    store = {"Patient": list(DATA["Patient"].values())[:20], "Encounter": list(DATA["Encounter"].values())[:20]}
    with FhirStub(capability(types), store, unknown="ignore") as stub:
        report, outcomes, _ = run(stub, tmp_path / "b", "fhir-r4-rest")
    assert outcomes["FHIR-REST-01"]["status"] == "failed", outcomes["FHIR-REST-01"]
    assert "without any search parameter" in outcomes["FHIR-REST-01"]["summary"]
    for rid in ("FHIR-REST-06", "FHIR-REST-07", "FHIR-REST-08", "FHIR-REST-09", "FHIR-REST-11"):
        assert outcomes[rid]["status"] == "error", outcomes[rid]
    assert verdicts(report) == {"fhir-r4-rest": "non-conformant"}


@pytest.mark.parametrize("self_link", [False, True])
def test_an_unknown_parameter_that_filters_silently(tmp_path, self_link):
    """Once: FHIR-REST-14 passed a server with no self link that filtered everything out on an unknown
    parameter. Without a self link the client cannot tell; with one that leaves the parameter out, the
    result still differs from the search without it."""
    with FhirStub(capability({"Patient": SEARCH}), {"Patient": list(DATA["Patient"].values())[:20]},
                  unknown="empty", self_link=self_link) as stub:
        _, outcomes, _ = run(stub, tmp_path / "b", "fhir-r4-rest")
    assert outcomes["FHIR-REST-14"]["status"] == "failed", outcomes["FHIR-REST-14"]
    assert ("filtered silently" if self_link else "no self link") in outcomes["FHIR-REST-14"]["summary"]


@needs_shared
def test_fr_core_validation_without_the_terminology_packages(tmp_path):
    """Once: a Patient born in NOT-A-COMMUNE passed FR Core, the INSEE value set being in ans.fr.terminologies,
    which is not loaded (nor available from any registry here). Now: undetermined, naming the package."""
    patients = []
    for patient in list(DATA["Patient"].values())[:20]:
        patient = copy.deepcopy(patient)
        patient["extension"][1]["valueAddress"]["extension"][0]["valueCoding"]["code"] = "NOT-A-COMMUNE"
        patients.append(patient)
    with FhirStub(capability({"Patient": SEARCH}), {"Patient": patients}) as stub:
        report, outcomes, code = run(stub, tmp_path / "b", "fr-core")
    for rid in ("FR-CORE-01", "FR-CORE-02"):
        assert outcomes[rid]["status"] == "error", outcomes[rid]
        assert "ans.fr.terminologies" in outcomes[rid]["summary"]
        assert "vigie packages add ans.fr.terminologies-1.7.0.tgz" in outcomes[rid]["summary"]
    assert verdicts(report)["fr-core"] == "incomplete" and code == 2
