"""Observations of a vendor's source tree (target kind `source`: a folder): bandit, semgrep, the SBOM, pip-audit.

Tools run in subprocesses, offline except pip-audit, which needs PyPI's vulnerability data: when it cannot
audit a dependency, the observation fails ("not verified") rather than report a clean result. Semgrep runs
only vigie's own rules (vigie/rules/semgrep-health.yml), never the registry's, with metrics and version
checks off: it sends nothing over the network.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ObservationError
from .observations import observation

TOOL_TIMEOUT_S = 300
EXCLUDED = (".git", ".venv", "venv", "node_modules", "__pycache__", ".tox")
LEVELS = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
SBOM_NAMES = ("bom.json", "sbom.json")
SBOM_SUFFIXES = (".cdx.json", ".cyclonedx.json")
MANIFESTS = re.compile(r"^requirements[\w.-]*\.txt$")
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*[^\s;]+")
# where a Python project may declare dependencies that vigie does not audit (pip-audit reads pinned lists)
OTHER_MANIFESTS = ("pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock",
                   "pdm.lock", "environment.yml")


def _tool(args: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False,
                              timeout=TOOL_TIMEOUT_S, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ObservationError(f"{what} did not finish within {TOOL_TIMEOUT_S} s") from None
    except OSError as exc:
        raise ObservationError(f"{what} could not start: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def source_root(target) -> Path:
    root = Path(target.url)
    if not root.is_dir():
        raise ObservationError(f"{root} is not a folder")
    return root


# --- bandit


@dataclass
class BanditScan:
    version: str
    findings: list[dict]
    sarif: dict = field(repr=False, default_factory=dict)
    scanned: list[str] = field(default_factory=list)     # the Python files bandit read
    unparsed: list[str] = field(default_factory=list)    # those it could not parse: not analysed

    def at_least(self, severity: str, confidence: str, rules=None) -> list[dict]:
        return [f for f in self.findings
                if LEVELS.get(f["severity"], 0) >= LEVELS[severity] and LEVELS.get(f["confidence"], 0) >= LEVELS[confidence]
                and (not rules or f["rule"] in rules)]

    def to_json(self) -> dict:
        return {"tool": f"bandit {self.version}", "scanned": self.scanned, "unparsed": self.unparsed,
                "findings": self.findings, "sarif": self.sarif}


SECRET_RULES = {"B105", "B106", "B107"}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _hide_secret(result: dict) -> None:
    """A password found in the code must not travel on in the report: mask it in the message, drop the snippets."""
    message = result.get("message", {})
    if isinstance(message.get("text"), str):
        message["text"] = _QUOTED.sub("'[redacted]'", message["text"])
    for location in result.get("locations", []):
        physical = location.get("physicalLocation", {})
        for region in ("region", "contextRegion"):
            physical.get(region, {}).pop("snippet", None)


def _relative(path: str, root: Path) -> str:
    path = path.removeprefix("file://")
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def _bandit_files(run: dict, root: Path) -> tuple[list[str], list[str]]:
    """(files read, files not parsed): bandit's metrics hold one entry per file it read, and each file it could
    not parse is a notification of its invocation (a scan of no file says so nowhere else)."""
    metrics = run.get("properties", {}).get("metrics", {})
    read = sorted(_relative(k, root) for k in metrics if k != "_totals")
    unparsed = set()
    for invocation in run.get("invocations", []):
        for note in invocation.get("toolConfigurationNotifications", []) + \
                invocation.get("toolExecutionNotifications", []):
            for location in note.get("locations", []):
                uri = location.get("physicalLocation", {}).get("artifactLocation", {}).get("uri")
                if uri:
                    unparsed.add(_relative(uri, root))
    return [f for f in read if f not in unparsed], sorted(unparsed)


def parse_bandit_sarif(sarif: dict, root: Path) -> BanditScan:
    run = (sarif.get("runs") or [{}])[0]
    findings = []
    for result in run.get("results", []):
        if result.get("ruleId") in SECRET_RULES:
            _hide_secret(result)
        props = result.get("properties", {})
        location = ((result.get("locations") or [{}])[0]).get("physicalLocation", {})
        path = _relative(location.get("artifactLocation", {}).get("uri", ""), root)
        findings.append({"rule": result.get("ruleId"), "severity": str(props.get("issue_severity", "UNDEFINED")).upper(),
                         "confidence": str(props.get("issue_confidence", "UNDEFINED")).upper(),
                         "file": path, "line": location.get("region", {}).get("startLine"),
                         "message": result.get("message", {}).get("text", "")})
    version = run.get("tool", {}).get("driver", {}).get("version", "?")
    scanned, unparsed = _bandit_files(run, root)
    return BanditScan(version, findings, sarif, scanned, unparsed)


@observation("bandit", kinds=("source",))
def observe_bandit(target, store) -> BanditScan:
    root = source_root(target)
    # --ignore-nosec: the vendor's own suppressions do not hide findings from the certifier
    done = _tool(["bandit", "-r", str(root), "-f", "sarif", "-q", "--ignore-nosec",
                  "-x", ",".join(str(root / d) for d in EXCLUDED)], "bandit")
    if done.returncode not in (0, 1):
        raise ObservationError(f"bandit failed (exit {done.returncode}): {_last_line(done.stderr)}")
    try:
        sarif = json.loads(done.stdout)
    except ValueError:
        raise ObservationError(f"bandit gave no SARIF: {_last_line(done.stderr)}") from None
    return parse_bandit_sarif(sarif, root)


# --- semgrep

SEMGREP_RULES = Path(__file__).parent / "rules" / "semgrep-health.yml"
SEMGREP_LEVELS = {"INFO": 1, "WARNING": 2, "ERROR": 3}


@dataclass
class SemgrepScan:
    version: str
    findings: list[dict]
    scanned: list[str] = field(default_factory=list)     # the files semgrep read
    unparsed: list[str] = field(default_factory=list)    # those it parsed only in part, or not at all

    def at_least(self, severity: str, rules=None) -> list[dict]:
        return [f for f in self.findings if SEMGREP_LEVELS.get(f["severity"], 0) >= SEMGREP_LEVELS[severity]
                and (not rules or f["rule"] in rules)]

    def to_json(self) -> dict:
        return {"tool": f"semgrep {self.version}", "rules": SEMGREP_RULES.name, "scanned": self.scanned,
                "unparsed": self.unparsed, "findings": self.findings}


def _semgrep() -> str:
    # the console script installed beside this interpreter (`python -m semgrep` is deprecated)
    beside = Path(sys.executable).with_name("semgrep")
    found = str(beside) if beside.exists() else shutil.which("semgrep")
    if not found:
        raise ObservationError("semgrep is not installed (pip install semgrep)")
    return found


def parse_semgrep(report: dict, root: Path) -> list[dict]:
    findings = []
    for r in report.get("results", []):
        path = _relative(r.get("path", ""), root)
        extra = r.get("extra", {})
        rule = r.get("check_id", "?")   # semgrep prefixes the rules file's dotted path: keep vigie's own id
        findings.append({"rule": rule[rule.rfind("vigie."):] if "vigie." in rule else rule,
                         "severity": str(extra.get("severity", "INFO")).upper(), "file": path,
                         "line": r.get("start", {}).get("line"), "message": " ".join(extra.get("message", "").split())})
    return findings


@observation("semgrep", kinds=("source",))
def observe_semgrep(target, store) -> SemgrepScan:
    root = source_root(target)
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    args = [_semgrep(), "scan", "--config", str(SEMGREP_RULES), "--metrics=off", "--disable-version-check",
            "--json", "--quiet", "--no-git-ignore", *[f"--exclude={d}" for d in EXCLUDED], str(root)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ObservationError(f"semgrep did not finish within {TOOL_TIMEOUT_S} s") from None
    except OSError as exc:
        raise ObservationError(f"semgrep could not start: {exc}") from None
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise ObservationError(f"semgrep failed (exit {done.returncode}): {_last_line(done.stderr)}") from None
    errors = [e for e in report.get("errors", []) if str(e.get("level", "")).lower() == "error"]
    if errors:
        raise ObservationError(f"semgrep could not scan: {_last_line(str(errors[0].get('message', errors[0])))}")
    version = str(report.get("version") or "?")
    scanned = sorted(_relative(x, root) for x in report.get("paths", {}).get("scanned", []))
    # a syntax error leaves part of a file unread (semgrep reports it as a warning and goes on)
    unparsed = sorted({_relative(e["path"], root) for e in report.get("errors", []) if e.get("path")})
    return SemgrepScan(version, parse_semgrep(report, root), scanned, unparsed)


# --- SBOM


@dataclass
class Sbom:
    path: str | None
    spec_version: str | None = None
    components: int = 0
    problem: str | None = None
    subject: str | None = None                            # metadata.component: what the SBOM describes
    pinned: int = 0                                       # dependencies pinned in requirements*.txt
    unlisted: list[str] = field(default_factory=list)     # those it omits

    def to_json(self) -> dict:
        return self.__dict__.copy()


def _sbom_candidates(root: Path) -> list[Path]:
    found = []
    for depth in ("*", "*/*"):
        for path in sorted(root.glob(depth)):
            name = path.name.lower()
            if path.is_file() and (name in SBOM_NAMES or name.endswith(SBOM_SUFFIXES)) \
                    and not set(path.relative_to(root).parts) & set(EXCLUDED):
                found.append(path)
    return found


@observation("sbom", kinds=("source",))
def observe_sbom(target, store) -> Sbom:
    root = source_root(target)
    problems = []
    for path in _sbom_candidates(root):
        rel = path.relative_to(root).as_posix()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{rel}: not JSON ({str(exc)[:80]})")
            continue
        if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX" or not doc.get("specVersion"):
            problems.append(f"{rel}: not a CycloneDX document (bomFormat, specVersion)")
            continue
        return _read_sbom(doc, rel, root)
    return Sbom(None, problem="; ".join(problems) or "no CycloneDX JSON file (bom.json, sbom.json, *.cdx.json)")


def _read_sbom(doc: dict, rel: str, root: Path) -> Sbom:
    """What a CycloneDX document lists: the component it describes and its components, held against the
    dependencies the source pins."""
    components = doc.get("components", [])
    components = [c for c in components if isinstance(c, dict)] if isinstance(components, list) else []
    subject = (doc.get("metadata") or {}).get("component") if isinstance(doc.get("metadata"), dict) else None
    subject = " ".join(str(subject.get(k)) for k in ("name", "version") if subject.get(k)) \
        if isinstance(subject, dict) else None
    listed = {_normalise(str(c.get("name", ""))) for c in components}
    pinned = pinned_names(root)
    unlisted = sorted(name for name in pinned if _normalise(name) not in listed)
    return Sbom(rel, str(doc["specVersion"]), len(components), subject=subject or None, pinned=len(pinned),
                unlisted=unlisted)


def _normalise(name: str) -> str:
    """A Python distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- dependencies


