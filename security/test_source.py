"""Static analysis of the vendor's source tree (target kind `source`): bandit, semgrep, the SBOM, known-vulnerable dependencies.

A finding fails a requirement as soon as it is seen; a pass needs the whole tree read: a scan that read no file,
or could not parse some, verified nothing about them."""
from vigie.checks import check, failed, not_applicable, passed, undetermined


def _read_all(scan, tool: str) -> None:
    """A scan passes only on files it read, and whole."""
    if not scan.scanned and not scan.unparsed:
        undetermined(f"{tool} read no Python file in the source tree: nothing was analysed")
    if scan.unparsed:
        undetermined(f"{tool} could not parse or did not read {len(scan.unparsed)} of "
                     f"{len(scan.scanned) + len(scan.unparsed)} files (e.g. {scan.unparsed[0]}): they were not analysed")
    if scan.links_out:
        undetermined(f"{len(scan.links_out)} link(s) lead out of the source tree towards code (e.g. "
                     f"{scan.links_out[0]}): not followed, what they point to was not analysed")


@check("source.bandit")
def test_no_bandit_finding(requirement, observe, outcome):
    severity = requirement.params.get("min_severity", "HIGH").upper()
    confidence = requirement.params.get("min_confidence", "HIGH").upper()
    rules = requirement.params.get("rules")
    scan = observe("bandit")
    found = scan.at_least(severity, confidence, rules)
    outcome.measure(tool=f"bandit {scan.version}", files=len(scan.scanned), unparsed=scan.unparsed,
                    findings_total=len(scan.findings), matching=len(found),
                    threshold={"severity": severity, "confidence": confidence, **({"rules": rules} if rules else {})})
    for f in found[:20]:
        outcome.message(f"{f['file']}:{f['line']} {f['rule']} ({f['severity']}/{f['confidence']}) {f['message']}")
    if found:
        failed(f"{len(found)} finding(s); first: {found[0]['file']}:{found[0]['line']} {found[0]['rule']} "
               f"{found[0]['message']}")
    _read_all(scan, "bandit")
    passed(f"no matching finding in {len(scan.scanned)} Python files, among {len(scan.findings)} from "
           f"bandit {scan.version}")


@check("source.semgrep")
def test_no_semgrep_finding(requirement, observe, outcome):
    severity = requirement.params.get("min_severity", "ERROR").upper()
    rules = requirement.params.get("rules")
    scan = observe("semgrep")
    found = scan.at_least(severity, rules)
    outcome.measure(tool=f"semgrep {scan.version}", files=len(scan.scanned), unparsed=scan.unparsed,
                    findings_total=len(scan.findings), matching=len(found),
                    threshold={"severity": severity, **({"rules": rules} if rules else {})})
    for f in found[:20]:
        outcome.message(f"{f['file']}:{f['line']} {f['rule']} ({f['severity']}) {f['message']}")
    if found:
        failed(f"{len(found)} finding(s); first: {found[0]['file']}:{found[0]['line']} {found[0]['rule']}")
    _read_all(scan, "semgrep")
    passed(f"no finding of vigie's health rules in {len(scan.scanned)} files, among {len(scan.findings)} from "
           f"semgrep {scan.version}")


@check("source.sbom")
def test_sbom_present(requirement, observe, outcome):
    sbom = observe("sbom")
    outcome.measure(**sbom.to_json())
    if not sbom.path:
        failed(f"no SBOM: {sbom.problem}")
    if not sbom.subject and not sbom.components:
        failed(f"the SBOM {sbom.path} lists nothing: neither the component it describes (metadata.component) "
               "nor any component")
    if sbom.unlisted:
        failed(f"the SBOM {sbom.path} omits {len(sbom.unlisted)} dependency(ies) pinned in requirements files: "
               f"{', '.join(sbom.unlisted[:5])}")
    passed(f"CycloneDX {sbom.spec_version} SBOM {sbom.path} describes {sbom.subject or 'the source'} and lists "
           f"{sbom.components} components" + (f", the {sbom.pinned} pinned dependencies among them" if sbom.pinned
                                              else " (no dependency is pinned in a requirements file)"))


@check("source.dependencies")
def test_no_known_vulnerable_dependency(requirement, observe, outcome):
    audit = observe("pip-audit")
    outcome.measure(manifests=audit.manifests, requirements=audit.requirements, audited=len(audit.dependencies),
                    other_manifests=audit.other_manifests,
                    **({"imports": audit.imports.__dict__} if audit.imports else {}))
    vulnerable = audit.vulnerable
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        outcome.message(f"{dep['name']} {dep['version']}: {ids}")
    if vulnerable:
        failed(f"{len(vulnerable)} dependency(ies) with known vulnerabilities; first: "
               f"{vulnerable[0]['name']} {vulnerable[0]['version']} ({vulnerable[0]['vulns'][0]['id']})")
    if audit.unaudited:
        undetermined(f"pip-audit audited no dependency of {', '.join(audit.unaudited)}, which has requirement lines")
    if audit.requirements:
        passed(f"{len(audit.dependencies)} pinned dependencies of {', '.join(audit.manifests)} audited, none with "
               "a known vulnerability")
    _nothing_pinned(audit)


def _nothing_pinned(audit):
    """No requirements file pins anything: a pass needs the code itself to show that it uses no third-party
    module (else their versions are unknown, hence not audited)."""
    if audit.other_manifests:
        undetermined(f"no pinned requirements file, and {', '.join(audit.other_manifests)} may declare dependencies, "
                     "which vigie does not audit (pin them in requirements*.txt)")
    imports = audit.imports
    if not imports.files:
        not_applicable("the source holds no Python file and pins no dependency: there is no dependency to audit")
    if imports.unparsed:
        undetermined(f"{len(imports.unparsed)} Python files could not be parsed (e.g. {imports.unparsed[0]}): "
                     "what they import is unknown")
    if imports.third_party:
        undetermined(f"the code imports {', '.join(imports.third_party[:5])}, which no requirements file pins: "
                     "their versions cannot be audited")
    passed(f"no third-party dependency: {', '.join(audit.manifests) or 'no requirements file'} pins none and the "
           f"{imports.files} Python files import only the standard library and their own modules")
