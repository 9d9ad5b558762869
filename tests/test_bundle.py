"""report.json is rebuilt from the journal alone; a run that did not finish is incomplete."""
import json

import pytest

from vigie.bundle import report_from_journal
from vigie.errors import VigieError
from vigie.journal import Journal, read_journal

HEAD = {"type": "run", "id": "r1", "started": "2026-01-01T00:00:00+00:00", "tool_version": "0", "suite_digest": "sha256:0",
        "lang": "en", "command": "vigie demo", "targets": [{"id": "t", "kind": "fhir", "url": "https://x"}],
        "profiles": [{"id": "p", "version": "1", "title": {"en": "P", "fr": "P"}, "source": {"title": "S"},
                      "applies_to": ["fhir"], "digest": "sha256:1", "requirements": [
                          {"id": "A", "level": "SHALL", "title": {"en": "a", "fr": "a"}, "reference": "1", "check": "c.a"},
                          {"id": "B", "level": "SHOULD", "title": {"en": "b", "fr": "b"}, "reference": "2", "check": "c.b"},
                          {"id": "C", "level": "SHALL", "title": {"en": "c", "fr": "c"}, "reference": "3",
                           "check": "attestation"}]}],
        "cases": [["A", "t"], ["B", "t"], ["C", "t"]]}


def outcome(req, status, level="SHALL"):
    return {"type": "outcome", "requirement": req, "profile": "p", "level": level, "target": "t", "check": "c",
            "status": status, "summary": status, "evidence": []}


def write(path, records, torn=""):
    journal = Journal(path)
    for r in records:
        journal.append(r)
    journal.close()
    if torn:
        with open(path, "a") as fh:
            fh.write(torn)


def test_complete_run(tmp_path):
    write(tmp_path / "j", [HEAD, outcome("A", "passed"), outcome("B", "failed", "SHOULD"), outcome("C", "passed"),
                           {"type": "end", "finished": "2026-01-01T00:01:00+00:00"}])
    report = report_from_journal(read_journal(tmp_path / "j"))
    assert report["run"]["complete"] and report["verdict"] == "conformant-with-reservations"
    assert [o["status"] for o in report["outcomes"]] == ["passed", "failed", "passed"]


def test_killed_run_keeps_finished_outcomes_and_is_incomplete(tmp_path):
    write(tmp_path / "j", [HEAD, outcome("A", "passed")], torn='{"type": "outcome", "requirement": "B", "pro')
    report = report_from_journal(read_journal(tmp_path / "j"))
    assert report["verdict"] == "incomplete" and report["run"]["complete"] is False
    statuses = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert statuses == {"A": "passed", "B": "not_tested", "C": "not_tested"}
    assert "ended before" in report["outcomes"][1]["summary"]
    assert report["profiles"][0]["counts"]["not_tested"] == 2


def test_uncovered_requirements_are_not_tested(tmp_path):
    write(tmp_path / "j", [HEAD, outcome("A", "passed"), {"type": "end", "finished": "x"}])
    report = report_from_journal(read_journal(tmp_path / "j"))
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    assert "no check in the suite implements 'c.b'" in by_id["B"]["summary"]
    assert by_id["C"]["summary"].startswith("attestation")
    assert report["verdict"] == "incomplete"


@pytest.mark.parametrize("content, message", [
    ("", "does not start with a run record"),
    ("not json\n", "line 1: not a JSON record"),
    ('{"x": 1}\n', "line 1: not a journal record"),
])
def test_bad_journal(tmp_path, content, message):
    (tmp_path / "j").write_text(content)
    with pytest.raises(VigieError, match=message):
        read_journal(tmp_path / "j")


def test_journal_lines_are_whole_json(tmp_path):
    write(tmp_path / "j", [HEAD, outcome("A", "passed")])
    lines = (tmp_path / "j").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run", "outcome"]
