"""Every place that shows a request shows it whole, path and query (FHIR-REST-14's evidence once read
"GET /Appointment", its unknown parameter gone): the recorded exchanges, the messages of requests that fail,
against the reference practice system; with the secrets of a query redacted and the patient data of a search
masked as the evidence store's Redactor masks the resource."""
from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from checkcall import Outcome, conclude
from vigie.fixtures.practice import start_practice

from conformance import test_fhir_search
from vigie.campaign import Target
from vigie.errors import ObservationError
from vigie.evidence import EvidenceStore, Redactor
from vigie.fhirrest import observe_capability
from vigie.http import RecordingClient
from vigie.render.evidence_view import view

NIR = "185057800608436"   # a valid NIR (key 36), as FR Core patients carry


@pytest.fixture(scope="module")
def practice():
    system = start_practice()
    yield system
    system.stop()


@pytest.fixture
def target(practice) -> Target:
    return Target(id="practice", kind="fhir", url=practice.url, ca_file=str(practice.ca_file), token=practice.token)


def written(tmp_path, target, exchanges) -> list[dict]:
    """The exchanges as the bundle keeps them: through the evidence store and its Redactor."""
    store = EvidenceStore(tmp_path, Redactor(target.secrets()))
    return json.loads((tmp_path / store.write_json("http/x.json", exchanges)).read_text())


def test_fhir_rest_14_evidence_shows_the_unknown_parameter_it_sent(tmp_path, target):
    http = RecordingClient(target)
    try:
        capability = observe_capability(target, None)
        result = conclude(test_fhir_search.test_unknown_parameter, SimpleNamespace(id="FHIR-REST-14", params={}),
                          http, capability, Outcome())
        kept = written(tmp_path, target, http.take_exchanges())
    finally:
        http.close()
    assert result.status == "passed", result.summary
    lines = [f"{x['request']['method']} {x['request']['url']}" for x in kept]
    base = target.url
    assert f"GET {base}/Patient?_count=1" in lines                                       # the baseline search
    assert f"GET {base}/Patient?{test_fhir_search.UNKNOWN_PARAM}=1&_count=1" in lines     # the one judged
    shown = view(kept, "en")["exchanges"]
    assert [x["url"] for x in shown] == [x["request"]["url"] for x in kept]


def test_a_query_keeps_no_secret_and_no_patient_data(tmp_path, target):
    http = RecordingClient(target)
    try:
        http.get("Patient", params={"family": "Martin", "birthdate": "ge1985-05-12", "_count": 1})
        http.get("Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.8|{NIR}"})
        http.get("Practitioner", params={"family": "Martin", "access_token": "s3cr3t-query-token"})
        kept = written(tmp_path, target, http.take_exchanges())
    finally:
        http.close()
    queries = [urlsplit(x["request"]["url"]).query for x in kept]
    assert queries[0] == "family=M*****&birthdate=ge1985-**-**&_count=1"
    assert queries[1] == "identifier=urn%3Aoid%3A1.2.250.1.213.1.4.8%7C1************36"
    assert queries[2] == "family=Martin&access_token=[redacted]"   # a professional's name is a public register's
    text = json.dumps(kept)
    assert "Martin&birthdate" not in text and NIR not in text and "s3cr3t-query-token" not in text


def test_a_failed_request_is_named_with_its_query():
    http = RecordingClient(Target(id="t", kind="fhir", url="http://127.0.0.1:9/fhir", token="t" * 20))
    try:
        with pytest.raises(ObservationError) as refused:
            http.get("Appointment", params={"date": "ge2026-01-01", "_count": 5})
    finally:
        http.close()
    assert "GET http://127.0.0.1:9/fhir/Appointment?date=ge2026-01-01&_count=5 failed" in str(refused.value)
    assert http.exchanges[0]["request"]["url"].endswith("/Appointment?date=ge2026-01-01&_count=5")


@pytest.mark.parametrize("line, masked", [
    ("GET https://h/fhir/Patient/_search?name:exact=Jean,Paul&gender=female",
     "GET https://h/fhir/Patient/_search?name:exact=J***,P***&gender=female"),
    ("Encounter?subject:Patient.family=Martin&patient.birthdate=1985-05-12&date=ge2020-01-01",
     "Encounter?subject:Patient.family=M*****&patient.birthdate=1985-**-**&date=ge2020-01-01"),
    ("RelatedPerson?phone=0612345678&address-postalcode=75012&address=12%20rue%20X",
     "RelatedPerson?phone=********78&address-postalcode=75***&address=************"),
    ("Patient?identifier=https://hopital.example/ipp|IPP12345", "Patient?identifier=https://hopital.example/ipp|I*****45"),
    ("Practitioner?family=Martin&name=Jean", "Practitioner?family=Martin&name=Jean"),
    ("Patient?_id=pat-1&_count=10", "Patient?_id=pat-1&_count=10"),
    ('{"url": "https://h/fhir/Patient?family=Martin&_count=10"}', '{"url": "https://h/fhir/Patient?family=M*****&_count=10"}'),
])
def test_person_searches_are_masked_wherever_written(line, masked):
    assert Redactor().text(line) == masked


def test_a_search_is_named_by_its_request_line(target):
    from vigie.fhirrest import search

    http = RecordingClient(target)
    try:
        result = conclude(search, http, "Unknowntype", {"_count": 1, "name": "x"})
    finally:
        http.close()
    assert result.status == "failed" and result.summary.startswith("GET Unknowntype?_count=1&name=x answered 4")
