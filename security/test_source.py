"""Static analysis of the vendor's source tree (target kind `source`): bandit, semgrep, the SBOM, known-vulnerable dependencies."""
from vigie.checks import check, failed, not_applicable, passed


@check("source.bandit")
def test_no_bandit_finding(requirement, observe, outcome):
    severity = requirement.params.get("min_severity", "HIGH").upper()
    confidence = requirement.params.get("min_confidence", "HIGH").upper()
    rules = requirement.params.get("rules")
    scan = observe("bandit")
    found = scan.at_least(severity, confidence, rules)
    outcome.measure(tool=f"bandit {scan.version}", findings_total=len(scan.findings), matching=len(found),
                    threshold={"severity": severity, "confidence": confidence, **({"rules": rules} if rules else {})})
    for f in found[:20]:
        outcome.message(f"{f['file']}:{f['line']} {f['rule']} ({f['severity']}/{f['confidence']}) {f['message']}")
    if found:
        failed(f"{len(found)} finding(s); first: {found[0]['file']}:{found[0]['line']} {found[0]['rule']} "
               f"{found[0]['message']}")
    passed(f"no matching finding among {len(scan.findings)} from bandit {scan.version}")


@check("source.semgrep")
def test_no_semgrep_finding(requirement, observe, outcome):
    severity = requirement.params.get("min_severity", "ERROR").upper()
    rules = requirement.params.get("rules")
    scan = observe("semgrep")
    found = scan.at_least(severity, rules)
    outcome.measure(tool=f"semgrep {scan.version}", findings_total=len(scan.findings), matching=len(found),
                    threshold={"severity": severity, **({"rules": rules} if rules else {})})
    for f in found[:20]:
        outcome.message(f"{f['file']}:{f['line']} {f['rule']} ({f['severity']}) {f['message']}")
    if found:
        failed(f"{len(found)} finding(s); first: {found[0]['file']}:{found[0]['line']} {found[0]['rule']}")
    passed(f"no finding of vigie's health rules among {len(scan.findings)} from semgrep {scan.version}")


@check("source.sbom")
def test_sbom_present(requirement, observe, outcome):
    sbom = observe("sbom")
    outcome.measure(**sbom.to_json())
    if not sbom.path:
        failed(f"no SBOM: {sbom.problem}")
    passed(f"CycloneDX {sbom.spec_version} SBOM {sbom.path} ({sbom.components} components)")


@check("source.dependencies")
def test_no_known_vulnerable_dependency(requirement, observe, outcome):
    audit = observe("pip-audit")
    outcome.measure(manifests=audit.manifests, requirements=audit.requirements, audited=len(audit.dependencies))
    if not audit.manifests:
        not_applicable("no Python dependency manifest (requirements*.txt): no dependency to audit")
    vulnerable = audit.vulnerable
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        outcome.message(f"{dep['name']} {dep['version']}: {ids}")
    if vulnerable:
        failed(f"{len(vulnerable)} dependency(ies) with known vulnerabilities; first: "
               f"{vulnerable[0]['name']} {vulnerable[0]['version']} ({vulnerable[0]['vulns'][0]['id']})")
    passed(f"{len(audit.dependencies)} pinned dependencies audited, none with a known vulnerability"
           if audit.requirements else "the source declares no third-party Python dependency")
