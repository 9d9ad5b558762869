#!/usr/bin/env python3
"""The coverage matrix: for each requirement of the catalogue, its check, the flaws or fixtures that make it
fail and the tests that show it. Written to docs/coverage.md and docs/coverage.json from the profiles, the
checks, tests/flaw_matrix.yaml, the nginx configurations of tests/test_tls_nginx.py and the recorded
observations of tests/test_recorded_failures.py; tests/test_coverage.py holds the committed files to it.

    python scripts/coverage.py           # writes the two files
    python scripts/coverage.py --check   # exit 1 if they differ from what the code and tests say
"""
from __future__ import annotations

import ast
import json
import sys
from itertools import groupby
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DOCS = ROOT / "docs"
CHECK_DIRS = ("conformance", "security", "load")
DEMO = "tests/test_demo.py"


def requirements() -> list[dict]:
    """Every requirement of profiles/*.yaml, in profile order."""
    found = []
    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
        found += [{"id": r["id"], "profile": profile["id"], "level": r["level"], "check": r["check"]}
                  for r in profile["requirements"]]
    return found


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def check_functions() -> dict[str, str]:
    """check id -> the test function marked @check("id") (path::name), read from the source."""
    from vigie.suite import _check_mark
    found = {}
    for folder in CHECK_DIRS:
        for path in sorted((ROOT / folder).rglob("test_*.py")):
            for name, fn in _functions(path).items():
                for mark in fn.decorator_list:
                    if check_id := _check_mark(mark):
                        found.setdefault(check_id, f"{path.relative_to(ROOT).as_posix()}::{name}")
    return found


