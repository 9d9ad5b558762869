"""`vigie validate` and `vigie packages`: the command-line side of vigie.fhir."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .cache import PackageCache
from .packages import CORE_ID, load_packages
from .tarball import PackageError

CORE_SPEC = f"{CORE_ID}#4.0.1"


@click.command("validate")
@click.option("--package", "packages", multiple=True, metavar="TGZ|DIR|ID#VER",
              help="FHIR package to load (repeatable), with its dependencies; hl7.fhir.r4.core from the cache if not given.")
@click.option("--ig", "igs", multiple=True, metavar="DIR", type=click.Path(exists=True, file_okay=False),
              help="Folder of conformance resources (StructureDefinition, ValueSet, CodeSystem... JSON) without a "
                   "package.json, such as an implementation guide's output (repeatable).")
@click.option("--profile", "profiles", multiple=True, metavar="URL", help="Profile to validate against (repeatable).")
@click.option("--fr-identifiers", is_flag=True,
              help="Also check French identifiers: INS/NIR key, RPPS, FINESS, SIREN/SIRET.")
@click.option("--no-invariants", is_flag=True, help="Do not evaluate FHIRPath invariants.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate_command(packages, igs, profiles, fr_identifiers, no_invariants, files):
    """Validate FHIR R4 JSON resources; prints one OperationOutcome per file (indented for one file, one
    line each for several), exit 1 if any has an error."""
    from .loose import conformance_resources
    from .validator import Validator, has_errors
    local = [res for folder in igs for res in conformance_resources(Path(folder))]
    loaded = load_packages(*packages) if packages else None
    if loaded is None or not loaded.has(CORE_ID):
        cache = PackageCache()
        if cache.get(CORE_ID, "4.0.1") is None:
            raise PackageError(f"{CORE_SPEC} is not loaded: give it with --package, or run "
                               f"`vigie packages install {CORE_SPEC}`")
        loaded = load_packages(*packages, CORE_SPEC)
    validator = Validator(loaded, invariants=not no_invariants, resources=local)
    for url in profiles:
        if validator.plan(url) is None:
            raise PackageError(f"profile {url} is not in the loaded packages")
    failed = False
    for name in files:
        outcome = validate_file(validator, Path(name), list(profiles))
        if fr_identifiers:
            add_identifier_issues(outcome, Path(name))
        failed = failed or has_errors(outcome)
        click.echo(json.dumps(outcome, ensure_ascii=False, indent=2 if len(files) == 1 else None))
    return 1 if failed else 0


def validate_file(validator, path: Path, profiles) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        resource = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"resourceType": "OperationOutcome", "issue": [{
            "severity": "fatal", "code": "structure",
            "details": {"text": f"{path.name}: not valid JSON: {exc}"}}]}
    return validator.validate(resource, profiles=profiles)


def add_identifier_issues(outcome: dict, path: Path) -> None:
    """The French identifier issues of the file's resource, added to its OperationOutcome."""
    from .frenchids import identifier_issues
    try:
        resource = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return      # reported by the validation already
    if not isinstance(resource, dict):
        return
    rt = resource.get("resourceType")
    found = identifier_issues(resource, rt if isinstance(rt, str) and rt.isidentifier() else "$this")
    issues = [i for i in outcome["issue"] if i.get("details", {}).get("text") != "No issues detected during validation"]
    issues += [{"severity": severity, "code": "invalid", "details": {"text": message}, "expression": [where]}
               for severity, where, message in found]
    outcome["issue"] = issues or outcome["issue"]


@click.group("packages")
def packages_group():
    """FHIR packages in the standard package cache (FHIR_PACKAGE_CACHE or ~/.fhir/packages)."""


@packages_group.command("list")
def packages_list():
    """List the packages in the cache."""
    from ..cda.content import installed
    cache = PackageCache()
    entries = cache.list()
    contents = installed(cache.root)
    if not entries and not contents:
        click.echo(f"no packages in {cache.root}")
    for pid, version, folder in entries:
        click.echo(f"{pid}#{version}")
    for content in contents:   # the CI-SIS test content (vigie packages add-cisis)
        click.echo(f"{content.to_json()['package']} (CI-SIS test content, dated {content.date}, {content.digest})")
    return 0


@packages_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--replace", is_flag=True, help="Replace a different package already in the cache under the same id#version.")
def packages_add(files, replace):
    """Add package tarballs (.tgz) to the cache."""
    cache = PackageCache()
    for name in files:
        pkg = cache.add(name, replace=replace)
        click.echo(f"added {pkg.key} to {cache.root}")
    return 0


@packages_group.command("install")
@click.argument("specs", nargs=-1, required=True, metavar="ID#VERSION...")
@click.option("--no-dependencies", is_flag=True, help="Install only the named packages.")
@click.option("--replace", is_flag=True, help="Fetch the named packages again, replacing a different copy in the cache.")
def packages_install(specs, no_dependencies, replace):
    """Install packages (and their dependencies) from the registries into the cache."""
    from .registry import install
    cache = PackageCache()
    queue, done, failed = list(specs), set(), []
    while queue:
        spec = queue.pop(0)
        if spec in done:
            continue
        done.add(spec)
        try:
            pkg = install(spec, cache, log=lambda m: click.echo(f"  {m}", err=True), replace=replace and spec in specs)
        except PackageError as exc:
            if spec in specs:
                raise
            failed.append(f"{spec} ({exc})")
            continue
        click.echo(f"installed {pkg.key} in {cache.root}")
        if not no_dependencies:
            queue += [f"{d}#{v}" for d, v in pkg.dependencies.items()]
    for f in failed:
        click.echo(f"vigie: warning: dependency not installed: {f}", err=True)
    return 0


@packages_group.command("add-cisis")
@click.argument("source", type=click.Path())
def packages_add_cisis(source):
    """Record a copy of the ANS's CI-SIS test content (TestContenuCDA: a folder or a zip) for the cda-r2 and
    ci-sis profiles; vigie ships none."""
    from ..cda.content import add_content
    content = add_content(source)
    click.echo(f"added the CI-SIS content {content.version} (dated {content.date}, {content.digest}) to "
               f"{content.root}")
    return 0
