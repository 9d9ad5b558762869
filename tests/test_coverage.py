"""The coverage matrix (docs/coverage.md, docs/coverage.json): every requirement of the catalogue but the
attestations is shown failing by a test, and the committed matrix is the one the code and tests give."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("vigie_coverage_script", ROOT / "scripts" / "coverage.py")
coverage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coverage)


@pytest.fixture(scope="module")
def matrix():
    return coverage.matrix()


def test_every_requirement_is_shown_failing(matrix):
    assert coverage.unproven(matrix) == [], "requirements that no test shows failing"
    assert {r["id"] for r in matrix["requirements"] if r["attestation"]} == {"EDS-PRIV-11", "EDS-PRIV-12",
                                                                              "EDS-PRIV-13"}


def test_a_requirement_without_proof_is_reported(matrix):
    rows = [dict(r) for r in matrix["requirements"]]
    rows[0]["proofs"] = []
    assert coverage.unproven({"requirements": rows}) == [rows[0]["id"]]
    assert f"| {rows[0]['id']} | {rows[0]['level']} |" in coverage.markdown({"requirements": rows})
    assert "**no proof**" in coverage.markdown({"requirements": rows})


def test_every_check_has_its_test_function(matrix):
    missing = [r["id"] for r in matrix["requirements"] if not r["attestation"] and not r["check_function"]]
    assert not missing


def test_every_proof_names_a_test_that_exists(matrix):
    for proof in {p["test"] for r in matrix["requirements"] for p in r["proofs"]}:
        path, name = re.fullmatch(r"([^:]+)::(\w+)(?:\[.+\])?", proof).groups()
        assert name in coverage._functions(ROOT / path), proof


def test_the_committed_matrix_is_current():
    for path, text in coverage.render().items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.name} is out of date: run python scripts/coverage.py and commit it"
    assert json.loads((ROOT / "docs" / "coverage.json").read_text())["schema"] == "vigie-coverage/1"
