"""False passes of the CDA checks: a documents target with nothing to judge, documents that could not be read, or
no CI-SIS content never gives `passed` (the checks are called directly on a crafted `cda-documents`
observation)."""
from types import SimpleNamespace

import pytest
from checkcall import Outcome, conclude

from conformance import test_cda as checks
from vigie.cda.document import parse_document
from vigie.cda.observation import CdaSet

CLINICAL = b'<ClinicalDocument xmlns="urn:hl7-org:v3"><templateId root="2.16.840.1.113883.1.3"/></ClinicalDocument>'
NO_CONTENT = "no CI-SIS test content: vigie packages add-cisis DIR|ZIP"
# each check with the parameters its requirements give it
CALLS = {
    "cda.well-formed": (checks.test_documents_are_well_formed, {}),
    "cda.schema": (checks.test_documents_follow_the_cda_schema, {}),
    "cda.active-content": (checks.test_documents_carry_no_active_content, {}),
    "cda.embedded-media": (checks.test_embedded_files_have_allowed_types, {"allowed": ["application/pdf"]}),
    "cisis.header": (checks.test_document_headers, {"rule": "ins"}),
    "cisis.volet": (checks.test_documents_are_of_a_known_volet, {}),
    "cisis.schematron": (checks.test_volet_schematrons, {"family": "VSM"}),
}


def _run(check_id: str, docs: CdaSet):
    function, params = CALLS[check_id]
    names = function.__code__.co_varnames[:function.__code__.co_argcount]
    given = {"requirement": SimpleNamespace(id="CDA-TEST", params=params), "observe": lambda _name: docs,
             "outcome": Outcome(), "target": SimpleNamespace(id="documents")}
    return conclude(function, **{n: given[n] for n in names})


@pytest.mark.partial_observation("cda.well-formed", "cda.schema", "cda.active-content", "cda.embedded-media",
                                "cisis.header", "cisis.volet", "cisis.schematron")
@pytest.mark.parametrize("check_id", sorted(CALLS))
def test_a_folder_without_documents_is_not_a_pass(check_id):
    result = _run(check_id, CdaSet("/empty", [], None, NO_CONTENT))
    assert result.status == "error" and "no CDA document" in result.summary, result


@pytest.mark.partial_observation("cda.schema", "cda.active-content", "cda.embedded-media", "cisis.header")
@pytest.mark.parametrize("check_id", ["cda.schema", "cda.active-content", "cda.embedded-media", "cisis.header"])
def test_a_document_that_could_not_be_read_leaves_the_others_unjudged(check_id, monkeypatch):
    """One readable document meets the rule; the other could not be read: the rule was not seen on it."""
    import vigie.cda.schema
    monkeypatch.setattr(vigie.cda.schema, "schema_errors", lambda _xsd, _doc: [])
    docs = CdaSet("/docs", [parse_document(CLINICAL, "good.xml"), parse_document(b"<not closed", "bad.xml")],
                  SimpleNamespace(xsd=None, to_json=lambda: {"package": "test"}), None)
    result = _run(check_id, docs)
    assert result.status == "error" and "could not be read" in result.summary, result


def test_a_document_that_could_not_be_read_fails_well_formedness():
    docs = CdaSet("/docs", [parse_document(CLINICAL, "good.xml"), parse_document(b"<not closed", "bad.xml")])
    result = _run("cda.well-formed", docs)
    assert result.status == "failed" and "bad.xml" in result.summary, result


@pytest.mark.partial_observation("cda.schema", "cisis.volet", "cisis.schematron")
@pytest.mark.parametrize("check_id", ["cda.schema", "cisis.volet", "cisis.schematron"])
def test_without_the_ci_sis_content_the_rules_that_need_it_are_errors(check_id):
    result = _run(check_id, CdaSet("/docs", [parse_document(CLINICAL, "good.xml")], None, NO_CONTENT))
    assert result.status == "error" and "add-cisis" in result.summary, result


