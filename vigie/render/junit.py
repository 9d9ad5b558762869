"""JUnit XML for CI systems: one testsuite per profile, one testcase per outcome.

Names are built from requirement ids, not from pytest node ids, so they stay unique and stable whatever
the test runner does to parametrised ids. The file is valid against the strictest published schema, Jenkins'
junit-10.xsd (tests/data/): a testcase holds no properties (its level, check and evidence are written in its
system-out) and the root carries no skipped count.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

_SKIPPED = ("skipped", "not_applicable", "not_tested")
# control characters (C0 but tab and line ends, DEL, C1), non-characters and lone surrogates: XML 1.0 cannot
# carry most of them even escaped, and the rest only garble a CI page; a target's banner or error may hold them
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def render_junit(report: dict, out: Path) -> None:
    root = ET.Element("testsuites", name="vigie")
    suites: dict[str, ET.Element] = {}
    for p in report.get("profiles", []):
        suites[p["id"]] = _suite(root, p["id"], report, p)
    seen: set[str] = set()
    for o in report.get("outcomes", []):
        suite = suites.get(o["profile"]) or suites.setdefault(
            o["profile"], _suite(root, o["profile"], report, {})
        )
        _testcase(suite, o, _unique(_clean(f"{o['requirement']}@{o['target']}"), seen))
    for element in suites.values():
        _total(element)
    _total(root, skipped=False)   # junit-10.xsd: testsuites has no skipped attribute
    ET.indent(root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


def _suite(root: ET.Element, profile_id: str, report: dict, profile: dict) -> ET.Element:
    suite = ET.SubElement(root, "testsuite", name=_clean(profile_id))
    if report.get("run", {}).get("started"):
        suite.set("timestamp", report["run"]["started"])
    props = ET.SubElement(suite, "properties")
    for name in ("version", "verdict"):
        if profile.get(name):
            ET.SubElement(props, "property", name=name, value=_clean(profile[name]))
    return suite


def _testcase(suite: ET.Element, o: dict, name: str) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_clean(f"vigie.{o['profile']}"),
        name=name,
        time=f"{float(o.get('duration_s') or 0):.3f}",
    )
    status, summary = o["status"], _clean(o.get("summary", ""))
    if status == "failed":
        ET.SubElement(case, "failure", message=summary, type=o["level"]).text = _details(o)
    elif status == "error":
        ET.SubElement(case, "error", message=summary, type=o["level"]).text = _details(o)
    elif status in _SKIPPED:
        ET.SubElement(case, "skipped", message=f"{status}: {summary}")
    lines = [f"level: {_clean(o['level'])}", f"check: {_clean(o['check'])}"]
    if o.get("evidence"):
        lines += ["evidence:", *(f"  {_clean(e)}" for e in o["evidence"])]
    ET.SubElement(case, "system-out").text = "\n".join(lines)


def _details(o: dict) -> str:
    return _clean("\n".join([o.get("summary", ""), *o.get("messages", [])]))


def _total(element: ET.Element, skipped: bool = True) -> None:
    """Set tests/failures/errors(/skipped)/time on a suite (or the root) from the testcases below it."""
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    counted = (("failures", "failure"), ("errors", "error"), ("skipped", "skipped"))
    for attr, tag in counted if skipped else counted[:2]:
        element.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    element.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate in seen:  # CI tools merge testcases of one name: keep a duplicate visible
        n += 1
        candidate = f"{name}#{n}"
    seen.add(candidate)
    return candidate


def _clean(text: object) -> str:
    return _CONTROL.sub("", str(text))