def _tests_module(name: str):
    """A module of tests/ (they import each other by bare name, as pytest's rootdir insertion allows)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return __import__(name)


def proofs() -> list[dict]:
    """Every proof that a requirement can fail: kind, name, the requirements it fails, the test, a note."""
    matrix = yaml.safe_load((TESTS / "flaw_matrix.yaml").read_text(encoding="utf-8"))
    found = []
    for system, test in (("practice", "test_flaw_matrix"), ("warehouse", "test_warehouse_flaw_matrix")):
        run_of = {flaw: run for run, flaws in matrix["runs"][system].items() for flaw in flaws}
        for flaw, fails in matrix[system].items():
            run = run_of.get(flaw)
            node = (f"{DEMO}::{test}[{run}]" if run else
                    f"tests/test_cda_served.py::test_each_cda_flaw_fails_exactly_its_requirements[{flaw}]"
                    if system == "practice" else f"{DEMO}::test_warehouse_role_flaw_matrix[{flaw}]")
            found.append({"kind": f"{system} flaw", "name": flaw,
                          "run": run or (f"{flaw} (CDA documents)" if system == "practice" else f"{flaw} (PostgreSQL)"),
                          "fails": fails, "test": node})
    nginx = _tests_module("test_tls_nginx")
    for name, (_, _, fails) in nginx.CONFIGURATIONS.items():
        found.append({"kind": "nginx configuration", "name": name, "fails": sorted(fails),
                      "test": f"tests/test_tls_nginx.py::test_configuration_fails_exactly_its_requirements[{name}]"})
    for name, fixture in matrix["fixtures"].items():
        found.append({"kind": "fixture", "name": name, "fails": fixture["fails"], "test": fixture["test"],
                      **({"note": fixture["note"]} if "note" in fixture else {})})
    recorded = _tests_module("test_recorded_failures")
    for requirement in recorded.TLS_FLAWS:
        found.append({"kind": "recorded observation", "name": f"TLS scan: {recorded.TLS_FLAWS[requirement][1]}",
                      "fails": [requirement], "test": "tests/test_recorded_failures.py::"
                                                      f"test_tls_feature_flaw_fails_its_requirement[{requirement}]"})
    for requirement in recorded.SLOW_WAREHOUSE_REQUIREMENTS:
        found.append({"kind": "recorded observation", "name": "load statistics: slow cohort queries",
                      "fails": [requirement], "test": "tests/test_recorded_failures.py::"
                                                      f"test_slow_cohort_queries_fail_the_latency_targets[{requirement}]"})
    return found


def matrix() -> dict:
    checks = check_functions()
    every = proofs()
    rows = []
    for r in requirements():
        attestation = r["check"] == "attestation"
        rows.append({**r, "check_function": None if attestation else checks.get(r["check"]),
                     "attestation": attestation,
                     "proofs": [{k: v for k, v in p.items() if k != "fails"} for p in every if r["id"] in p["fails"]]})
    return {"schema": "vigie-coverage/1", "requirements": rows}


def unproven(m: dict) -> list[str]:
    """Requirements that no flaw, fixture or recorded observation shows failing (attestations are exempt)."""
    return [r["id"] for r in m["requirements"] if not r["attestation"] and not r["proofs"]]


def _cell(proof: dict) -> str:
    where = f" (run `{proof['run']}`)" if "run" in proof else ""
    note = f"; {proof['note']}" if "note" in proof else ""
    return f"{proof['kind']} `{proof['name']}`{where}{note}"


def markdown(m: dict) -> str:
    rows = m["requirements"]
    attested = [r for r in rows if r["attestation"]]
    kinds: dict[str, int] = {}
    for r in rows:
        for kind in {p["kind"] for p in r["proofs"]}:
            kinds[kind] = kinds.get(kind, 0) + 1
    lines = [
        "# Coverage: every requirement seen failing",
        "",
        ("Generated by `python scripts/coverage.py` from the profiles, the checks and the tests; "
        "`tests/test_coverage.py` fails when a requirement has no proof that it can fail or when this page "
        "differs from what the code and tests say. Each proof is a test that CI runs: a flaw of a reference "
        "system (through `vigie demo`, the flaws of a run share one demo), an nginx configuration, a fixture, "
        "or, where no system at hand can be made to show the violation, a recorded observation fed to the "
        "requirement's own check."),
        "",
        (f"{len(rows)} requirements: {len(rows) - len(attested) - len(unproven(m))} shown failing, "
        f"{len(attested)} attestations (documents a human supplies: no software can fail them, exempt), "
        f"{len(unproven(m))} without proof."),
        "",
        "| proof kind | requirements it covers |",
        "|---|---|",
        *[f"| {kind} | {n} |" for kind, n in sorted(kinds.items())],
        "",
    ]
    for profile, members in groupby(rows, key=lambda r: r["profile"]):
        lines += [f"## {profile}", "", "| requirement | level | check | shown failing by | test |",
                  "|---|---|---|---|---|", *[_row(r) for r in members], ""]
    return "\n".join(lines + [IG_NOTE, ""])


# profiles built at run time (ig:) are not in the catalogue: their proof is the reference's flawed twin
IG_NOTE = ("## Profiles built from an implementation guide (`ig:`)\n\n"
           "Their requirements are made at run time from a guide's CapabilityStatements. The reference practice "
           "system serves an Annuaire subset; on its twin with the practice flaw `include-ignored` none of the "
           "declared `_include` and `_revinclude` requirements the reference passes is passed (they fail: the "
           "matches refer to what was not included), every other requirement ending as on the reference: "
           "`tests/test_demo.py::test_annuaire_flawed_twin`.")


def _row(r: dict) -> str:
    check = f"`{r['check']}`" + (f" (`{r['check_function']}`)" if r["check_function"] else "")
    if r["attestation"]:
        shown, tests = "attestation: exempt", ""
    elif not r["proofs"]:
        shown, tests = "**no proof**", ""
    else:
        shown = "<br>".join(_cell(p) for p in r["proofs"])
        tests = "<br>".join(f"`{p['test']}`" for p in r["proofs"])
    return f"| {r['id']} | {r['level']} | {check} | {shown} | {tests} |"


def render() -> dict[Path, str]:
    m = matrix()
    return {DOCS / "coverage.json": json.dumps(m, indent=1, ensure_ascii=False) + "\n",
            DOCS / "coverage.md": markdown(m)}


def main(argv: list[str]) -> int:
    files = render()
    if "--check" in argv:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"out of date: {', '.join(stale)} (run python scripts/coverage.py)", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(p.relative_to(ROOT).as_posix() for p in files)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
