"""The CDA documents a FHIR server serves (DocumentReference, Binary), checked by the cda-r2 and ci-sis profiles
in the same campaign as its API: the reference practice system's own documents (a VSM and a CR-BIO built by
fixtures/practice/cda.py, not the ANS's examples) meet both profiles; each CDA flaw of the practice system fails
exactly its requirements; a document that cannot be fetched is an error, a server without documents not_applicable,
a DocumentReference search that fails an error."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cdaflaws import CISIS_DATA
from vigie.fixtures.practice import start_practice
from vigie.fixtures.practice.cda import CDA_FLAWS

from vigie.campaign import make_target
from vigie.catalogue import load_catalogue, select
from vigie.cda.content import add_content
from vigie.runner import run_campaign

pytestmark = [pytest.mark.skipif(not CISIS_DATA.is_dir(), reason="the ANS CI-SIS test content (../shared/data/"
                                                                  "ci-sis) is not beside the repository"),
              pytest.mark.timeout(300)]

FAMILIES_SERVED = {"CISIS-VSM", "CISIS-BIO-CR-BIO"}
# flaw -> the requirements it fails, and no other (the flaw matrix's practice section)
MATRIX = yaml.safe_load((Path(__file__).parent / "flaw_matrix.yaml").read_text(encoding="utf-8"))["practice"]
FLAWS = {flaw: set(MATRIX[flaw]) for flaw in CDA_FLAWS}


@pytest.fixture(scope="module")
def cisis(fhir_package_cache):
    return add_content(CISIS_DATA)


def _campaign(system, out, profiles=("cda-r2", "ci-sis")) -> dict:
    target = make_target({"id": "practice", "kind": "fhir", "url": system.url, "ca_file": str(system.ca_file),
                          "token": system.token}, "test")
    report = run_campaign(select(load_catalogue(), list(profiles)), [target], out, "en", "test", formats=["md"])
    return {o["requirement"]: o for o in report["outcomes"]}


@pytest.fixture(scope="module")
def clean(cisis, tmp_path_factory):
    root = tmp_path_factory.mktemp("cda-served")
    with start_practice(workdir=root / "practice") as system:
        outcomes = _campaign(system, root / "out")
    outcomes["out"] = root / "out"
    yield outcomes


def test_the_practice_documents_meet_cda_r2_and_ci_sis(clean):
    clean = {r: o for r, o in clean.items() if r != "out"}
    observed = {r: o for r, o in clean.items() if o["status"] != "not_applicable"}
    assert {r: o["status"] for r, o in observed.items() if o["status"] != "passed"} == {}
    assert set(observed) == {"CDA-R2-01", "CDA-R2-02", "CDA-R2-03", "CDA-R2-04", "CISIS-ENT-01", "CISIS-ENT-02",
                             "CISIS-ENT-03", "CISIS-ENT-04", "CISIS-ENT-05", "CISIS-VOL-00", *FAMILIES_SERVED}
    assert clean["CISIS-VOL-00"]["measurements"]["families"] == {"BIO-CR-BIO": 1, "VSM": 1}
    assert "CI-SIS_VSM_2023.01.sch" in clean["CISIS-VSM"]["summary"]
    assert "CI-SIS_BIO-CR-BIO_2024.01.sch" in clean["CISIS-BIO-CR-BIO"]["summary"]
    assert clean["CDA-R2-04"]["measurements"]["embedded_files"] == 1     # the CR-BIO's PDF copy
    # every other family: no document of it, an observed reason
    for requirement, outcome in clean.items():
        if requirement.startswith("CISIS-") and requirement not in observed:
            assert "no document of the volet family" in outcome["summary"], outcome


def test_documents_are_fetched_inline_and_by_url(clean):
    """The VSM's attachment carries its data; the CR-BIO's only a url (Binary/...), read as text/xml; each
    exchange is kept in the observation's evidence."""
    import json
    path = next(p for p in clean["CDA-R2-01"]["evidence"] if "cda-documents" in p)
    observed = json.loads((clean["out"] / path).read_text(encoding="utf-8"))
    assert observed["document_references"] == 2
    assert [d["name"] for d in observed["documents"]] == ["DocumentReference/doc-vsm-0001",
                                                          "DocumentReference/doc-crbio-0001"]
    requests = [(e["request"]["url"], e["response"]["status"], e["response"]["headers"]["Content-Type"])
                for e in observed["exchanges"]]
    assert [r[0].split("?")[0].rsplit("/fhir/", 1)[1] for r in requests] == ["DocumentReference",
                                                                          "Binary/bin-crbio-0001"]
    assert requests[1][1:] == (200, "text/xml")
    assert all("Authorization" in e["request"]["headers"] for e in observed["exchanges"])   # the token applies


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_each_cda_flaw_fails_exactly_its_requirements(flaw, cisis, tmp_path):
    with start_practice(flaws=[flaw], workdir=tmp_path / "practice") as system:
        outcomes = _campaign(system, tmp_path / "out")
    failed = {r for r, o in outcomes.items() if o["status"] == "failed"}
    assert failed == FLAWS[flaw], {r: outcomes[r]["summary"] for r in failed ^ FLAWS[flaw]}
    assert {r for r, o in outcomes.items() if o["status"] in ("error", "not_tested")} == set()


