"""The report bundle: report.json built from the journal, and the renderings made from report.json."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema

from .errors import VigieError
from .journal import NAME as JOURNAL
from .journal import read_journal
from .model import Outcome, counts, overall_verdict, verdict
from .rendering import DEFAULT_FORMATS, Bounds, failure, render

SCHEMA = "vigie-report/1"


@functools.cache
def report_schema_validator():
    schema = json.loads((Path(__file__).parent / "schema" / "report.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def report_from_journal(records: list[dict], lang: str | None = None) -> dict:
    head = records[0]
    end = next((r for r in records if r["type"] == "end"), None)
    # a run stopped by a signal closes its journal with that record instead of `end`
    stop = next((r for r in records if r["type"] == "interrupted"), None) if end is None else None
    interrupted = str(stop.get("signal") or "SIGINT") if stop else None
    complete = end is not None
    finished = {}
    for r in records:
        if r["type"] == "outcome":
            o = Outcome.from_json(r)
            finished[(o.requirement, o.target)] = o
    requirements = {r["id"]: (p, r) for p in head["profiles"] for r in p["requirements"]}
    outcomes = []
    for req_id, target_id in head["cases"]:
        if (req_id, target_id) in finished:
            outcomes.append(finished[(req_id, target_id)])
            continue
        profile, req = requirements[req_id]
        if interrupted:
            why = f"not run: the run was interrupted ({interrupted}) before this requirement was checked"
        elif not complete:
            why = "not run: the run ended before this requirement was checked"
        elif req["check"] == "attestation":
            why = "attestation: no vendor document was supplied"
        else:
            why = f"no check in the suite implements '{req['check']}'"
        outcomes.append(Outcome(requirement=req_id, profile=profile["id"], level=req["level"], target=target_id,
                                check=req["check"], status="not_tested", summary=why, title=req["title"],
                                reference=req["reference"]))
    profiles = []
    for p in head["profiles"]:
        mine = [o for o in outcomes if o.profile == p["id"]]
        profiles.append({k: v for k, v in p.items() if k != "requirements"} |
                        {"verdict": verdict(mine, complete), "counts": counts(mine)})
    run = {k: head[k] for k in ("id", "started", "tool_version", "suite_digest", "command")}
    last = end or stop or {}
    run |= {"finished": last.get("finished"), "lang": lang or head["lang"], "complete": complete,
            "interrupted": interrupted, "suite_errors": last.get("suite_errors", []),
            # journals written before these fields existed still rebuild
            "environment": head.get("environment", {}), "fhir_packages": last.get("fhir_packages") or head.get("fhir_packages", []),
            "limits": head.get("limits", {}),
            # journals written before masking existed kept patient data as the target sent it
            "patient_data": head.get("patient_data", "as sent"),
            # what the run wrote to its targets: nothing with --read-only; else what it deleted at its end
            "read_only": bool(head.get("read_only", False)), "cleanup": (end or {}).get("cleanup", [])}
    return {"schema": SCHEMA, "run": run, "product": product_of(head, end), "targets": head["targets"],
            "profiles": profiles,
            "outcomes": [o.to_json() for o in outcomes],
            "verdict": overall_verdict([p["verdict"] for p in profiles])}


def product_of(head: dict, end: dict | None) -> dict:
    """The product under test: as the user declared it, else as the first FHIR target's CapabilityStatement
    names its software, else said to be unnamed."""
    declared = head.get("product")
    if declared:
        return {**declared, "source": "declared"}
    for target, software in ((end or {}).get("software") or {}).items():
        if software.get("name"):
            return {"name": software["name"], **({"version": software["version"]} if software.get("version")
                                                 else {}),
                    "source": "CapabilityStatement.software", "target": target}
    return {"source": "not declared"}


def build_bundle(bundle: Path, lang: str | None = None, formats=None, sign_key=None,
                 bounds: Bounds | None = None) -> dict:
    """Writes report.json from the journal, then each rendering from report.json (within `bounds`: see
    vigie.rendering), then seals the bundle: manifest.json always, its signature and attestation when
    `sign_key` (an Ed25519 private key) is given."""
    from .outdir import foreign_entries
    from .signing import key_id, seal
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise VigieError(f"{bundle}: not a report bundle folder")
    # a bundle received from elsewhere must not make vigie write outside it through a link
    links = sorted(p.name for p in bundle.iterdir() if p.is_symlink())
    if links:
        raise VigieError(f"{bundle}: holds a symbolic link ({links[0]}); vigie does not write through links")
    # nor make its manifest vouch for files vigie did not write
    foreign = foreign_entries(bundle)
    if foreign:
        raise VigieError(f"{bundle}: holds files vigie did not write ({', '.join(foreign[:3])}); not sealed as a "
                         f"bundle")
    records = read_journal(bundle / JOURNAL)
    try:
        report = report_from_journal(records, lang)
        # what the renderers read must be what the schema promises, whatever the journal held
        report_schema_validator().validate(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise VigieError(f"{bundle / JOURNAL}: records vigie did not write ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the report"
        raise VigieError(f"{bundle / JOURNAL}: records vigie did not write ({where}: "
                         f"{exc.message[:200]})") from None
    # the renderings show who signs (the PDF cover): known before the seal, since the key is given up front
    report["run"]["signer"] = key_id(sign_key.public_key()) if sign_key else None
    write_report(bundle, report)
    # the PDF, unless asked for by name, is left out with a warning where its libraries are missing
    results = render(bundle, DEFAULT_FORMATS if formats is None else formats, bounds)
    report["run"]["renderings"] = [r.to_json() for r in results]
    write_report(bundle, report)
    seal(bundle, sign_key)
    problem = failure(results, optional=("pdf",) if formats is None else ())
    if problem:
        raise problem
    return report


def write_report(bundle: Path, report: dict) -> None:
    (bundle / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")

