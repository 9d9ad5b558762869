"""Pre-flight (vigie.preflight): before a campaign, each FHIR target is reached, its certificate verified with the
given CA and the token tried with one search, in under 2 s; what would make every check an error for a reason on
the user's side is one line with what to do, and exit 3 before the campaign unless --run-anyway."""
import subprocess
import sys
import time

import pytest
from vigie.fixtures.hostile.server import start_hostile
from vigie.fixtures.practice import start_practice

from vigie.campaign import Target
from vigie.load.process import free_port
from vigie.preflight import check_target


def vigie(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    with start_practice(port=0, workdir=tmp_path_factory.mktemp("practice")) as system:
        yield system


def target(system, **changes) -> Target:
    values = {"id": "p", "kind": "fhir", "url": system.url, "ca_file": str(system.ca_file), "token": system.token}
    return Target(**{**values, **changes})


def timed(t: Target):
    started = time.monotonic()
    findings = check_target(t)
    return findings, time.monotonic() - started


def test_a_healthy_target_passes_in_well_under_two_seconds(practice):
    findings, elapsed = timed(target(practice))
    assert [f.ok for f in findings] == [True, True, True] and elapsed < 2, (findings, elapsed)
    assert findings[-1].text == "token accepted (GET Patient?_count=1: 200)"


@pytest.mark.parametrize("change, expected", [
    ({"ca_file": None}, ("certificate not trusted (unable to get local issuer certificate) by the system's CAs: "
                         "give the CA that signed the server's certificate with --ca-file")),
    ({"token": "not-a-token"}, "the server refused the token (401 on GET Patient?_count=1): check --token"),
    ({"token": None}, "the server asks for a token (401 on GET Patient?_count=1): give one with --token"),
])
def test_what_the_user_must_fix_is_one_line_with_the_hint(practice, change, expected):
    findings, elapsed = timed(target(practice, **change))
    assert not findings[-1].ok and expected in findings[-1].text and elapsed < 2, findings


def test_nothing_listening_is_found_at_once():
    findings, elapsed = timed(Target(id="p", kind="fhir", url=f"https://127.0.0.1:{free_port()}/fhir"))
    assert len(findings) == 1 and not findings[0].ok and elapsed < 2
    assert "cannot connect to 127.0.0.1" in findings[0].text and "is the server running" in findings[0].text


@pytest.mark.parametrize("behaviour", ["silent", "slow-drip", "tls-fail", "garbage"])
def test_a_broken_server_is_left_to_the_checks_within_two_seconds(tmp_path, behaviour):
    # what the campaign itself judges (no handshake, a dripping or broken answer) does not stop the run
    with start_hostile(behaviour, workdir=tmp_path) as system:
        findings, elapsed = timed(Target(id="h", kind="fhir", url=system.url, ca_file=str(system.ca_file),
                                         token="x"))
    assert all(f.ok for f in findings) and elapsed < 2.5, (findings, elapsed)
    assert "the checks will judge it" in findings[-1].text or "the TLS checks" in findings[-1].text


def test_a_certificate_for_another_name_stops_the_run(tmp_path):
    with start_hostile("wrong-name", workdir=tmp_path) as system:
        findings, _ = timed(Target(id="h", kind="fhir", url=system.url, ca_file=str(system.ca_file)))
    assert not findings[-1].ok and "certificate verification failed" in findings[-1].text


def test_run_stops_before_the_campaign_with_exit_3(practice, tmp_path):
    started = time.monotonic()
    result = vigie("run", "--fhir", practice.url, "--token", "not-a-token", "--ca-file", str(practice.ca_file),
                   "--profile", "fhir-r4-rest", "--out", str(tmp_path / "b"))
    assert result.returncode == 3 and time.monotonic() - started < 20, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [("vigie: error: pre-flight fhir: the server refused the token (401 on GET Patient?_count=1): "
                      "check --token (token in vigie.toml)"),
                     ("vigie: error: nothing was run; --run-anyway runs the campaign all the same (its checks will "
                      "end in error)")], lines
    assert "pre-flight fhir: connected to" in result.stdout and "certificate trusted" in result.stdout
    assert not (tmp_path / "b").exists()
