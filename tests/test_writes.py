"""What vigie writes to a FHIR target (vigie.writes): each resource it creates carries its origin and the run's
id; at the end of the run it deletes them where the server allows; with --read-only it writes nothing."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from vigie.fixtures.practice import start_practice

from vigie.fhirrest import CREATED_TAG
from vigie.writes import READ_ONLY_REASON, RUN_TAG_SYSTEM, clean

TYPES = ("Patient", "Practitioner", "Organization", "Encounter", "Observation")
# the three writers: the load phase, TRACE-03, and API-ACCESS-06 (whose create succeeds on this flawed system)
PROFILES = ("--profile", "traceability", "--profile", "api-access", "--profile", "load-baseline")


def tagged_resources(system, tag: str) -> dict:
    """Type -> ids of what the system serves with that tag."""
    found = {}
    for rtype in TYPES:
        bundle = requests.get(f"{system.url}/{rtype}", params={"_tag": tag, "_count": 500}, timeout=30,
                              headers={"Authorization": f"Bearer {system.token}"}, verify=str(system.ca_file)).json()
        ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
        if ids:
            found[rtype] = ids
    return found


def run(system, tmp_path: Path, *more: str) -> dict:
    config = system.write_state(tmp_path / "state")
    out = tmp_path / "bundle"
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--config", str(config), *PROFILES,
                             "--load-duration", "3", "--format", "md", "--out", str(out), *more],
                            capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return {"result": result, "report": json.loads((out / "report.json").read_text())}


ORIGIN = f"{CREATED_TAG['system']}|{CREATED_TAG['code']}"


def test_what_a_run_creates_is_deleted_at_its_end(tmp_path):
    with start_practice(flaws=["reader-can-write"], workdir=tmp_path / "tls") as system:
        done = run(system, tmp_path)
        report = done["report"]
        left = tagged_resources(system, ORIGIN)
    status = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert status["TRACE-03"] == "passed" and status["API-ACCESS-06"] == "failed", status
    [cleaned] = report["run"]["cleanup"]
    # the load's Encounters, TRACE-03's Observation, the reader's Patient: all found by the run's tag, and deleted
    assert cleaned["types"].get("Encounter", 0) > 0 and cleaned["types"]["Observation"] == 1, cleaned
    assert cleaned["types"]["Patient"] == 1 and cleaned["deleted"] == cleaned["found"], cleaned
    assert cleaned["left_because"] is None and report["run"]["read_only"] is False
    assert left == {}, left
    assert f"practice: deleted {cleaned['found']} of the {cleaned['found']} resources this run created" \
        in done["result"].stdout


def test_read_only_writes_nothing(tmp_path):
    with start_practice(flaws=["reader-can-write"], workdir=tmp_path / "tls") as system:
        done = run(system, tmp_path, "--read-only")
        left = tagged_resources(system, ORIGIN)
    report = done["report"]
    outcomes = {o["requirement"]: o for o in report["outcomes"]}
    for writer in ("TRACE-03", "API-ACCESS-06"):
        assert outcomes[writer]["status"] == "not_tested" and outcomes[writer]["summary"] == READ_ONLY_REASON
    assert outcomes["TRACE-01"]["status"] == "passed" and outcomes["LOAD-02"]["status"] == "passed"
    stats = json.loads((tmp_path / "bundle" / "evidence" / "load" / "practice" / "stats.json").read_text())
    assert "encounter-create" not in stats["scenarios"] and "patient-read" in stats["scenarios"], stats["scenarios"]
    assert left == {} and report["run"]["read_only"] is True and report["run"]["cleanup"] == []


class Answer:
    def __init__(self, status: int, body=None):
        self.status_code, self.body = status, body

    def json(self):
        return self.body


class FakeServer:
    """A FHIR server's search and DELETE, as `clean` sees them through the recording client."""

    def __init__(self, resources: list[dict], delete_status: int = 204):
        self.resources, self.delete_status, self.deleted = resources, delete_status, []

    def get(self, rtype, params):
        return Answer(200, {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": r} for r in self.resources if r["resourceType"] == rtype]})

    def request(self, method, path, may_refuse=False):
        assert method == "DELETE" and may_refuse
        if self.delete_status < 300:
            self.deleted.append(path)
            self.resources = [r for r in self.resources if f"{r['resourceType']}/{r['id']}" != path]
        return Answer(self.delete_status)


def resource(rid: str, *tags: dict) -> dict:
    return {"resourceType": "Encounter", "id": rid, "meta": {"tag": list(tags)}}


RUN = {"system": RUN_TAG_SYSTEM, "code": "run-1"}


def test_only_what_carries_the_runs_tag_is_deleted():
    # a server that ignores _tag answers with its own data, and an earlier run's writes: none of it is deleted
    server = FakeServer([resource("theirs"), resource("earlier", CREATED_TAG, {**RUN, "code": "run-0"}),
                         resource("ours", CREATED_TAG, RUN)])
    cleaned = clean(server, ["Encounter"], "run-1", "t")
    assert server.deleted == ["Encounter/ours"] and (cleaned.found, cleaned.deleted) == (1, 1)


@pytest.mark.parametrize("status", [405, 403])
def test_a_server_that_refuses_delete_keeps_them_and_says_so(status):
    server = FakeServer([resource("ours", CREATED_TAG, RUN)], delete_status=status)
    cleaned = clean(server, ["Encounter"], "run-1", "t")
    assert cleaned.deleted == 0 and cleaned.left_because == f"DELETE Encounter/ours answered {status}"


def test_a_server_that_keeps_what_it_said_it_deleted_is_not_asked_forever():
    server = FakeServer([resource("ours", CREATED_TAG, RUN)])
    server.request = lambda method, path, may_refuse=False: Answer(204)   # says deleted, keeps it
    cleaned = clean(server, ["Encounter"], "run-1", "t")
    assert cleaned.left_because == "Encounter/ours is still served after its DELETE"


def test_a_run_that_writes_nothing_deletes_nothing(tmp_path):
    # no writing check, no load: not one request is spent looking for writes
    with start_practice(workdir=tmp_path / "tls") as system:
        config = system.write_state(tmp_path / "state")
        result = subprocess.run([sys.executable, "-m", "vigie", "run", "--config", str(config), "--profile",
                                 "http-hardening", "--format", "md", "--out", str(tmp_path / "b")],
                                capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "report.json").read_text())["run"]["cleanup"] == []
    assert not (tmp_path / "b" / "evidence" / "cleanup").exists() and "resources this run created" not in result.stdout