@pytest.mark.partial_observation("cisis.schematron")
@pytest.mark.parametrize("family, findings, status", [
    ("VSM", [], "error"),                    # the readable VSM meets its schematron: the unread one is unknown
    ("CR-BIO", [], "error"),                 # no readable CR-BIO, but the unread one may be one
    ("VSM", [SimpleNamespace(level="error", rule="r1", location="/x", message="m",
                             to_json=dict)], "failed"),   # a violation seen is a failure all the same
])
def test_a_document_that_could_not_be_read_leaves_every_family_unjudged(family, findings, status):
    """A document that could not be read has no known volet: no family passes, nor is set aside as not
    concerned, while it is there."""
    docs = CdaSet("/docs", [parse_document(CLINICAL, "vsm.xml"), parse_document(b"<not closed", "bad.xml")],
                  SimpleNamespace(), None)
    docs.volet = lambda _doc: SimpleNamespace(family="VSM")
    docs.findings = lambda _doc: findings
    function, _ = CALLS["cisis.schematron"]
    outcome = Outcome()
    result = conclude(function, requirement=SimpleNamespace(id="CDA-TEST", params={"family": family}),
                      observe=lambda _name: docs, outcome=outcome, target=SimpleNamespace(id="documents"))
    assert result.status == status, result
    assert any("bad.xml" in m for m in outcome.messages), outcome.messages


@pytest.mark.partial_observation("cda.embedded-media")
def test_documents_without_embedded_files_do_not_pass_the_embedded_file_rule():
    """No embedded file seen: nothing was judged, so the rule does not concern these documents (not a pass)."""
    result = _run("cda.embedded-media", CdaSet("/docs", [parse_document(CLINICAL, "good.xml")]))
    assert result.status == "not_applicable" and "no embedded file" in result.summary, result


def _unfetched(name: str):
    from vigie.cda.document import CdaDocument
    return CdaDocument(name, b"", "not fetched: GET Binary/x answered 404", fetched=False)


@pytest.mark.partial_observation("cda.well-formed")
def test_a_served_document_that_could_not_be_fetched_is_not_judged_well_formed():
    """A FHIR server's document that could not be fetched says nothing of its XML: error, not failed nor passed."""
    docs = CdaSet("https://fhir/DocumentReference", [parse_document(CLINICAL, "DocumentReference/a"),
                                                     _unfetched("DocumentReference/b")], served=2)
    result = _run("cda.well-formed", docs)
    assert result.status == "error" and "could not be fetched" in result.summary, result
    assert "DocumentReference/b" in result.summary and "404" in result.summary


@pytest.mark.parametrize("check_id", sorted(CALLS))
def test_a_server_without_cda_documents_is_not_applicable(check_id):
    result = _run(check_id, CdaSet("https://fhir/DocumentReference", [], None, NO_CONTENT, served=3))
    assert result.status == "not_applicable", result
    assert "DocumentReference search returned 3 resources, 0 with a CDA attachment" in result.summary


@pytest.mark.parametrize("check_id", sorted(CALLS))
def test_a_server_that_declares_no_document_search_is_not_applicable(check_id):
    """A FHIR server whose CapabilityStatement declares no DocumentReference search serves no document: the
    observed reason, before any search."""
    from vigie.fhirrest import Capability
    statement = {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Patient", "interaction": [{"code": "search-type"}]}]}]}
    observed = {"capability": Capability(statement)}

    def observe(name):
        return observed[name]     # a KeyError: the check asked for the documents it should not have searched
    function, params = CALLS[check_id]
    names = function.__code__.co_varnames[:function.__code__.co_argcount]
    given = {"requirement": SimpleNamespace(id="CDA-TEST", params=params), "observe": observe,
             "outcome": Outcome(), "target": SimpleNamespace(id="practice", kind="fhir")}
    result = conclude(function, **{n: given[n] for n in names})
    assert result.status == "not_applicable", result
    assert "declares no search on DocumentReference" in result.summary