@dataclass
class DependencyAudit:
    manifests: list[str]
    requirements: int
    dependencies: list[dict] = field(default_factory=list)   # {name, version, vulns: [{id, fix_versions}]}
    other_manifests: list[str] = field(default_factory=list)  # pyproject.toml, setup.py...: not audited
    unaudited: list[str] = field(default_factory=list)        # manifests with lines where pip-audit found none
    imports: Imports | None = None     # what the code imports, when nothing is pinned

    @property
    def vulnerable(self) -> list[dict]:
        return [d for d in self.dependencies if d.get("vulns")]

    def to_json(self) -> dict:
        return {"tool": "pip-audit --strict", "manifests": self.manifests, "requirements": self.requirements,
                "other_manifests": self.other_manifests, "unaudited": self.unaudited, "dependencies": self.dependencies,
                "imports": self.imports.__dict__ if self.imports else None}


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def parse_pip_audit(report: dict) -> list[dict]:
    """pip-audit's JSON (`{"dependencies": [{"name", "version", "vulns": [...]}]}`) in vigie's terms."""
    out = []
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            raise ObservationError(f"not verified: {dep.get('name')} could not be audited ({dep['skip_reason']})")
        out.append({"name": dep.get("name"), "version": dep.get("version"),
                    "vulns": [{"id": v.get("id"), "aliases": v.get("aliases", []),
                               "fix_versions": v.get("fix_versions", [])} for v in dep.get("vulns", [])]})
    return out


