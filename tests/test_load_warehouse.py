"""The warehouse load scenario: concurrent OMOP cohort queries on the reference warehouse (DuckDB).

Proven both ways: the reference warehouse meets load-warehouse; a warehouse without its clinical tables
fails the error-rate target (and the run stops early), and a missing one is an error, never a hang.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from vigie.campaign import Target
from vigie.catalogue import load_profile
from vigie.errors import ObservationError
from vigie.evidence import EvidenceStore, Redactor
from vigie.load.process import MEMORY_LIMIT, memory_limit
from vigie.loadrun import evaluate_target, observe_load, observe_load_for, plan_for

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"demographics", "t2dm-cohort", "metformin-after-t2dm", "hypertension-incidence", "visits-by-type",
             "high-systolic-bp"}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from vigie.fixtures.warehouse import build_reference
    path = tmp_path_factory.mktemp("wh") / "cdm.duckdb"
    return build_reference(f"duckdb:///{path}", persons=300)


@pytest.fixture
def short(monkeypatch):
    monkeypatch.setenv("VIGIE_LOAD_USERS", "3")
    monkeypatch.setenv("VIGIE_LOAD_DURATION", "2")
    monkeypatch.setenv("VIGIE_LOAD_SPAWN_RATE", "20")


def _observe(url: str, tmp_path: Path):
    requirements = load_profile(ROOT / "profiles" / "load-warehouse.yaml").requirements
    target = Target(id="warehouse", kind="warehouse", url=url)
    store = EvidenceStore(tmp_path, Redactor([]))
    result = observe_load_for(lambda _: observe_load(target, store), target, plan_for(requirements[0]))
    return result, {r.id: evaluate_target(result, r.params) for r in requirements}


def test_reference_warehouse_meets_the_load_targets(warehouse, tmp_path, short, monkeypatch):
    # 3 s: about 65 queries drawn by weight, so that each of the six (the rarest weigh 1 in 8) is met
    monkeypatch.setenv("VIGIE_LOAD_DURATION", "3")
    result, verdicts = _observe(warehouse, tmp_path)
    assert set(result.scenarios) == SCENARIOS
    assert result.aggregated.failures == 0, result.errors
    assert result.http_responses == result.aggregated.count  # every query answered
    assert all(ok for ok, _, _ in verdicts.values()), verdicts
    assert (tmp_path / "evidence" / "load" / "warehouse" / "stats.json").is_file()


def test_warehouse_without_its_clinical_tables_fails_the_error_rate(tmp_path, short):
    path = tmp_path / "empty.duckdb"
    with duckdb.connect(str(path)) as con:  # only persons: every cohort query fails in the database
        con.execute("CREATE TABLE person (person_id BIGINT, gender_concept_id INTEGER, year_of_birth INTEGER)")
        con.execute("INSERT INTO person VALUES (1, 8507, 1960), (2, 8532, 1971)")
    result, verdicts = _observe(f"duckdb:///{path}", tmp_path / "out")
    ok, observed, message = verdicts["LOAD-WH-02"]
    assert not ok and observed > 0.5, message
    assert result.scenarios["demographics"].failures == 0  # the one query the table serves still works
    assert any("does not exist" in e or "Catalog Error" in e for e in result.errors), result.errors


def test_missing_warehouse_is_an_error(tmp_path, short):
    with pytest.raises(ObservationError, match="no such DuckDB file"):
        _observe(f"duckdb:///{tmp_path / 'nowhere.duckdb'}", tmp_path / "out")


def test_the_profiles_users_fit_under_the_memory_ceiling(warehouse, tmp_path, monkeypatch):
    """Each user opens a DuckDB engine inside the load process: the ceiling grows by the room the locustfile
    declares per user. Under the bare ceiling, the profile's five users could not even start their threads."""
    monkeypatch.setenv("VIGIE_LOAD_DURATION", "2")
    monkeypatch.setenv("VIGIE_LOAD_SPAWN_RATE", "50")
    requirements = load_profile(ROOT / "profiles" / "load-warehouse.yaml").requirements
    assert plan_for(requirements[0]).users == 5
    result, _ = _observe(warehouse, tmp_path)
    assert result.aggregated.count > 0 and result.aggregated.failures == 0, result.errors
    spec = {"locustfile": str(ROOT / "load" / "locustfile_warehouse.py"), "users": 5}
    assert memory_limit(spec) == MEMORY_LIMIT + 5 * (192 << 20)
    assert memory_limit({**spec, "locustfile": str(ROOT / "load" / "locustfile_practice.py")}) == MEMORY_LIMIT
