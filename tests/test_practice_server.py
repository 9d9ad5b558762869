"""The reference practice system: its FHIR behaviour over real HTTPS, and each flaw observable on its own."""

import contextlib
import http.client
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import warnings

import pytest
import requests
from vigie.fixtures.practice import FLAWS, start_practice
from vigie.fixtures.practice.app import SLOW_SEARCH_S
from vigie.fixtures.practice.data import build

from vigie import identifiers as ids

pytestmark = pytest.mark.timeout(60)
T = 5  # seconds, on every client call: a broken server fails the test instead of hanging it


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    with start_practice(workdir=tmp_path_factory.mktemp("practice")) as system:
        yield system


@pytest.fixture
def flawed(tmp_path):
    systems = []

    def start(*flaws):
        systems.append(start_practice(flaws=flaws, workdir=tmp_path / f"p{len(systems)}"))
        return systems[-1]
    yield start
    for system in systems:
        system.stop()


def get(system, path, token="default", **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {system.token if token == 'default' else token}"
    url = path if path.startswith("https://") else system.url + path
    return requests.request(kw.pop("method", "GET"), url, headers=headers, verify=str(system.ca_file),
                            timeout=T, **kw)


def ids_of(bundle):
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def link(bundle, relation):
    return next((entry["url"] for entry in bundle["link"] if entry["relation"] == relation), None)


def ins_nir(patient):
    return next(i["value"] for i in patient["identifier"] if i["system"] == ids.INS_NIR_SYSTEM)


def tls_handshake(system, version, ciphers="DEFAULT:@SECLEVEL=0"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(system.ca_file)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers(ciphers)  # OpenSSL 3 clients refuse TLS 1.0 above level 0 too
    with (socket.create_connection((system.host, system.port), timeout=T) as raw,
          ctx.wrap_socket(raw, server_hostname=system.host) as tls):
        return tls.version()


# --- clean behaviour


def test_metadata_without_token_and_hardened_headers(practice):
    r = get(practice, "/metadata", token=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    assert r.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Server"] == "vigie-reference"
    assert "X-Powered-By" not in r.headers
    cs = r.json()
    assert (cs["resourceType"], cs["status"], cs["kind"], cs["fhirVersion"]) == (
        "CapabilityStatement", "active", "instance", "4.0.1")
    assert "application/fhir+json" in cs["format"]
    rest = cs["rest"][0]
    assert rest["mode"] == "server" and rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    resources = {res["type"]: res for res in rest["resource"]}
    assert {"Patient", "Practitioner", "Organization", "Encounter", "Observation", "PractitionerRole",
            "AuditEvent"} <= set(resources)
    for res in resources.values():
        assert {"read", "search-type"} <= {i["code"] for i in res["interaction"]}
    patient_params = {p["name"]: p["type"] for p in resources["Patient"]["searchParam"]}
    assert patient_params["identifier"] == "token" and patient_params["birthdate"] == "date"


def test_authentication_required(practice):
    for token in (None, "not-a-token"):
        r = get(practice, "/Patient", token=token)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="vigie-reference"'
        assert r.json()["resourceType"] == "OperationOutcome"
        assert r.headers["Strict-Transport-Security"]


def test_read_and_not_found(practice):
    r = get(practice, f"/Patient/{practice.patient_id}")
    assert r.status_code == 200
    patient = r.json()
    assert patient["meta"]["profile"] == ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"]
    assert ids.nir_is_valid(ins_nir(patient))
    for path, code in (("/Patient/nobody", "not-found"), ("/Unicorn/1", "not-supported"),
                       ("/Patient/1/x/y", None)):
        r = get(practice, path)
        assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome", path
        if code:
            assert r.json()["issue"][0]["code"] == code


def test_paging_visits_every_patient_once(practice):
    bundle = get(practice, "/Patient", params={"_count": 70}).json()
    assert bundle["type"] == "searchset" and bundle["total"] >= 200
    assert link(bundle, "previous") is None
    seen, pages = ids_of(bundle), 1
    while link(bundle, "next"):
        bundle = get(practice, link(bundle, "next")).json()
        assert link(bundle, "previous") and link(bundle, "self")
        seen, pages = seen + ids_of(bundle), pages + 1
    assert len(seen) == len(set(seen)) == bundle["total"] and pages == -(-bundle["total"] // 70)
    entry = bundle["entry"][0]
    assert entry["search"]["mode"] == "match"
    assert entry["fullUrl"] == f"{practice.url}/Patient/{entry['resource']['id']}"
    assert len(get(practice, "/Patient", params={"_count": 1000}).json()["entry"]) == 100
    assert len(get(practice, "/Patient").json()["entry"]) == 20


def test_post_search_equals_get(practice):
    query = {"family": "m", "_count": "5"}
    by_get = get(practice, "/Patient", params=query).json()
    by_post = get(practice, "/Patient/_search", method="POST", data=query).json()
    assert by_get["total"] > 5
    assert ids_of(by_get) == ids_of(by_post) and by_get["total"] == by_post["total"]
    assert by_get["link"] == by_post["link"]


def test_search_parameters(practice):
    patient = get(practice, f"/Patient/{practice.patient_id}").json()
    nir = ins_nir(patient)
    for value in (f"{ids.INS_NIR_SYSTEM}|{nir}", nir):
        assert ids_of(get(practice, "/Patient", params={"identifier": value}).json()) == [practice.patient_id]
    assert get(practice, "/Patient", params={"identifier": f"urn:oid:1.2.3|{nir}"}).json()["total"] == 0
    total = get(practice, "/Patient", params={"_count": 0}).json()["total"]
    before = get(practice, "/Patient", params={"birthdate": "lt1970-01-01"}).json()["total"]
    after = get(practice, "/Patient", params={"birthdate": "ge1970"}).json()["total"]
    assert 0 < before < total and before + after == total
    year = patient["birthDate"][:4]
    born = get(practice, "/Patient", params={"birthdate": year, "_count": 100}).json()
    assert practice.patient_id in ids_of(born)
    assert all(e["resource"]["birthDate"].startswith(year) for e in born["entry"])
    family = patient["name"][0]["family"]
    named = get(practice, "/Patient", params={"name": family[:3].upper(), "gender": patient["gender"],
                                                "_count": 100}).json()
    assert practice.patient_id in ids_of(named)
    assert all(e["resource"]["gender"] == patient["gender"] for e in named["entry"])
    encounters = get(practice, "/Encounter", params={"patient": practice.patient_id}).json()
    assert encounters["total"] >= 1
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{practice.patient_id}"
               for e in encounters["entry"])
    day = encounters["entry"][0]["resource"]["period"]["start"][:10]
    same_day = get(practice, "/Encounter", params={"date": day, "patient": practice.patient_id}).json()
    assert same_day["total"] >= 1
    later = get(practice, "/Encounter", params={"date": f"gt{day}", "patient": practice.patient_id}).json()
    starts = [e["resource"]["period"]["start"][:10] for e in encounters["entry"]]
    assert later["total"] == sum(start > day for start in starts)
    obs = get(practice, "/Observation", params={"subject": f"Patient/{practice.patient_id}"}).json()
    assert obs["total"] >= 1
    assert get(practice, "/Observation", params={"date": f"ge{day}", "subject": practice.patient_id}
               ).json()["total"] >= 1
    heart_rate = {"code": "http://loinc.org|8867-4", "_count": 0}
    heart = get(practice, "/Observation", params=heart_rate).json()["total"]
    assert 0 < heart < get(practice, "/Observation", params={"_count": 0}).json()["total"]
    rpps = get(practice, "/Practitioner", params={"_count": 1}).json()["entry"][0]["resource"]["identifier"]
    value = next(i["value"] for i in rpps if i["system"] == ids.RPPS_SYSTEM)
    by_rpps = get(practice, "/Practitioner", params={"identifier": f"{ids.RPPS_SYSTEM}|{value}"}).json()
    assert by_rpps["total"] == 1


@pytest.mark.parametrize("query", [{"foo": "1"}, {"birthdate": "yesterday"}, {"name:fuzzy": "x"},
                                   {"birthdate": "sa2000"}, {"_count": "many"}, {"_getpages": "garbage"},
                                   {"_format": "xml"}])
def test_invalid_search_is_400(practice, query):
    r = get(practice, "/Patient", params=query)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


def test_lenient_handling_drops_unknown_parameters(practice):
    r = get(practice, "/Patient", params={"foo": "1", "family": "m"}, headers={"Prefer": "handling=lenient"})
    assert r.status_code == 200
    assert r.json()["total"] == get(practice, "/Patient", params={"family": "m"}).json()["total"]
    assert "foo" not in link(r.json(), "self")


def test_scopes(practice):
    tokens, own = practice.tokens, practice.patient_id
    new = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Zéphyr", "given": ["Anne"]}]}
    assert get(practice, "/Patient", method="POST", token=tokens["reader"], json=new).status_code == 403
    assert get(practice, "/Patient", method="POST", token=tokens["patient"], json=new).status_code == 403
    created = get(practice, "/Patient", method="POST", token=tokens["admin"], json=new,
                  headers={"Content-Type": "application/fhir+json"})
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"{practice.url}/Patient/{created.json()['id']}")
    assert get(practice, "/Patient", params={"family": "zephyr"}).json()["total"] == 1
    wrong = get(practice, "/Patient", method="POST", json={"resourceType": "Observation"})
    assert wrong.status_code == 400 and wrong.json()["resourceType"] == "OperationOutcome"
    assert get(practice, "/Patient", token=tokens["reader"]).status_code == 200

    as_patient = tokens["patient"]
    assert get(practice, f"/Patient/{own}", token=as_patient).status_code == 200
    assert get(practice, "/Patient/pat-0002", token=as_patient).status_code == 403
    assert ids_of(get(practice, "/Patient", token=as_patient).json()) == [own]
    encounters = get(practice, "/Encounter", token=as_patient).json()
    assert encounters["total"] >= 1 and all(e["resource"]["subject"]["reference"] == f"Patient/{own}"
                                            for e in encounters["entry"])
    other = get(practice, "/Encounter", params={"patient": "pat-0002"}).json()["entry"][0]["resource"]["id"]
    assert get(practice, f"/Encounter/{other}", token=as_patient).status_code == 403
    assert get(practice, "/Practitioner", token=as_patient).status_code == 403


def test_methods_not_allowed(practice):
    for method in ("DELETE", "PUT", "TRACE", "PATCH"):
        r = get(practice, f"/Patient/{practice.patient_id}", method=method)
        assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome", method
        assert r.headers["X-Frame-Options"] == "DENY"


def test_accesses_are_audited(practice):
    reader = practice.tokens["reader"]
    get(practice, f"/Patient/{practice.patient_id}", token=reader)
    events = get(practice, "/AuditEvent", params={"agent": "Practitioner/prac-002", "_count": 100}).json()
    reads = [e["resource"] for e in events["entry"] if e["resource"]["subtype"][0]["code"] == "read"]
    assert reads and reads[-1]["entity"][0]["what"]["reference"] == f"Patient/{practice.patient_id}"
    assert reads[-1]["outcome"] == "0" and reads[-1]["agent"][0]["altId"] == "reader"
    today = reads[-1]["recorded"][:10]
    assert get(practice, "/AuditEvent", params={"date": today, "_count": 0}).json()["total"] >= 1


def test_internal_error_is_generic(practice, monkeypatch):
    monkeypatch.setattr(practice._app, "_read", lambda *a: 1 / 0)
    r = get(practice, f"/Patient/{practice.patient_id}")
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    assert "ZeroDivision" not in r.text and "Traceback" not in r.text


def test_keep_alive_and_garbage(practice):
    ctx = ssl.create_default_context(cafile=str(practice.ca_file))
    conn = http.client.HTTPSConnection(practice.host, practice.port, context=ctx, timeout=T)
    try:
        socks = []
        for _ in range(3):
            conn.request("GET", "/fhir/metadata")
            response = conn.getresponse()
            assert response.status == 200 and len(response.read()) == int(response.headers["Content-Length"])
            socks.append(conn.sock)
        assert socks[0] is not None and socks == socks[:1] * 3  # one connection served every request
    finally:
        conn.close()
    # plain HTTP on the TLS port, and a client that connects and says nothing, hurt no one else
    with socket.create_connection((practice.host, practice.port), timeout=T) as plain:
        plain.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert b"HTTP/1.1" not in plain.recv(100)
    with socket.create_connection((practice.host, practice.port), timeout=T):
        assert get(practice, "/metadata", token=None).status_code == 200


def test_clean_tls_refuses_old_protocols(practice):
    assert tls_handshake(practice, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert tls_handshake(practice, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with warnings.catch_warnings(), pytest.raises(ssl.SSLError):
        warnings.simplefilter("ignore", DeprecationWarning)
        tls_handshake(practice, ssl.TLSVersion.TLSv1)


def test_write_state(practice, tmp_path):
    path = practice.write_state(tmp_path / "state")
    target = tomllib.loads(path.read_text())["targets"][0]
    assert target["id"] == "practice" and target["kind"] == "fhir" and target["url"] == practice.url
    assert target["ca_file"] == str(practice.ca_file) and practice.ca_file.is_absolute()
    assert target["token"] == practice.token == practice.tokens["clinician"]
    assert {"reader", "patient"} <= set(target["tokens"])


# --- data


def test_generated_identifiers_are_valid_and_consistent():
    store = build(42)
    patients = list(store["Patient"].values())
    assert len(patients) >= 200 and len(store["Practitioner"]) >= 15 and len(store["Organization"]) >= 5
    corsica = 0
    for p in patients:
        nir = ins_nir(p)
        assert ids.nir_is_valid(nir), nir
        assert nir[0] == ("1" if p["gender"] == "male" else "2")
        assert nir[1:5] == p["birthDate"][2:4] + p["birthDate"][5:7]
        corsica += nir[5:7] in ("2A", "2B")
    assert corsica > 0
    for prac in store["Practitioner"].values():
        by_system = {i["system"]: i["value"] for i in prac["identifier"]}
        assert ids.rpps_is_valid(by_system[ids.RPPS_SYSTEM])
        assert by_system[ids.IDNATPS_SYSTEM] == "8" + by_system[ids.RPPS_SYSTEM]
    for org in store["Organization"].values():
        by_type = {i["type"]["coding"][0]["code"]: i["value"] for i in org["identifier"]}
        assert ids.finess_is_valid(by_type["FINEG"]) and ids.siret_is_valid(by_type["SIRET"])
        assert ids.siren_is_valid(by_type["SIREN"]) and by_type["SIRET"].startswith(by_type["SIREN"])
    assert len(store["Encounter"]) >= 200 and len(store["Observation"]) >= 400


def test_data_is_deterministic_for_a_seed():
    assert build(42) == build(42)
    assert build(42)["Patient"] != build(43)["Patient"]


# --- flaws


def test_flaw_names():
    assert {"tls10", "no-hsts", "no-auth", "stack-trace-errors", "bad-nir-key", "server-version", "slow",
            "invalid-binding", "missing-birthplace", "wrong-identifier-system", "search-param-ignored",
            "broken-paging"} <= set(FLAWS)
    assert all(isinstance(d, str) and d for d in FLAWS.values())
    with pytest.raises(ValueError, match=r"unknown flaw 'x' \(known: tls10, "):
        start_practice(flaws=("x",))


def test_flaw_tls10(flawed):
    system = flawed("tls10")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert tls_handshake(system, ssl.TLSVersion.TLSv1) == "TLSv1"
        assert tls_handshake(system, ssl.TLSVersion.TLSv1_1) == "TLSv1.1"
    # TLS 1.2 keeps its AEAD-only suites: the flaw is about protocols only
    with pytest.raises(ssl.SSLError):
        tls_handshake(system, ssl.TLSVersion.TLSv1_2, "ECDHE+AES+SHA1:@SECLEVEL=0")
    assert get(system, "/metadata", token=None).status_code == 200


def test_flaw_no_hsts(flawed):
    r = get(flawed("no-hsts"), "/metadata", token=None)
    assert "Strict-Transport-Security" not in r.headers and r.headers["X-Frame-Options"] == "DENY"


def test_flaw_no_auth(flawed, practice):
    system = flawed("no-auth")
    assert get(system, "/Patient", token=None).status_code == 200
    assert get(system, f"/Patient/{system.patient_id}", token="nonsense").status_code == 200
    assert get(system, "/Patient/pat-0002", token=system.tokens["patient"]).status_code == 403


def test_flaw_stack_trace_errors(flawed):
    system = flawed("stack-trace-errors")
    for r in (get(system, "/Patient/nobody"), get(system, "/Patient", token=None),
              get(system, "/Patient", params={"foo": "1"})):
        assert r.status_code in (400, 401, 404)
        assert r.headers["Content-Type"].startswith("text/plain")
        assert r.text.startswith("Traceback (most recent call last):")
    ok = get(system, f"/Patient/{system.patient_id}")
    assert ok.headers["Content-Type"].startswith("application/fhir+json")


def test_flaw_bad_nir_key(flawed, practice):
    system = flawed("bad-nir-key")
    bundle = get(system, "/Patient", params={"_count": 100}).json()
    clean = get(practice, "/Patient", params={"_count": 100}).json()
    for flawed_entry, clean_entry in zip(bundle["entry"], clean["entry"], strict=True):
        bad, good = ins_nir(flawed_entry["resource"]), ins_nir(clean_entry["resource"])
        assert not ids.nir_is_valid(bad) and ids.nir_is_valid(good)
        assert bad[:13] == good[:13] and len(bad) == 15 and 1 <= int(bad[13:]) <= 97


def test_flaw_server_version(flawed):
    r = get(flawed("server-version"), "/metadata", token=None)
    assert r.headers["Server"] == "vigie-reference/0.1.0 Python/3.11"
    assert r.headers["X-Powered-By"] == "Python"


def test_flaw_slow(flawed):
    # slow only under concurrent use (4+ client connections), so that functional checks stay fast
    system = flawed("slow")
    started = time.monotonic()
    assert get(system, "/Patient", params={"_count": 1}).status_code == 200
    alone = time.monotonic() - started
    ctx = ssl.create_default_context(cafile=str(system.ca_file))
    with contextlib.ExitStack() as stack:
        for _ in range(3):  # three other clients connected and idle
            stack.enter_context(ctx.wrap_socket(socket.create_connection((system.host, system.port)),
                                                server_hostname=system.host))
        deadline = time.monotonic() + 5
        while system._app.connections < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        get(system, f"/Patient/{system.patient_id}")
        read = time.monotonic() - started
        started = time.monotonic()
        assert get(system, "/Patient", params={"_count": 1}).status_code == 200
        assert time.monotonic() - started >= SLOW_SEARCH_S > max(read, alone)


# --- life cycle


def test_stop_releases_port_and_threads(tmp_path):
    before = set(threading.enumerate())
    system = start_practice(workdir=tmp_path)
    session = requests.Session()  # keeps its connection open across stop()
    session.get(f"{system.url}/metadata", verify=str(system.ca_file), timeout=T)
    idle = socket.create_connection((system.host, system.port), timeout=T)  # never handshakes
    started = time.monotonic()
    system.stop()
    # stop() does not wait for the idle connection to time out (CONNECTION_TIMEOUT_S = 10 s), even when it
    # comes before the connection's thread has started
    assert time.monotonic() - started < 8
    assert set(threading.enumerate()) <= before
    idle.close()
    session.close()
    with start_practice(port=system.port, workdir=tmp_path / "again") as again:
        assert get(again, "/metadata", token=None).status_code == 200


def test_command_line(tmp_path):
    command = [sys.executable, "-m", "vigie.fixtures.practice", "--port", "0", "--state", str(tmp_path)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, token = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        target = tomllib.loads((tmp_path / "vigie.toml").read_text())["targets"][0]
        assert (target["url"], target["token"]) == (url, token)
        r = requests.get(f"{url}/Patient", headers={"Authorization": f"Bearer {token}"},
                         verify=target["ca_file"], timeout=T)
        assert r.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert proc.stderr.read() == ""