def _manifests(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and MANIFESTS.match(p.name))


def pinned_names(root: Path) -> list[str]:
    """The distributions the requirements files pin (`name==version`)."""
    names = []
    for manifest in _manifests(root):
        for line in _requirement_lines(manifest):
            found = PINNED.match(line)
            if found:
                names.append(found.group(1))
    return names


@dataclass
class Imports:
    """The top-level modules the source's Python files import that are neither the standard library nor the
    source's own: third-party code that a dependency audit must cover."""
    files: int
    third_party: list[str]
    unparsed: list[str]


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if not set(p.relative_to(root).parts[:-1]) & set(EXCLUDED))


def scan_imports(root: Path) -> Imports:
    files = python_files(root)
    own = {p.stem for p in files} | {d.name for p in files for d in p.relative_to(root).parents if d.name}
    found, unparsed = set(), []
    for path in files:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            unparsed.append(path.relative_to(root).as_posix())
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    third_party = sorted(found - set(sys.stdlib_module_names) - own - {"__future__"})
    return Imports(len(files), third_party, unparsed)


@observation("pip-audit", kinds=("source",))
def observe_pip_audit(target, store) -> DependencyAudit:
    root = source_root(target)
    manifests = _manifests(root)
    audit = DependencyAudit([p.name for p in manifests], sum(len(_requirement_lines(p)) for p in manifests),
                            other_manifests=sorted(p.name for p in root.iterdir() if p.name in OTHER_MANIFESTS))
    if not audit.requirements:   # nothing pinned: what the code imports says whether that is all
        audit.imports = scan_imports(root)
    for manifest in manifests:
        if not _requirement_lines(manifest):
            continue
        done = _tool(["pip_audit", "-r", str(manifest), "--no-deps", "--disable-pip", "--strict", "-f", "json",
                      "--progress-spinner", "off", "--timeout", "15"], "pip-audit", cwd=root)
        try:
            report = json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            report = None
        if report is None:
            # --strict: a dependency that could not be audited (no network, unknown release) ends the run
            raise ObservationError(f"not verified: pip-audit could not audit {manifest.name}: "
                                   f"{_last_line(done.stderr)}")
        found = parse_pip_audit(report)
        if not found:   # lines that name no dependency pip-audit could read (options, includes, paths)
            audit.unaudited.append(manifest.name)
        audit.dependencies += found
    return audit
