"""Observations of a vendor's source tree (target kind `source`: a folder): bandit, semgrep, the SBOM, pip-audit.

Tools run in subprocesses, offline except pip-audit, which needs PyPI's vulnerability data: when it cannot
audit a dependency, the observation fails ("not verified") rather than report a clean result. Semgrep runs
only vigie's own rules (vigie/rules/semgrep-health.yml), never the registry's, with metrics and version
checks off: it sends nothing over the network.
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ObservationError
from .extras import missing, require
from .observations import observation
from .sourcetree import EXCLUDED, real_files, walk

TOOL_TIMEOUT_S = 300
LEVELS = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
SBOM_NAMES = ("bom.json", "sbom.json")
SBOM_SUFFIXES = (".cdx.json", ".cyclonedx.json")
MANIFESTS = re.compile(r"^requirements[\w.-]*\.txt$")
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*[^\s;]+")
# where a Python project may declare dependencies that vigie does not audit (pip-audit reads pinned lists)
OTHER_MANIFESTS = ("pyproject.toml", "setup.py", "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock",
                   "pdm.lock", "environment.yml")


def _tool(args: list[str], what: str, cwd: Path | None = None, module: bool = True) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, *(["-m"] if module else []), *args], capture_output=True, text=True,
                              check=False, timeout=TOOL_TIMEOUT_S, cwd=cwd, stdin=subprocess.DEVNULL)
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
    links_out: list[str] = field(default_factory=list)   # links leaving the tree towards code: not followed

    def at_least(self, severity: str, confidence: str, rules=None) -> list[dict]:
        return [f for f in self.findings
                if LEVELS.get(f["severity"], 0) >= LEVELS[severity] and LEVELS.get(f["confidence"], 0) >= LEVELS[confidence]
                and (not rules or f["rule"] in rules)]

    def to_json(self) -> dict:
        return {"tool": f"bandit {self.version}", "scanned": self.scanned, "unparsed": self.unparsed,
                "links_out": self.links_out, "findings": self.findings, "sarif": self.sarif}


SECRET_RULES = {"B105", "B106", "B107"}
WITHHELD = "[code withheld: a secret was found in this file]"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _uri(result: dict) -> str:
    return ((result.get("locations") or [{}])[0]).get("physicalLocation", {}).get("artifactLocation", {}).get("uri", "")


def _hide_secrets(results: list[dict]) -> None:
    """A password found in the code must not travel on in the report: masked in its finding's message, and no
    code shown of a file where one was found (another finding's context lines may hold it, in any form)."""
    secret_files = {_uri(r) for r in results if r.get("ruleId") in SECRET_RULES}
    for result in results:
        message = result.get("message", {})
        if result.get("ruleId") in SECRET_RULES and isinstance(message.get("text"), str):
            message["text"] = _QUOTED.sub("'[redacted]'", message["text"])
        if _uri(result) not in secret_files:
            continue
        for location in result.get("locations", []):
            physical = location.get("physicalLocation", {})
            for region in ("region", "contextRegion"):
                if physical.get(region, {}).pop("snippet", None) is not None:
                    physical[region]["snippet"] = {"text": WITHHELD}


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
    _hide_secrets(run.get("results", []))
    for result in run.get("results", []):
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


# bandit on the files listed (NUL-separated) in argv[1]: a list of any length, no `-r` (which follows links to
# files, and reads the vendor's .bandit settings: skipped tests, excluded paths)
_BANDIT_ON_LIST = ("import sys; from bandit.cli.main import main; listed = open(sys.argv[1], 'rb').read(); "
                   "sys.argv = ['bandit', *sys.argv[2:], '--', *(p.decode('utf-8', 'surrogateescape') "
                   "for p in listed.split(b'\\0') if p)]; main()")


@observation("bandit", kinds=("source",))
def observe_bandit(target, store) -> BanditScan:
    require("bandit", "bandit", "source")
    root = source_root(target)
    tree = walk(root)
    if not tree.python:
        return BanditScan(_version("bandit"), [], links_out=tree.links_out)
    with tempfile.NamedTemporaryFile(prefix="vigie-bandit-", suffix=".list") as listed:
        listed.write(b"\0".join(os.fsencode(p) for p in tree.python))
        listed.flush()
        # --ignore-nosec: the vendor's own suppressions do not hide findings from the certifier
        done = _tool(["-c", _BANDIT_ON_LIST, listed.name, "-f", "sarif", "-q", "--ignore-nosec"], "bandit",
                     module=False)
    if done.returncode not in (0, 1):
        raise ObservationError(f"bandit failed (exit {done.returncode}): {_last_line(done.stderr)}")
    try:
        sarif = json.loads(done.stdout)
    except ValueError:
        raise ObservationError(f"bandit gave no SARIF: {_last_line(done.stderr)}") from None
    scan = parse_bandit_sarif(sarif, root)
    scan.unparsed, scan.links_out = _unread(tree, scan.scanned, scan.unparsed), tree.links_out
    return scan


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ObservationError(f"{distribution} is not installed") from None


# --- semgrep

SEMGREP_RULES = Path(__file__).parent / "rules" / "semgrep-health.yml"
SEMGREP_LEVELS = {"INFO": 1, "WARNING": 2, "ERROR": 3}


@dataclass
class SemgrepScan:
    version: str
    findings: list[dict]
    scanned: list[str] = field(default_factory=list)     # the files semgrep read
    unparsed: list[str] = field(default_factory=list)    # those it parsed only in part, or not at all
    links_out: list[str] = field(default_factory=list)   # links leaving the tree towards code: not followed

    def at_least(self, severity: str, rules=None) -> list[dict]:
        return [f for f in self.findings if SEMGREP_LEVELS.get(f["severity"], 0) >= SEMGREP_LEVELS[severity]
                and (not rules or f["rule"] in rules)]

    def to_json(self) -> dict:
        return {"tool": f"semgrep {self.version}", "rules": SEMGREP_RULES.name, "scanned": self.scanned,
                "unparsed": self.unparsed, "links_out": self.links_out, "findings": self.findings}


def _semgrep() -> str:
    require("semgrep", "semgrep", "source")
    # the console script installed beside this interpreter (`python -m semgrep` is deprecated)
    beside = Path(sys.executable).with_name("semgrep")
    found = str(beside) if beside.exists() else shutil.which("semgrep")
    if not found:
        raise ObservationError(missing("semgrep", "source"))
    return found


def parse_semgrep(report: dict, root: Path) -> list[dict]:
    """Each result's rule, place and message (vigie's own text): never the code lines semgrep quotes."""
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
    tree = walk(root)
    reports = [_semgrep_report(batch) for batch in _batches(tree.python)]
    errors = [e for r in reports for e in r.get("errors", [])]
    fatal = [e for e in errors if str(e.get("level", "")).lower() == "error"]
    if fatal:
        raise ObservationError(f"semgrep could not scan: {_last_line(str(fatal[0].get('message', fatal[0])))}")
    version = str(reports[0].get("version") or "?") if reports else _semgrep_version()
    scanned = sorted(_relative(x, root) for r in reports for x in r.get("paths", {}).get("scanned", []))
    # a syntax error leaves part of a file unread (semgrep reports it as a warning and goes on)
    unparsed = sorted({_relative(e["path"], root) for e in errors if e.get("path")})
    findings = [f for r in reports for f in parse_semgrep(r, root)]
    return SemgrepScan(version, findings, scanned, _unread(tree, scanned, unparsed), tree.links_out)


def _batches(paths: list[Path], limit: int = 256 * 1024) -> list[list[Path]]:
    """The files in command lines of at most `limit` bytes (the system caps a command line's length)."""
    batches, size = [], limit
    for path in paths:
        if size + len(os.fsencode(path)) + 1 > limit:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += len(os.fsencode(path)) + 1
    return batches


def _semgrep_report(paths: list[Path]) -> dict:
    """semgrep on the files given, whatever the vendor's .semgrepignore and `nosemgrep` comments say (files
    named on the command line are scanned regardless of ignore files)."""
    args = [_semgrep(), "scan", "--config", str(SEMGREP_RULES), "--metrics=off", "--disable-version-check",
            "--json", "--quiet", "--no-git-ignore", "--disable-nosem", "--", *map(str, paths)]
    done = _semgrep_run(args)
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise ObservationError(f"semgrep failed (exit {done.returncode}): {_last_line(done.stderr)}") from None


def _semgrep_version() -> str:
    done = _semgrep_run([_semgrep(), "--version"])
    return done.stdout.strip() or "?"


def _semgrep_run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ObservationError(f"semgrep did not finish within {TOOL_TIMEOUT_S} s") from None
    except OSError as exc:
        raise ObservationError(f"semgrep could not start: {exc}") from None


def _unread(tree, scanned: list[str], unparsed: list[str]) -> list[str]:
    """The files the tool could not parse, and those of the tree it did not read at all (too large, skipped):
    neither was analysed."""
    return sorted(set(unparsed) | {tree.relative(p) for p in tree.python} - set(scanned))


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
                    and not set(path.relative_to(root).parts) & set(EXCLUDED) \
                    and not path.is_symlink() and not path.parent.is_symlink():
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
    return real_files(root, MANIFESTS.match)


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


def scan_imports(root: Path) -> Imports:
    files = walk(root).python
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
        require("pip_audit", "pip-audit", "source")
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
