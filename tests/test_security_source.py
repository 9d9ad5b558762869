"""source-security: `vigie run --source DIR` on the reference vendor trees, and pip-audit's results read right."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from checkcall import Outcome, conclude

from security import test_source
from vigie.errors import ObservationError
from vigie.source import DependencyAudit, parse_pip_audit

SOURCES = Path(__file__).resolve().parent.parent / "fixtures" / "source"


def vigie(*args, timeout=180, **kwargs):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, **kwargs)


def outcomes(out: Path, target: str) -> dict:
    report = json.loads((out / "report.json").read_text())
    return {o["requirement"]: o for o in report["outcomes"] if o["target"] == target}


@pytest.fixture(scope="module")
def both_trees(tmp_path_factory):
    """One run over both reference trees (two source targets), as a vendor's vigie.toml could list them."""
    work = tmp_path_factory.mktemp("source")
    config = work / "vigie.toml"
    config.write_text("".join(f'[[targets]]\nid = "{name}"\nkind = "source"\nurl = "{SOURCES / name}"\n'
                              for name in ("clean", "flawed")))
    result = vigie("run", "--config", str(config), "--out", str(work / "b"))
    return result, work / "b"


def test_clean_tree_is_conformant(both_trees):
    result, out = both_trees
    found = outcomes(out, "clean")
    assert {r: o["status"] for r, o in found.items()} == {f"SRC-0{i}": "passed" for i in range(1, 8)}
    assert "Traceback" not in result.stderr
    sarif = json.loads((out / "evidence" / "bandit" / "clean.json").read_text())["sarif"]
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "Bandit"


def test_flawed_tree_fails_each_requirement(both_trees):
    result, out = both_trees
    found = outcomes(out, "flawed")
    for rid in ("SRC-01", "SRC-02", "SRC-03", "SRC-04", "SRC-06", "SRC-07"):
        assert found[rid]["status"] == "failed", found[rid]
    assert "vigie.sql-built-from-text" in found["SRC-06"]["summary"]          # semgrep, vigie's own rules
    assert "vigie.national-identifier-logged" in found["SRC-07"]["summary"]
    assert "B602" in found["SRC-01"]["summary"] and "shell=True" in found["SRC-01"]["summary"]
    assert any("B307" in m for m in found["SRC-02"]["messages"])     # eval
    assert "B105" in found["SRC-03"]["summary"]
    # requests 2.19.1 has published advisories; without PyPI's vulnerability data the dependency is
    # "not verified" (an error), never a pass
    dependencies = found["SRC-05"]
    assert dependencies["status"] == "failed" or (dependencies["status"] == "error"
                                                  and "not verified" in dependencies["summary"]), dependencies
    assert result.returncode == 1
    bundle = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert "Cabinet2024!" not in bundle, "the vendor's hard-coded password was copied into the report"


def test_missing_source_folder_is_a_usage_error(tmp_path):
    result = vigie("run", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "not found" in result.stderr


def test_source_target_in_config_is_relative_to_the_file(tmp_path):
    from vigie.campaign import load_config
    (tmp_path / "code").mkdir()
    config = tmp_path / "vigie.toml"
    config.write_text('[[targets]]\nid = "src"\nkind = "source"\nurl = "code"\n')
    target = load_config(config)["targets"][0]
    assert target.kind == "source" and target.url == str((tmp_path / "code").resolve())


VULNERABLE = {"dependencies": [
    {"name": "requests", "version": "2.19.1",
     "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"], "aliases": ["CVE-2018-18074"],
                "description": "..."}]},
    {"name": "idna", "version": "3.10", "vulns": []}], "fixes": []}


def test_pip_audit_report_is_read_and_judged():
    audit = DependencyAudit(["requirements.txt"], 2, parse_pip_audit(VULNERABLE))
    assert [d["name"] for d in audit.vulnerable] == ["requests"]
    observe = {"pip-audit": audit}.get
    result = conclude(test_source.test_no_known_vulnerable_dependency, SimpleNamespace(params={}), observe, Outcome())
    assert result.status == "failed" and "requests 2.19.1 (PYSEC-2018-28)" in result.summary
    clean = DependencyAudit(["requirements.txt"], 1, parse_pip_audit({"dependencies": [VULNERABLE["dependencies"][1]]}))
    result = conclude(test_source.test_no_known_vulnerable_dependency, SimpleNamespace(params={}),
                      {"pip-audit": clean}.get, Outcome())
    assert result.status == "passed" and "none with a known vulnerability" in result.summary


def test_a_skipped_dependency_is_not_verified():
    with pytest.raises(ObservationError, match="not verified"):
        parse_pip_audit({"dependencies": [{"name": "x", "version": "1", "skip_reason": "not found on PyPI"}]})


SNIPPETS = {  # rule → (flawed code, the same done right)
    "vigie.sql-built-from-text": ('db.execute(f"SELECT * FROM p WHERE name = \'{name}\'")\n',
                                  'db.execute("SELECT * FROM p WHERE name = ?", (name,))\n'),
    "vigie.tls-verification-disabled": ('import requests\nrequests.get(url, verify=False)\n',
                                        'import requests\nrequests.get(url, verify="ca.pem")\n'),
    "vigie.jwt-signature-not-verified": ('import jwt\njwt.decode(t, options={"verify_signature": False})\n',
                                         'import jwt\njwt.decode(t, key, algorithms=["ES256"])\n'),
    "vigie.national-identifier-logged": ('log.info("patient %s", patient_nir)\n', 'log.info("patient %s", pseudo_id)\n'),
}


@pytest.mark.parametrize("rule", sorted(SNIPPETS))
def test_semgrep_rules_both_ways(rule, tmp_path):
    from vigie.campaign import Target
    from vigie.source import observe_semgrep
    for name, code in zip(("flawed", "clean"), SNIPPETS[rule]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "module.py").write_text(code)
        scan = observe_semgrep(Target(id=name, kind="source", url=str(tmp_path / name)), None)
        rules = [f["rule"] for f in scan.findings]
        assert (rule in rules) == (name == "flawed"), (name, scan.findings)


def test_a_file_semgrep_skips_is_not_analysed(tmp_path):
    """semgrep skips files over 1 MB without an error: a pass needs every Python file of the tree read."""
    from vigie.campaign import Target
    from vigie.source import observe_semgrep
    (tmp_path / "small.py").write_text("x = 1\n")
    (tmp_path / "big.py").write_text("import requests\nrequests.get(url, verify=False)\n" + "y = 0\n" * 200_000)
    scan = observe_semgrep(Target(id="src", kind="source", url=str(tmp_path)), None)
    assert scan.scanned == ["small.py"] and scan.unparsed == ["big.py"]
    outcome = conclude(test_source.test_no_semgrep_finding, SimpleNamespace(params={"min_severity": "ERROR"}),
                       {"semgrep": scan}.get, Outcome())
    assert outcome.status == "error" and "did not read 1 of 2 files (e.g. big.py)" in outcome.summary


def test_semgrep_command_lines_are_bounded():
    from vigie.source import _batches
    paths = [Path(f"/src/pkg/module_{i:04d}.py") for i in range(3000)]
    batches = _batches(paths, limit=8192)
    assert [p for batch in batches for p in batch] == paths and len(batches) > 1
    assert all(sum(len(str(p)) + 1 for p in batch) <= 8192 for batch in batches)
    assert _batches([]) == []
