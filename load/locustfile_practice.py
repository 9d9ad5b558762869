"""Load scenario for a FHIR R4 practice system: the day of a practice, as a mix of tasks.

Request names are the scenario names that load targets refer to:

| request name                | what a user does                                              | weight |
|-----------------------------|---------------------------------------------------------------|--------|
| patient-search-name         | GET Patient?family=<prefix>&_count=10                         | 4      |
| patient-search-identifier   | GET Patient?identifier=<system>|<value> of a patient seen     | 2      |
| patient-read                | GET Patient/<id> of a patient seen                            | 3      |
| practitioner-search         | GET Practitioner?_count=10                                    | 1      |
| slot-search                 | GET Slot?status=free&start=ge<now>&start=le<now + 3 days>     | 2      |
| encounter-create            | POST Encounter (ambulatory, in progress) for a patient seen   | 1      |

The slot search is the core of the one the ANS SAS platform sends to software that publishes appointment
slots (free slots from now to 3 days ahead; the SAS test kit adds _include=Slot:schedule, an iterated
Schedule:actor include and a chained practitioner identifier, left out here); patients are found by name,
then by their identifiers, as a front desk does.

Every user runs the same cycle of tasks, each task as often as its weight and spread evenly, starting at a
different point of the cycle: the mix holds exactly even in a run of a few seconds, where drawing tasks at
random could leave a scenario without a single request.

Run by vigie's load driver in its own process. The host is the FHIR base URL; settings come from the
environment: VIGIE_LOAD_TOKEN (bearer token), VIGIE_LOAD_CA_FILE (CA that signed the server certificate;
the public CAs when empty), VIGIE_LOAD_FAMILIES (comma-separated family-name prefixes to search),
VIGIE_LOAD_MIX (JSON {request name: weight}, from the profile's load plan; 0 switches a task off),
VIGIE_RUN_ID (the run's id, tagged on what it creates) and VIGIE_READ_ONLY (non-empty: no encounter-create).
"""
import datetime as dt
import itertools
import json
import os
import random
import ssl
from typing import ClassVar
from urllib.parse import quote

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from vigie.fhirrest import tagged  # what the load creates is never judged as the vendor's data
from vigie.writes import read_only

CA_FILE = os.environ.get("VIGIE_LOAD_CA_FILE") or None
TOKEN = os.environ.get("VIGIE_LOAD_TOKEN") or ""
FAMILIES = [f for f in (os.environ.get("VIGIE_LOAD_FAMILIES") or "Mar,Ber,Dur,Pet,Rob,Ler,Mor,Fou").split(",")
            if f]
MIX = json.loads(os.environ.get("VIGIE_LOAD_MIX") or "{}")
FHIR_JSON = "application/fhir+json"
GOLDEN = 0.6180339887


def verified_context(*_, **__):
    # geventhttpclient passes its own bundle as cafile= when the factory accepts it: trust only ours instead
    return ssl.create_default_context(cafile=CA_FILE)


def resources(bundle: dict) -> list[dict]:
    found = (e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict))
    return [r for r in found if isinstance(r, dict) and isinstance(r.get("id"), str)]


def why(resp) -> str:
    # status 0 means no HTTP response at all: report the network or TLS error instead
    err = getattr(resp, "error", None)
    return f"HTTP {resp.status_code}" if resp.status_code or err is None else f"{type(err).__name__}: {err}"


