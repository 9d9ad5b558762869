"""The command line. Every error is one line on stderr; exit codes: 0 conformant (or with
reservations), 1 non-conformant, 2 incomplete, 3 usage or configuration error, 130 interrupted."""
from __future__ import annotations

import functools
import os
import shlex
import sys
import tempfile
import threading
from pathlib import Path

import click

from . import __version__
from .display import strip_control
from .errors import VigieError
from .load.options import apply as apply_load_flags
from .load.options import load_options, serve_worker
from .model import EXIT_CODES
from .suite import FIXTURES_DIR

USAGE_ERROR = 3
INTERNAL_ERROR = 4
INTERRUPTED = 130   # 128 + SIGINT, as shells report a command ended by Ctrl-C
LANGS = click.Choice(["en", "fr"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vigie")
def cli():
    """vigie: certification harness for health software (FHIR APIs, health data warehouses)."""


def _campaign_profiles(ids, kinds):
    from .catalogue import load_catalogue, select
    catalogue = load_catalogue()
    if ids:
        return select(catalogue, list(ids))
    return [p for p in catalogue.values() if p.in_default_campaign(kinds)]


def _out_dir(out, bundles=None):
    """--out as given; else a new run-id folder in `bundles` (vigie.toml's out) or in reports/."""
    from .runner import new_run_id
    return Path(out) if out else Path(bundles or "reports") / new_run_id()


def _bundle_dir(out, force, bundles=None):
    """--out for a bundle, checked before anything starts: new, empty, or a previous bundle with --force."""
    from .outdir import claim
    return claim(_out_dir(out, bundles), replace=force, create=False)


FORCE_OPTION = click.option("--force", is_flag=True,
                            help="Replace the previous vigie bundle that --out holds (nothing else is replaced).")


def _signing_key(sign_key):
    """The private key of --sign-key, loaded before the run so that a bad key fails fast."""
    if not sign_key:
        return None
    from .signing import load_private_key
    return load_private_key(sign_key)


class _PipeSafe:
    """Standard output that a reader may close (`vigie run ... | head`): once the pipe is broken, what follows
    goes to /dev/null (as Python's documentation advises), so that the run goes on and writes its report."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _console(quiet: bool = False):
    """The terminal; with --quiet, one that says nothing (the verdict lines go to another)."""
    from rich.console import Console
    out = _PipeSafe(sys.stdout)
    console = Console(highlight=False, quiet=quiet, file=out)
    # piped into a CI log: no 80-column wrapping of outcome lines and the verdict table
    return console if console.is_terminal else Console(highlight=False, width=160, quiet=quiet, file=out)


READ_ONLY_OPTION = click.option("--read-only", is_flag=True, help="Write nothing to the targets: the checks that "
                                "write are not_tested, the load creates nothing.")
QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="For CI logs: print only the verdict lines and "
                            "errors (no live outcomes, no table).")


LIMIT_FLAGS = (
    ("--check-timeout", "check_timeout", "S", "Time limit of one check, in seconds (default 300)."),
    ("--run-timeout", "run_timeout", "S", ("Time limit of the run, renderings included, in seconds (default "
                                          "3600); requirements not reached are not_tested.")),
    ("--max-requests", "max_requests", "N", "Requests the checks may send to each target (default 20000)."),
    ("--max-bytes", "max_bytes", "SIZE", ("Response bytes the checks may receive from each target, e.g. 200M "
                                         "(default 1G).")),
    ("--rate", "rate", "R", "Requests per second the checks may send to each target (default 50)."),
    ("--max-memory", "max_memory", "SIZE", ("Data each of vigie's processes (the run, its renderings) may "
                                           "allocate, e.g. 2G (default 4G).")))


def limit_options(fn=None, *, only=None):
    """Adds the limit flags (or those named in `only`); the command receives them as one dict, `limit_flags`
    (None when not given)."""
    if fn is None:
        return functools.partial(limit_options, only=only)
    chosen = [f for f in LIMIT_FLAGS if only is None or f[1] in only]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        flags = {key: kwargs.pop(key) for _, key, _, _ in chosen}
        return fn(*args, limit_flags=flags, **kwargs)
    for flag, key, metavar, text in reversed(chosen):
        command = click.option(flag, key, metavar=metavar, help=text)(command)
    return command


def _limits(base, limit_flags):
    from .limits import Limits, merge
    return merge(base or Limits(), limit_flags or {})


FORMAT_OPTION = click.option(
    "--format", "formats", multiple=True, metavar="FMT",
    help="Rendering to write besides report.json (repeatable): html, pdf, junit, sarif, allure, md; default: all.")


def _formats(formats):
    from .rendering import check_formats
    return check_formats(formats) or None


def _execute(profiles, targets, out, lang, console, key=None, limits=None, formats=None, product=None,
             force=False, read_only=False):
    from rich.markup import escape

    from .display import Progress, outcome_line, verdict_table
    from .runner import applicable_cases, run_campaign
    command = shlex.join(["vigie", *sys.argv[1:]])
    total = sum(len(p.requirements) for p in profiles)
    console.print(f"[bold]vigie {__version__}[/]: {len(profiles)} profiles, {total} requirements, "
                  f"targets: {escape(strip_control(', '.join(t.id + ' ' + t.public()['url'] for t in targets)))}")
    progress = Progress(len(applicable_cases(profiles, targets)))
    # the live line (a terminal only: rich shows no status in a log) counts the outcomes as they come
    with console.status(progress):
        def shown(outcome):
            progress.advance()
            outcome_line(console, outcome)
        report = run_campaign(profiles, targets, out, lang, command, on_outcome=shown, sign_key=key, limits=limits,
                              formats=formats, product=product, replace_out=force, read_only=read_only)
    for cleaned in report["run"].get("cleanup", []):
        if cleaned["found"] or cleaned.get("left_because"):
            console.print(escape(strip_control(_cleanup_line(cleaned))))
    verdict_table(_console() if console.quiet else console, report, out, quiet=console.quiet)
    if report["run"].get("interrupted"):
        click.echo(f"vigie: interrupted ({report['run']['interrupted']})", err=True)
        return INTERRUPTED
    return EXIT_CODES[report["verdict"]]


def _cleanup_line(cleaned: dict) -> str:
    line = f"{cleaned['target']}: deleted {cleaned['deleted']} of the {cleaned['found']} resources this run created"
    return line + (f"; left: {cleaned['left_because']}" if cleaned.get("left_because") else "")


@cli.command()
@click.option("--profile", "profiles", multiple=True, metavar="ID", help="Profile to run (repeatable); default: the default campaign.")
@click.option("--flaw", "flaws", multiple=True, metavar="NAME", help="Switch a flaw on in the reference system.")
@click.option("--out", type=click.Path(file_okay=False), help="Bundle folder (default reports/<run-id>).")
@click.option("--lang", type=LANGS, default="en", show_default=True)
@click.option("--sign-key", type=click.Path(), help="Ed25519 private key to sign the bundle.")
@READ_ONLY_OPTION
@QUIET_OPTION
@FORCE_OPTION
@FORMAT_OPTION
@limit_options
@load_options
def demo(profiles, flaws, out, lang, sign_key, read_only, quiet, force, formats, limit_flags, load_flags):
    """Start the reference systems on loopback and run the default campaign against them."""
    formats = _formats(formats)
    from .campaign import Target
    from .fixtures.practice import FLAWS, start_practice
    key = _signing_key(sign_key)
    limits = _limits(None, limit_flags)
    if apply_load_flags(load_flags):
        raise VigieError("--worker lends load to another machine's `vigie run`, not to a demo")
    from .fixtures.warehouse import FLAWS as WAREHOUSE_FLAWS
    unknown = [f for f in flaws if f not in FLAWS and f not in WAREHOUSE_FLAWS]
    if unknown:
        raise VigieError(f"unknown flaw '{unknown[0]}' (known: {', '.join(sorted({*FLAWS, *WAREHOUSE_FLAWS}))})")
    # flaw names are unique across the reference systems: each goes to the system that has it
    practice_flaws = tuple(f for f in flaws if f in FLAWS)
    warehouse_flaws = tuple(f for f in flaws if f in WAREHOUSE_FLAWS)
    selected = _campaign_profiles(profiles, ["fhir", "warehouse", "source"])
    kinds = {k for p in selected for k in p.applies_to}
    out = _bundle_dir(out, force)
    console = _console(quiet)
    # the folder holds the practice system's private key: removed however the demo ends, but for SIGKILL
    with _stopped_like_ctrl_c(), tempfile.TemporaryDirectory(prefix="vigie-demo-") as work:
        targets, system = [], None
        if "source" in kinds:  # the reference vendor source tree, read in place (clean: no source flaw)
            targets.append(Target(id="source", kind="source", url=str(DEMO_SOURCE)))
        if "warehouse" in kinds:
            with console.status("building the reference warehouse"):
                targets.append(_demo_warehouse(Path(work), warehouse_flaws))
            console.print(f"reference warehouse (DuckDB, {DEMO_PERSONS} persons) at {targets[-1].url}"
                          + (f" with flaws: {', '.join(warehouse_flaws)}" if warehouse_flaws else ""))
        if "fhir" in kinds:
            with console.status("starting the reference practice system"):
                system = start_practice(port=0, flaws=practice_flaws, workdir=Path(work))
        try:
            if system is not None:
                console.print(f"reference practice system at {system.url}"
                              + (f" with flaws: {', '.join(practice_flaws)}" if practice_flaws else ""))
                targets.insert(0, Target(id="practice", kind="fhir", url=system.url, ca_file=str(system.ca_file),
                                         token=system.token, tokens=dict(system.tokens)))
            return _execute(selected, targets, out, lang, console, key, limits, formats, force=force,
                            read_only=read_only)
        finally:
            if system is not None:
                system.stop()


DEMO_PERSONS = 1000
DEMO_SOURCE = FIXTURES_DIR / "source" / "clean"


def _demo_warehouse(work: Path, flaws: tuple):
    """The reference warehouse in DuckDB, as the demo's `warehouse` target."""
    from .campaign import Target
    from .fixtures.warehouse import build_reference
    url = f"duckdb:///{work / 'warehouse.duckdb'}"
    try:
        build_reference(url, persons=DEMO_PERSONS, seed=42, flaws=flaws)
    except ValueError as exc:
        raise VigieError(str(exc)) from None
    return Target(id="warehouse", kind="warehouse", url=url)


@cli.command()
@click.option("--config", type=click.Path(dir_okay=False), help="vigie.toml with [[targets]].")
@click.option("--fhir", metavar="URL", help="Base URL of a FHIR R4 server to test.")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA certificate (PEM) to trust for --fhir.")
@click.option("--token", metavar="TOKEN", help="Bearer token for --fhir.")
@click.option("--warehouse", metavar="DBURL", help="Database URL of a health data warehouse.")
@click.option("--source", type=click.Path(file_okay=False), help="Folder of the vendor's source code.")
@click.option("--documents", metavar="DIR", help="Folder of CDA R2 documents (*.xml), or one document, to check.")
@click.option("--profile", "profiles", multiple=True, metavar="ID", help="Profile to run (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), help="Bundle folder (default reports/<run-id>).")
@click.option("--lang", type=LANGS, default=None, help="Report language (en or fr).")
@click.option("--sign-key", type=click.Path(), help="Ed25519 private key to sign the bundle.")
@click.option("--product", metavar="NAME", help="Name of the product under test (default: [product] of "
              "vigie.toml, else the FHIR server's CapabilityStatement.software).")
@click.option("--product-version", metavar="V", help="Version of the product under test.")
@click.option("--product-commit", metavar="SHA", help="Source commit of the product under test.")
@click.option("--run-anyway", is_flag=True, help="Run the campaign even when the pre-flight finds a target "
              "unreachable, its certificate untrusted or the token refused (the checks then end in error).")
@READ_ONLY_OPTION
@QUIET_OPTION
@FORCE_OPTION
@FORMAT_OPTION
@limit_options
@load_options
def run(config, fhir, ca_file, token, warehouse, source, documents, profiles, out, lang, sign_key, product,
        product_version, product_commit, run_anyway, read_only, quiet, force, formats, limit_flags, load_flags):
    """Run a campaign against real targets."""
    formats = _formats(formats)
    from .campaign import load_config, make_product, make_target
    key = _signing_key(sign_key)
    master = apply_load_flags(load_flags)
    settings = load_config(Path(config)) if config else {"targets": [], "profiles": []}
    targets = list(settings["targets"])
    if warehouse:
        targets = [t for t in targets if t.kind != "warehouse"]
        targets.append(make_target({"id": "warehouse", "kind": "warehouse", "url": warehouse}, "--warehouse"))
    if source:
        targets = [t for t in targets if t.kind != "source"]
        targets.append(make_target({"id": "source", "kind": "source", "url": source}, "--source"))
    if documents:
        targets = [t for t in targets if t.kind != "documents"]
        targets.append(make_target({"id": "documents", "kind": "documents", "url": documents}, "--documents"))
    if fhir:
        targets = [t for t in targets if t.kind != "fhir"]
        targets.append(make_target({"id": "fhir", "kind": "fhir", "url": fhir, "ca_file": ca_file,
                                    "token": token}, "--fhir"))
    elif ca_file or token:
        raise VigieError("--ca-file and --token go with --fhir")
    if not targets:
        raise VigieError("no target: give --fhir URL, --warehouse DBURL, --source DIR, --documents DIR or --config "
                         "vigie.toml")
    selected = _campaign_profiles(profiles or settings["profiles"], sorted({t.kind for t in targets}))
    if master:  # --worker: no campaign here, only this machine's share of the master's load
        from .writes import begin
        begin(None, read_only)   # give the master's --read-only to each worker too
        return serve_worker(targets, selected, master, _out_dir(out, settings.get("out")))
    limits = _limits(settings.get("limits"), limit_flags)
    flags = {k: v for k, v in (("name", product), ("version", product_version), ("commit", product_commit)) if v}
    declared = make_product({**(settings.get("product") or {}), **flags}, "--product") if flags else \
        settings.get("product")
    out = _bundle_dir(out, force, settings.get("out"))
    _preflight(targets, run_anyway, quiet)
    with _stopped_like_ctrl_c():   # SIGTERM, SIGHUP: the run is reported as interrupted, as for Ctrl-C
        return _execute(selected, targets, out, lang or settings.get("lang", "en"), _console(quiet), key, limits,
                        formats, declared, force, read_only)


def _preflight(targets, run_anyway: bool, quiet: bool) -> None:
    """Pre-flight of the FHIR targets (under 2 s each): one line per finding; what makes every check an error
    (nothing listening, an untrusted certificate, a refused token) stops here, exit 3, unless --run-anyway."""
    from .campaign import ConfigError
    from .preflight import preflight
    findings = preflight(targets)
    blocking = [f for f in findings if not f.ok]
    for f in findings:
        if (f.ok and not quiet) or (not f.ok and run_anyway):
            click.echo(strip_control(f.line()), err=not f.ok)
    if blocking and not run_anyway:
        raise ConfigError([f.line() for f in blocking] + [
            "nothing was run; --run-anyway runs the campaign all the same (its checks will end in error)"])


@cli.command("check-config")
@click.argument("config", type=click.Path())
def check_config(config):
    """Read vigie.toml as `vigie run --config` would, without contacting any target: print what it found and
    every problem, one line each. Exit 0 when it has none, 3 otherwise."""
    from .campaign import read_config
    from .catalogue import load_catalogue, select
    settings, problems = read_config(Path(config))
    for t in settings.get("targets", []):
        details = [f"CA file {t.ca_file}"] if t.ca_file else []
        details += ["a token"] if t.token else []
        details += [f"roles {', '.join(sorted(t.tokens))}"] if t.tokens else []
        click.echo(strip_control(f"target {t.id} ({t.kind}): {t.public()['url']}"
                                 + (f", {', '.join(details)}" if details else "")))
    if settings.get("targets") == [] and not problems:   # flags may give them: not a problem of the file
        click.echo("targets: none (vigie run then needs --fhir, --warehouse or --source)")
    if not settings:   # not read at all: nothing found to print
        pass
    elif settings.get("profiles"):
        try:
            select(load_catalogue(), settings["profiles"])
            click.echo(f"profiles: {', '.join(settings['profiles'])}")
        except VigieError as exc:
            problems.append(f"{config}: profiles: {exc}")
    else:
        click.echo("profiles: the default campaign for these targets")
    if settings.get("out"):
        click.echo(strip_control(f"bundles: {settings['out']}/<run-id> (one folder per run)"))
    if settings.get("lang"):
        click.echo(f"lang: {settings['lang']}")
    if settings.get("product"):
        click.echo(strip_control("product: " + " ".join(settings["product"].values())))
    for problem in problems:
        click.echo(f"vigie: error: {strip_control(problem)}", err=True)
    click.echo(f"{strip_control(config)}: " + (f"{len(problems)} problem(s)" if problems else "no problem found"))
    return USAGE_ERROR if problems else 0


@cli.group()
def profiles():
    """The catalogue of profiles."""


@profiles.command("list")
def profiles_list():
    """List the profiles."""
    from .catalogue import load_catalogue
    for p in load_catalogue().values():
        click.echo(f"{p.id:28} {p.version:16} {len(p.requirements):3} requirements  "
                   f"[{', '.join(p.applies_to)}]  {p.title['en']}")


@profiles.command("show")
@click.argument("profile_id")
@click.option("--lang", type=LANGS, default="en")
def profiles_show(profile_id, lang):
    """Show a profile's requirements."""
    from .catalogue import load_catalogue, select
    p = select(load_catalogue(), [profile_id])[0]
    click.echo(f"{p.id} {p.version}: {p.title[lang]}")
    click.echo(f"source: {p.source.get('title')} {p.source.get('url', '')} ({p.source.get('published', '')})")
    click.echo(f"applies to: {', '.join(p.applies_to)}")
    for r in p.requirements:
        click.echo(f"  {r.id:18} {r.level:6} {r.check:24} {r.title_in(lang)}  [{r.reference}]")


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--format", "formats", multiple=True, metavar="FMT",
              help="html, pdf, junit, sarif, allure, md (repeatable); default: those a run writes.")
@click.option("--lang", type=LANGS, default=None)
@click.option("--sign-key", type=click.Path(), help="Ed25519 private key to sign the bundle again.")
@limit_options(only=("run_timeout", "max_memory"))
def report(bundle, formats, lang, sign_key, limit_flags):
    """Rebuild a bundle's report.json from its journal and render it again (then seal it again), within the
    time limit and memory ceiling."""
    from .bundle import build_bundle
    from .limits import memory_ceiling
    from .rendering import Bounds
    from .signing import SIGNATURE
    formats = _formats(formats)
    key = _signing_key(sign_key)
    limits = _limits(None, limit_flags)
    was_signed = (Path(bundle) / SIGNATURE).exists()
    bounds = Bounds(limits.run_timeout_s, limits.max_memory, f"the time limit of {limits.run_timeout_s:g} s was reached")
    with memory_ceiling(limits.max_memory):
        result = build_bundle(Path(bundle), lang, formats, sign_key=key, bounds=bounds)
    run = result["run"]
    if run.get("interrupted"):
        ending = f" (the run was interrupted by {run['interrupted']})"
    else:
        ending = "" if run["complete"] else " (the run did not finish)"
    click.echo(f"{bundle}: {result['verdict']}{ending}")
    if was_signed and key is None:
        click.echo(f"{bundle}: re-rendered, so its previous signature was removed; sign it again with --sign-key")
    return EXIT_CODES[result["verdict"]]


@cli.command()
@click.argument("keyfile", type=click.Path(dir_okay=False))
def keygen(keyfile):
    """Write an Ed25519 private key to KEYFILE (mode 600) and its public key to KEYFILE.pub."""
    from .signing import generate_key, public_path
    keyid = generate_key(Path(keyfile))
    click.echo(f"private key: {keyfile} (keep it secret)")
    click.echo(f"public key:  {public_path(Path(keyfile))} (give it to whoever verifies your reports)")
    click.echo(f"key id:      {keyid}")
    return 0


TRUSTED_KEYS_VARIABLE = "VIGIE_TRUSTED_KEYS"


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--key", "keys", type=click.Path(), multiple=True,
              help="Public key (PEM) you trust, or a keyring file of several (repeatable; default: the files "
                   f"named by ${TRUSTED_KEYS_VARIABLE}, separated by '{os.pathsep}').")
@click.option("--integrity-only", is_flag=True,
              help="Exit 0 for an intact bundle even when no trusted key signed it.")
def verify(bundle, keys, integrity_only):
    """Check a bundle offline: every file against its manifest, the signature and the attestation, and who
    signed it. Exit 0: intact and signed by a trusted key; 1: not intact; 2: intact, but not signed by a key
    you trust (0 with --integrity-only)."""
    from .signing import load_trusted_keys
    from .signing import verify as verify_bundle
    paths = list(keys) or [p for p in os.environ.get(TRUSTED_KEYS_VARIABLE, "").split(os.pathsep) if p]
    trusted = load_trusted_keys(paths)
    result = verify_bundle(Path(bundle), trusted)
    for line in describe_run(Path(bundle), result.intact):
        click.echo(f"{bundle}: {line}")
    for problem in result.problems:   # they name the bundle's files: a received bundle chose those names
        click.echo(f"{bundle}: {strip_control(problem)}")
    if result.problems:
        click.echo(f"{bundle}: NOT INTACT ({len(result.problems)} problem(s))")
        return 1
    if not result.signed:
        seal = f"intact ({result.files} files match the manifest), NOT SIGNED: anyone could have written it"
    elif result.trusted:
        click.echo(f"{bundle}: intact ({result.files} files), signed by the trusted key {result.signer}")
        return 0
    elif not trusted:
        seal = (f"intact ({result.files} files), signed by key {result.signer}, which you have not said you trust "
                f"(give --key PUB or set ${TRUSTED_KEYS_VARIABLE})")
    else:
        seal = (f"intact ({result.files} files), signed by an UNKNOWN KEY {result.signer}, not by any of the "
                f"{len(trusted)} key(s) you trust")
    click.echo(f"{bundle}: {seal}")
    return 0 if integrity_only else 2


def describe_run(bundle: Path, intact: bool) -> list[str]:
    """What the bundle says it is (run, dates, targets, product, verdict), so that an older bundle put in place
    of a newer one can be told; marked unverified when the bundle is not intact."""
    import json
    try:
        report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
        run = report["run"]
        targets = ", ".join(f"{t.get('id')} {t.get('url', '')}".strip() for t in report.get("targets", []))
        product = report.get("product") or {}
        lines = [f"run {run.get('id')}, started {run.get('started')}, finished {run.get('finished') or '-'}",
                 f"targets: {targets or '-'}",
                 f"verdict: {report.get('verdict')}"]
        if product:
            lines.insert(2, "product: " + " ".join(str(product.get(k)) for k in ("name", "version", "commit")
                                                    if product.get(k)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ["report.json unreadable: nothing to say about the run"]
    mark = "" if intact else " (unverified: the bundle is not intact)"
    return [strip_control(line)[:300] + mark for line in lines]


@cli.command()
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--unverified", is_flag=True,
              help="Compare even a bundle that is not intact, or a report.json alone (which cannot be verified).")
def diff(old, new, as_json, unverified):
    """Compare two bundles: regressions, fixes, new and removed requirements, measurements that moved. Each
    bundle's integrity is checked first, and verdicts are recomputed from the outcomes."""
    import json

    from .diff import diff_reports, load_for_diff, render_text
    result = diff_reports(load_for_diff(Path(old), unverified), load_for_diff(Path(new), unverified))
    click.echo(json.dumps(result, indent=2, ensure_ascii=False) if as_json else render_text(result))
    return 1 if result["regression"] else 0


@cli.group()
def reference():
    """Serve the reference systems."""


@reference.command("practice")
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option("--flaw", "flaws", multiple=True, metavar="NAME")
@click.option("--state", type=click.Path(file_okay=False), help="Write DIR/vigie.toml (URL, CA file, token).")
@click.option("--seed", type=int, default=42, show_default=True)
def reference_practice(port, flaws, state, seed):
    """Serve the reference practice system (FHIR R4 over HTTPS) until interrupted."""
    from .fixtures.practice import FLAWS, start_practice
    from .fixtures.practice.private import UnsafeFolder
    unknown = [f for f in flaws if f not in FLAWS]
    if unknown:
        raise VigieError(f"unknown flaw '{unknown[0]}' (known: {', '.join(sorted(FLAWS))})")
    # without --state, the TLS material goes to a temporary folder the system owns and removes when stopped
    with _stopped_like_ctrl_c():
        try:
            system = start_practice(port=port, flaws=tuple(flaws), seed=seed, workdir=Path(state) if state else None)
        except UnsafeFolder as exc:
            raise VigieError(f"--state {exc}") from None
        except OSError as exc:
            raise VigieError(f"cannot serve on port {port}: {exc.strerror or exc}") from None
        try:
            click.echo(f"serving {system.url}" + (f" with flaws: {', '.join(flaws)}" if flaws else ""))
            click.echo(f"CA file: {system.ca_file}")
            if state:
                click.echo(f"state: {system.write_state(Path(state))}")
            else:
                click.echo(f"token: {system.token}")
            threading.Event().wait()
        except KeyboardInterrupt:   # Ctrl-C, SIGTERM, SIGHUP
            pass
        finally:
            system.stop()
    return 0


def _stopped_like_ctrl_c():
    """SIGTERM and SIGHUP end the command as Ctrl-C does (KeyboardInterrupt), so that its cleanup runs (servers
    stopped, temporary folders with keys removed) instead of the process dying where it stands."""
    from .interrupts import like_ctrl_c
    return like_ctrl_c()


@reference.command("warehouse")
@click.argument("dburl")
@click.option("--persons", type=click.IntRange(1, 100_000_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--flaw", "flaws", multiple=True, metavar="NAME")
def reference_warehouse(dburl, persons, seed, flaws):
    """Build the reference warehouse (OMOP CDM 5.4, pseudonymised, with an audit log) at DBURL:
    duckdb:///file.duckdb, postgresql://user@host/db?schema=name (with a read-only role for the harness), or
    spark+local:///folder (Parquet tables, one folder per table, for Spark)."""
    import time

    from .fixtures.warehouse import build_reference
    from .warehouse.url import public_url
    started = time.monotonic()
    try:
        url = build_reference(dburl, persons=persons, seed=seed, flaws=tuple(flaws))
    except ValueError as exc:
        raise VigieError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the database refused: one line, not a traceback
        from .warehouse.session import one_line
        raise VigieError(f"cannot build the reference warehouse at {public_url(dburl)}: {one_line(exc)}") from None
    click.echo(f"built {persons} persons in {time.monotonic() - started:.1f} s"
               + (f" with flaws: {', '.join(flaws)}" if flaws else ""))
    click.echo(f"test it with: vigie run --warehouse '{public_url(url)}'")
    return 0


def _later(name, what):
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   add_help_option=False)
    def command():
        raise VigieError(f"{what} is not available yet in this version of vigie")
    command.__doc__ = f"{what} (not available yet)."
    return command


from .fhir.commands import packages_group, validate_command

cli.add_command(validate_command)
cli.add_command(packages_group)


def main(argv=None):
    try:
        code = cli.main(args=argv, prog_name="vigie", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("vigie: interrupted", err=True)
        code = INTERRUPTED
    except click.ClickException as exc:
        click.echo(f"vigie: error: {strip_control(exc.format_message())}", err=True)
        code = USAGE_ERROR
    except VigieError as exc:
        # a message may quote a configuration, a package or a bundle received from elsewhere
        for problem in getattr(exc, "problems", None) or [str(exc)]:
            click.echo(f"vigie: error: {strip_control(problem)}", err=True)
        code = USAGE_ERROR
    except KeyboardInterrupt:
        click.echo("vigie: interrupted", err=True)
        code = INTERRUPTED
    except Exception as exc:  # a bug of vigie's own: one line, the traceback only on request
        if os.environ.get("VIGIE_DEBUG"):
            raise
        click.echo(f"vigie: internal error: {type(exc).__name__}: {strip_control(exc)} (set VIGIE_DEBUG=1 for "
                   "details)", err=True)
        code = INTERNAL_ERROR
    # CPython 3.11 remembers a KeyboardInterrupt that went through an eval/exec of source text (a dataclass or
    # namedtuple being built while an interrupt lands) and, at exit, kills the process with SIGINT even though
    # vigie handled it; evaluating source text resets that memory, so the exit code is the one chosen above
    eval("None")
    sys.exit(code or 0)
