"""Benchmark of vigie's FHIR validator.

Agreement with the HL7 Java reference validator on the cases of a manifest (the format of
../shared/data/fhir-validation-cases/manifest.json), and throughput on one core over FR Core example
resources and generated FR Core patients (fixtures/practice/data.py).

The agreement is IN-SAMPLE: the validator's rules were written while looking at these cases, so the figure
says how well it fits them, not how it does on cases it never saw. The unseen-case figure (HL7 cases of the
same selection that the project never had) is measured outside the project; on those, agreement was about
0.73-0.76 before the rules were rewritten from the specification (issue 14).

Each run loads exactly the files the Java validator had loaded for it (its `supporting`, and its `profile`),
and each case's `options` (validator settings that differ from the Java test harness's defaults) are given
to the validator where vigie has the setting; a run with a setting vigie lacks is counted all the same and
listed under `options_not_supported`.

    python benchmarks/fhir_validation.py --cases ../shared/data/fhir-validation-cases [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vigie.fhir import load_packages
from vigie.fhir.packages import PackageSet
from vigie.fhir.validator import Validator, has_errors

SEVERITIES = ("error", "fatal", "warning")
# the settings of the Java test harness the cases' `options` are relative to (allowExampleUrls is on there)
HARNESS_DEFAULTS = {"examples": True}


def _packages_dir(cases: Path) -> Path:
    return cases.parent / "fhir-packages"


def _issue_keys(outcome: dict) -> list[tuple]:
    keys = []
    for issue in outcome.get("issue", ()):
        if issue.get("severity") not in SEVERITIES:
            continue
        expr = (issue.get("expression") or issue.get("location") or [None])[0]
        keys.append((expr, "error" if issue["severity"] == "fatal" else issue["severity"]))
    return keys


def run_case(core, cases: Path, case: dict, run: dict) -> dict:
    from vigie.fhir.validator import OPTIONS
    inputs = cases / "inputs"
    resources = []
    # the run's own list when the manifest gives one (exactly what the Java validator loaded), else the case's
    loaded = run["supporting"] if "supporting" in run else case.get("supporting", []) + case.get("profiles", [])
    for name in loaded:
        try:
            resources.append(json.loads((inputs / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
    profiles = []
    if run.get("profile"):
        prof = run["profile"]
        if (inputs / prof).is_file():
            res = json.loads((inputs / prof).read_text(encoding="utf-8"))
            resources.append(res)
            profiles.append(res.get("url"))
        else:
            profiles.append(prof)
    packages = PackageSet(core.packages, core.missing)
    for res in resources:
        for item in _conformance_resources(res):
            packages.add_resource(item)
    options = dict(HARNESS_DEFAULTS, **(case.get("options") or {}))
    validator = Validator(packages, options=options)
    try:
        # bytes, as `vigie validate` reads them: json detects the encoding and skips a byte order mark
        resource = json.loads((inputs / case["input"]).read_bytes())
    except ValueError as exc:
        outcome = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": "fatal", "code": "structure", "details": {"text": f"bad JSON: {exc}"}}]}
    else:
        try:
            outcome = validator.validate(resource, profiles=[p for p in profiles if p])
        except Exception as exc:  # noqa: BLE001 -- a crash is a result to report, not a reason to stop the benchmark
            outcome = {"resourceType": "OperationOutcome", "issue": [
                {"severity": "fatal", "code": "exception", "details": {"text": f"crash: {type(exc).__name__}: {exc}"}}]}
    expected = {"issue": []}
    if run.get("expected_outcome"):
        expected = json.loads((cases / "expected" / run["expected_outcome"]).read_text(encoding="utf-8"))
    errors = sum(1 for i in outcome.get("issue", ()) if i.get("severity") in ("error", "fatal"))
    return {"case": case["name"], "module": case.get("module", "general"), "mode": run["mode"],
            "expected_valid": run["expected_valid"], "valid": not has_errors(outcome),
            "expected_errors": run["expected_error_count"], "errors": errors,
            "expected_issues": _issue_keys(expected), "issues": _issue_keys(outcome),
            "options_not_supported": sorted(k for k in case.get("options") or {} if k not in OPTIONS),
            "outcome": outcome}


def _conformance_resources(res: dict):
    if res.get("resourceType") == "Bundle":
        for e in res.get("entry", ()):
            if isinstance(e.get("resource"), dict):
                yield e["resource"]
    else:
        yield res
        yield from res.get("contained", ())


def _f1(results) -> dict:
    tp = fp = fn = 0
    for r in results:
        expected = list(r["expected_issues"])
        for key in r["issues"]:
            if key in expected:
                expected.remove(key)
                tp += 1
            else:
                fp += 1
        fn += len(expected)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def score(results) -> dict:
    n = len(results)
    agree = sum(r["valid"] == r["expected_valid"] for r in results)
    tp = sum(not r["valid"] and not r["expected_valid"] for r in results)
    fp = sum(not r["valid"] and r["expected_valid"] for r in results)
    fn = sum(r["valid"] and not r["expected_valid"] for r in results)
    return {"runs": n,
            "verdict_agreement": round(agree / n, 3) if n else None,
            "invalid_precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "invalid_recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "error_count_agreement": round(sum(r["errors"] == r["expected_errors"] for r in results) / n, 3)
            if n else None,
            "issue_f1": _f1(results)["f1"], "issue": _f1(results)}


def agreement(cases: Path, core) -> tuple[dict, list]:
    manifest = json.loads((cases / "manifest.json").read_text(encoding="utf-8"))
    results = [run_case(core, cases, case, run) for case in manifest["cases"] for run in case["runs"]]
    by_module = defaultdict(list)
    for r in results:
        by_module[r["module"]].append(r)
    overall = score(results)
    overall["sample"] = "in-sample: the cases the validator's rules were written against"
    overall["options_not_supported"] = sorted({f"{r['case']}: {o}" for r in results for o in r["options_not_supported"]})
    overall["by_module"] = {m: score(rs) for m, rs in sorted(by_module.items())}
    return overall, results


def throughput(packages_dir: Path, seconds: float = 5.0) -> dict:
    from vigie.fixtures.practice import data
    frc = load_packages(packages_dir / "hl7.fhir.fr.core-2.2.0.tgz")
    validator = Validator(frc)
    examples = [res for _, res in frc.packages[0].examples()]
    patients = []
    seed = 1
    while len(patients) < 1000:
        patients += list(data.build(seed)["Patient"].values())
        seed += 1
    for res in examples + patients[:50]:
        validator.validate(res)       # warm-up: plans compiled, expressions parsed
    plain = Validator(frc, invariants=False)
    for res in patients[:50]:
        plain.validate(res)
    out, wall = {}, {}
    for label, v, corpus in (("frcore_examples", validator, examples), ("patients", validator, patients),
                             ("no_invariants", plain, patients)):
        # CPU time of this (single-threaded) process: the machine is shared, wall time would count
        # other processes' turns on the core
        count, start, start_wall = 0, time.process_time(), time.perf_counter()
        while time.process_time() - start < seconds:
            for res in corpus:
                v.validate(res)
            count += len(corpus)
        out[label] = round(count / (time.process_time() - start), 1)
        wall[label] = round(count / (time.perf_counter() - start_wall), 1)
    return {"resources_per_second": out["patients"], "patients_per_second": out["patients"],
            "patients_per_second_wall_clock": wall["patients"],
            "patients_per_second_without_invariants": out["no_invariants"],
            "frcore_examples_per_second": out["frcore_examples"], "cpu_count_used": 1}


def large_bundle(core, pairs: int = 2000) -> dict:
    """Seconds to validate one collection Bundle of 2 x `pairs` entries (a Patient and an Observation that
    refers to it): reference resolution inside a Bundle must stay linear in its entries."""
    entries = []
    for i in range(pairs):
        entries.append({"fullUrl": f"https://h.example.fr/fhir/Patient/p{i}",
                        "resource": {"resourceType": "Patient", "id": f"p{i}"}})
        entries.append({"fullUrl": f"https://h.example.fr/fhir/Observation/o{i}",
                        "resource": {"resourceType": "Observation", "id": f"o{i}", "status": "final",
                                     "code": {"text": "weight"}, "subject": {"reference": f"Patient/p{i}"}}})
    validator = Validator(core)
    start = time.process_time()
    validator.validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
    return {"large_bundle_entries": len(entries), "large_bundle_seconds": round(time.process_time() - start, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, type=Path, help="folder with manifest.json, inputs/, expected/")
    parser.add_argument("--packages", type=Path, help="folder with the package tarballs (default: beside --cases)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per throughput corpus")
    parser.add_argument("--details", action="store_true", help="list the runs that disagree")
    args = parser.parse_args(argv)
    if not (args.cases / "manifest.json").is_file():
        print(f"fhir_validation: error: no manifest.json in {args.cases}", file=sys.stderr)
        return 3
    packages_dir = args.packages or _packages_dir(args.cases)
    core_tgz = packages_dir / "hl7.fhir.r4.core-4.0.1.tgz"
    if not core_tgz.is_file():
        print(f"fhir_validation: error: {core_tgz} not found (give --packages)", file=sys.stderr)
        return 3
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core, as the target says
    except (AttributeError, OSError):
        pass
    core = load_packages(core_tgz)
    t0 = time.perf_counter()
    result, runs = agreement(args.cases, core)
    result["agreement_seconds"] = round(time.perf_counter() - t0, 1)
    result.update(throughput(packages_dir, args.seconds))
    result.update(large_bundle(core))
    if args.json:
        print(json.dumps(result))
        return 0
    print("IN-SAMPLE agreement (the cases the rules were written against; the unseen-case figure is measured "
          "outside the project)")
    print(f"runs: {result['runs']}  verdict agreement: {result['verdict_agreement']}  "
          f"invalid precision/recall: {result['invalid_precision']}/{result['invalid_recall']}  "
          f"error-count agreement: {result['error_count_agreement']}  issue F1: {result['issue_f1']}")
    if result["options_not_supported"]:
        print(f"  options vigie does not have (runs scored without them): {', '.join(result['options_not_supported'])}")
    for module, s in result["by_module"].items():
        print(f"  {module:14} runs {s['runs']:3}  verdict {s['verdict_agreement']}  errors {s['error_count_agreement']}"
              f"  F1 {s['issue_f1']}")
    print(f"throughput (one core, CPU time): {result['patients_per_second']} generated FR Core patients/s "
          f"({result['patients_per_second_wall_clock']}/s wall clock), "
          f"{result['frcore_examples_per_second']} FR Core examples/s, "
          f"{result['patients_per_second_without_invariants']} patients/s without invariants; "
          f"a Bundle of {result['large_bundle_entries']} entries in {result['large_bundle_seconds']} s")
    if args.details:
        for r in runs:
            if r["valid"] != r["expected_valid"]:
                print(f"DISAGREE {r['case']} [{r['mode']}] expected valid={r['expected_valid']} "
                      f"({r['expected_issues'][:3]}); got {[i for i in r['issues']][:4]}")
                for i in r["outcome"]["issue"]:
                    if i["severity"] in ("error", "fatal"):
                        print("      ", i.get("expression"), i["details"]["text"][:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