class PracticeUser(FastHttpUser):
    wait_time = between(0.05, 0.2)
    insecure = False  # locust's default turns hostname checking off
    ssl_context_factory = staticmethod(verified_context) if CA_FILE else None
    connection_timeout = 5.0
    network_timeout = 10.0
    default_headers: ClassVar[dict] = {"Accept": FHIR_JSON,
                                       **({"Authorization": f"Bearer {TOKEN}"} if TOKEN else {})}

    def on_start(self):
        self.patients: dict[str, dict] = {}  # id -> a patient seen in a search result
        # users start the cycle at spread positions: even a short run (or a slow server) sees every task
        self.position = int(next(_users) * GOLDEN * len(CYCLE))
        self.search_patients_by_name()

    # --- helpers

    def get_bundle(self, path: str, name: str):
        with self.client.get(path, name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(why(resp))
                return None
            try:
                body = resp.json()
            except ValueError:
                body = None
            kind = body.get("resourceType") if isinstance(body, dict) else None
            if kind != "Bundle":
                resp.failure(f"expected a Bundle, got {kind or 'no JSON object'}")
                return None
            return body

    def remember(self, bundle) -> None:
        if bundle is not None:
            for patient in resources(bundle):
                if patient.get("resourceType") == "Patient":
                    self.patients[patient["id"]] = patient
            while len(self.patients) > 200:  # bounded memory per user
                self.patients.pop(next(iter(self.patients)))

    def some_patient(self) -> dict | None:
        return random.choice(list(self.patients.values())) if self.patients else None

    # --- tasks (weights below)

    def search_patients_by_name(self):
        family = random.choice(FAMILIES)
        self.remember(self.get_bundle(f"/Patient?family={quote(family)}&_count=10", "patient-search-name"))

    def search_patients_by_identifier(self):
        patient = self.some_patient()
        idents = [i for i in (patient or {}).get("identifier") or []
                  if isinstance(i, dict) and i.get("system") and i.get("value")]
        if not idents:
            return  # no patient seen yet: nothing to look up, and no request to count
        ident = random.choice(idents)
        token = quote(f"{ident['system']}|{ident['value']}", safe="")
        bundle = self.get_bundle(f"/Patient?identifier={token}", "patient-search-identifier")
        if bundle is not None and patient["id"] not in [r["id"] for r in resources(bundle)]:
            # a search by a patient's own identifier that misses the patient is a wrong answer
            self.patients.pop(patient["id"], None)

    def read_patient(self):
        patient = self.some_patient()
        if patient is None:
            return
        with self.client.get(f"/Patient/{quote(patient['id'])}", name="patient-read", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(why(resp))

    def search_practitioners(self):
        self.get_bundle("/Practitioner?_count=10", "practitioner-search")

    def search_free_slots(self):
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start, end = (quote(t.isoformat().replace("+00:00", "Z")) for t in (now, now + dt.timedelta(days=3)))
        self.get_bundle(f"/Slot?status=free&start=ge{start}&start=le{end}&_count=20", "slot-search")

    def create_encounter(self):
        patient = self.some_patient()
        if patient is None:
            return
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        encounter = tagged({"resourceType": "Encounter", "status": "in-progress",
                            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                                      "display": "ambulatory"},
                            "subject": {"reference": f"Patient/{patient['id']}"}, "period": {"start": now}})
        with self.client.post("/Encounter", data=json.dumps(encounter), name="encounter-create",
                              headers={"Content-Type": FHIR_JSON}, catch_response=True) as resp:
            if resp.status_code != 201:
                resp.failure(why(resp))

    WEIGHTS: ClassVar[dict] = {"patient-search-name": (search_patients_by_name, 4),
                               "patient-search-identifier": (search_patients_by_identifier, 2),
                               "patient-read": (read_patient, 3),
                               "practitioner-search": (search_practitioners, 1),
                               "slot-search": (search_free_slots, 2),
                               "encounter-create": (create_encounter, 1)}

    @task
    def next_in_cycle(self):
        name = CYCLE[self.position % len(CYCLE)]
        self.position += 1
        self.WEIGHTS[name][0](self)


def interleave(weights: dict[str, int]) -> list[str]:
    """Each name as many times as its weight, spread evenly (smooth weighted round-robin)."""
    total, current, cycle = sum(weights.values()), dict.fromkeys(weights, 0), []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        best = max(current, key=current.get)
        current[best] -= total
        cycle.append(best)
    return cycle


_unknown = sorted(set(MIX) - set(PracticeUser.WEIGHTS))
if _unknown:
    raise ValueError(f"load mix names unknown tasks {', '.join(_unknown)} (known: {', '.join(PracticeUser.WEIGHTS)})")
# --read-only (VIGIE_READ_ONLY): the tasks that write are left out of the mix
WRITING = {"encounter-create"}
CYCLE = interleave({name: MIX.get(name, weight) for name, (_, weight) in PracticeUser.WEIGHTS.items()
                    if MIX.get(name, weight) > 0 and not (read_only() and name in WRITING)})
_users = itertools.count()
