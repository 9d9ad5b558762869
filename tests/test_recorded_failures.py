"""Requirements whose violation no reference system can reproduce on this machine, shown failing through their
own check on a recorded observation: the scan a vulnerable TLS stack gives, the statistics of a warehouse
whose cohort queries are slow. docs/coverage.md lists them as such (proof kind `recorded`).

This machine's OpenSSL 3 has no TLS compression, never lets a client renegotiate through nginx, always honours
TLS_FALLBACK_SCSV and has none of Heartbleed, ROBOT or CCS injection; nginx could not be made to drop the
extended master secret (`ssl_conf_command Options -ExtendedMasterSecret` changed nothing) nor to offer
secp224r1 (measured); a warehouse slow enough to miss a 10 s target would cost minutes of CPU on every CI run.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from checkcall import Outcome, conclude
from test_tls_scan import _now_cert, _run, _scan

from load import test_load as load_check
from vigie.campaign import Target
from vigie.catalogue import load_profile
from vigie.load.stats import AGGREGATED, LoadResult, RequestStats, merge
from vigie.tls import mozilla

PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def _sound(**kw):
    """A scan of a sound TLS 1.2/1.3 server, with the features given changed."""
    base = {"certificate": _now_cert(), "compression": False, "secure_renegotiation": True,
            "client_renegotiation": False, "extended_master_secret": True, "early_data": False,
            "fallback_scsv": True, "heartbleed": False, "ccs_injection": False,
            "robot": "NOT_VULNERABLE_RSA_NOT_SUPPORTED", "curves": ["X25519", "secp256r1"],
            "mozilla": {c: {"issues": {}} for c in mozilla.CONFIGURATIONS}}
    return _scan(**{**base, **kw})


# requirement -> (what the vulnerable stack shows in the scan, words of the failure)
TLS_FLAWS = {
    "ANSSI-TLS-10": ({"compression": True}, "compression"),
    "ANSSI-TLS-11": ({"secure_renegotiation": False}, "renegotiation"),
    "ANSSI-TLS-14": ({"fallback_scsv": False}, "fallback"),
    "ANSSI-TLS-15": ({"robot": "VULNERABLE_STRONG_ORACLE"}, "ROBOT"),
    "ANSSI-TLS-08": ({"curves": ["X25519", "secp256r1", "secp224r1"]}, "secp224r1"),
    "ANSSI-TLS-12": ({"extended_master_secret": False}, "extended master secret"),
    # sslyze's Mozilla checker on the same server
    "MOZ-TLS-INT-06": ({"mozilla": {c: {"issues": {"tls_vulnerability_extended_master_secret": "Server does not "
                                                   "support the extended master secret extension"}} if
                                    c == "intermediate" else {"issues": {}} for c in mozilla.CONFIGURATIONS}},
                       "extended master secret"),
    "MOZ-TLS-MOD-06": ({"mozilla": {c: {"issues": {"tls_vulnerability_extended_master_secret": "Server does not "
                                                   "support the extended master secret extension"}} if
                                    c == "modern" else {"issues": {}} for c in mozilla.CONFIGURATIONS}},
                       "extended master secret"),
}


@pytest.mark.parametrize("requirement", sorted(TLS_FLAWS))
def test_tls_feature_flaw_fails_its_requirement(requirement):
    assert _run(requirement, _sound())[0] == "passed"
    changes, words = TLS_FLAWS[requirement]
    status, summary = _run(requirement, _sound(**changes))
    assert status == "failed" and words.lower() in summary.lower(), summary


def test_ccs_injection_and_heartbleed_fail_anssi_tls_15():
    for changes in ({"ccs_injection": True}, {"heartbleed": True}):
        assert _run("ANSSI-TLS-15", _sound(**changes))[0] == "failed", changes


# ---- load-warehouse: the cohort queries' latency ---------------------------------------------------------

WAREHOUSE = Target(id="warehouse", kind="warehouse", url="duckdb:////nowhere.duckdb")


def _warehouse_run(**scenarios) -> LoadResult:
    """Five analysts' run: each query name (count, {ms: n})."""
    stats = {n: RequestStats(n, count=c, failures=0, histogram=h, duration_s=30.0,
                             total_response_time=sum(k * v for k, v in h.items()),
                             min_response_time=min(h), max_response_time=max(h))
             for n, (c, h) in scenarios.items()}
    agg = merge(AGGREGATED, list(stats.values()), 30.0)
    return LoadResult(scenarios=stats, aggregated=agg, duration_s=30.0, users=5, http_responses=agg.count)


def _judge(requirement_id: str, result: LoadResult):
    """The requirement's own check and params (load-warehouse.yaml), as the plugin calls it."""
    profile = load_profile(PROFILES / "load-warehouse.yaml")
    found = next(r for r in profile.requirements if r.id == requirement_id)
    requirement = SimpleNamespace(id=found.id, profile=profile.id, check=found.check, params=found.params)
    return conclude(load_check.test_load_target, requirement, WAREHOUSE, {"load": result}.get, Outcome())


# a warehouse without an index on condition_occurrence.condition_concept_id: the cohort queries scan it whole
SLOW_COHORTS = {"t2dm-cohort": (20, {900.0: 12, 12000.0: 8}), "metformin-after-t2dm": (20, {800.0: 14, 14000.0: 6}),
                "demographics": (40, {30.0: 40})}
FAST_COHORTS = {"t2dm-cohort": (20, {900.0: 20}), "metformin-after-t2dm": (20, {800.0: 20}),
                "demographics": (40, {30.0: 40})}


SLOW_WAREHOUSE_REQUIREMENTS = ["LOAD-WH-01", "LOAD-WH-03"]


@pytest.mark.parametrize("requirement", SLOW_WAREHOUSE_REQUIREMENTS)
def test_slow_cohort_queries_fail_the_latency_targets(requirement):
    assert _judge(requirement, _warehouse_run(**FAST_COHORTS)).status == "passed"
    result = _judge(requirement, _warehouse_run(**SLOW_COHORTS))
    assert result.status == "failed", result.summary