@pytest.mark.partial_observation("cda.well-formed", "cda.schema", "cisis.header", "cisis.schematron")
def test_a_document_that_cannot_be_fetched_is_an_error(cisis, tmp_path):
    """The CR-BIO's Binary is gone (404): the VSM alone was seen, so no requirement on every document passes."""
    with start_practice(workdir=tmp_path / "practice") as system:
        del system._app.store["Binary"]["bin-crbio-0001"]
        outcomes = _campaign(system, tmp_path / "out")
    for requirement in ("CDA-R2-01", "CDA-R2-02", "CISIS-ENT-01", "CISIS-VOL-00"):
        assert outcomes[requirement]["status"] == "error", outcomes[requirement]
    assert "DocumentReference/doc-crbio-0001" in outcomes["CDA-R2-01"]["summary"]
    assert "404" in outcomes["CDA-R2-01"]["summary"]
    # the VSM was fetched and meets its schematron, but the unfetched document may be a VSM too: not a pass
    assert outcomes["CISIS-VSM"]["status"] == "error"
    assert "1 documents of VSM meet their schematrons, but 1 of the 2" in outcomes["CISIS-VSM"]["summary"]
    assert outcomes["CISIS-BIO-CR-BIO"]["status"] == "error"


def test_a_server_without_cda_documents_is_not_applicable(cisis, tmp_path):
    with start_practice(workdir=tmp_path / "practice") as system:
        system._app.store["DocumentReference"].clear()
        outcomes = _campaign(system, tmp_path / "out")
    assert {o["status"] for o in outcomes.values()} == {"not_applicable"}
    assert ("the server serves no CDA document: DocumentReference search returned 0 resources, 0 with a CDA "
            "attachment") in outcomes["CDA-R2-01"]["summary"]


def test_a_failed_document_search_is_an_error(cisis, tmp_path):
    with start_practice(workdir=tmp_path / "practice") as system:
        del system._app.store["DocumentReference"]     # the server now answers 404 to the search
        outcomes = _campaign(system, tmp_path / "out", profiles=("cda-r2",))
    assert {o["status"] for o in outcomes.values()} == {"error"}
    assert "GET DocumentReference answered 404" in outcomes["CDA-R2-01"]["summary"]


@pytest.fixture(scope="module")
def practice_client(tmp_path_factory):
    from vigie.http import RecordingClient
    with start_practice(workdir=tmp_path_factory.mktemp("practice")) as system:
        target = make_target({"id": "practice", "kind": "fhir", "url": system.url, "ca_file": str(system.ca_file),
                              "token": system.token}, "test")
        client = RecordingClient(target)
        yield client
        client.close()


def test_a_binary_served_as_a_fhir_resource_is_read_from_its_data(practice_client):
    """Asked for application/xml, the practice answers the Binary as a FHIR resource: its data is the document."""
    from vigie.cda.served import fetch
    doc = fetch(practice_client, "DocumentReference/x", {"contentType": "application/xml",
                                                         "url": "Binary/bin-crbio-0001"})
    assert doc.ok and doc.clinical is not None, doc.problem
    exchange = practice_client.take_exchanges()[-1]
    assert exchange["response"]["headers"]["Content-Type"].startswith("application/fhir+json")


@pytest.mark.parametrize("attachment, reason", [
    ({"contentType": "text/xml", "url": "https://elsewhere.invalid/Binary/x"}, "outside the target's declared base"),
    ({"contentType": "text/xml", "url": "Binary/no-such-binary"}, "answered 404"),
    ({"contentType": "text/xml", "data": "not base64!"}, "not base64"),
    ({"contentType": "text/xml"}, "neither data nor url"),
])
def test_an_attachment_that_cannot_be_fetched_is_unread_with_its_reason(practice_client, attachment, reason):
    from vigie.cda.served import fetch
    doc = fetch(practice_client, "DocumentReference/x", attachment)
    assert not doc.ok and not doc.fetched and reason in doc.problem, doc.problem


def test_documents_past_the_caps_are_said_in_every_pass(cisis, tmp_path, monkeypatch):
    """A server that lists more documents than vigie fetches: what passes says it covers the first ones only."""
    from vigie.cda import served
    monkeypatch.setattr(served, "MAX_DOCUMENTS", 1)
    with start_practice(workdir=tmp_path / "practice") as system:
        outcomes = _campaign(system, tmp_path / "out", profiles=("cda-r2",))
    passes = {r: o["summary"] for r, o in outcomes.items() if o["status"] == "passed"}
    assert set(passes) >= {"CDA-R2-01", "CDA-R2-02", "CDA-R2-03"}, outcomes
    assert all("the first 1 CDA documents the server lists (it lists more" in s for s in passes.values()), passes
