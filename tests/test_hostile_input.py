"""The harness facing hostile input (issue 16): credentials in a URL's query (item 3), ids that would name
paths outside the bundle (item 4), terminal escape sequences from a target (item 7), state and temporary
folders that hold keys and tokens (item 12). Real runs where it matters: vigie against the machine's
PostgreSQL, against a FHIR server on loopback, the reference practice system and the demo in their own
processes, killed as a user or a supervisor would."""
from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fhirstub import FhirStub, capability
from vigie.fixtures.hostile import engines

from vigie.campaign import Target, load_config, make_target
from vigie.catalogue import load_catalogue
from vigie.errors import VigieError
from vigie.evidence import REDACTED, EvidenceStore, Redactor, safe_name

ROOT = Path(__file__).resolve().parent.parent
ESCAPES = "\x1bc\x1b]0;PWNED\x07\x9b31m"
CONTROL = ("\x1b", "\x9b", "\x07")


def vigie(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=ROOT, env={**os.environ, **(env or {})})


def one_error_line(result) -> str:
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


def bundle_text(folder: Path) -> str:
    """Every file of a bundle as text, the PDF's text extracted."""
    from pypdf import PdfReader
    texts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".pdf":
            texts.append("".join(page.extract_text() for page in PdfReader(str(path)).pages))
        elif path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


# --- item 3: credentials in a URL's query -------------------------------------------------------------------

def test_credentials_in_a_url_query_are_public_nowhere_and_known_to_the_redactor():
    target = make_target({"id": "w", "kind": "warehouse",
                          "url": "postgresql://reader:u%40pw@127.0.0.1/db?schema=cdm&password=Q%26pw-1&sslpassword=k3y-2"},
                         "test")
    public = target.public()["url"]
    assert "Q%26pw" not in public and "k3y-2" not in public and "u%40pw" not in public
    assert f"password={REDACTED}" in public and "schema=cdm" in public and "reader" in public
    # as written and as decoded: a driver's error message quotes either
    assert {"Q%26pw-1", "Q&pw-1", "k3y-2", "u%40pw", "u@pw"} <= set(target.secrets())
    fhir = Target(id="f", kind="fhir", url="https://h.test/fhir?access_token=tok-9&_format=json")
    assert fhir.public()["url"] == f"https://h.test/fhir?access_token={REDACTED}&_format=json"
    assert Redactor(fhir.secrets()).text("echoed tok-9 back") == f"echoed {REDACTED} back"


@pytest.fixture
def pg_reader():
    """A reference warehouse of 30 persons in its own schema of the machine's PostgreSQL, and its reader URL."""
    from vigie.fixtures.warehouse import build_reference
    from vigie.fixtures.warehouse.postgres import drop
    from vigie.fixtures.warehouse.testing import POSTGRES, postgres_reachable
    why = postgres_reachable()
    if why:   # CI starts PostgreSQL: its absence is a failure, not a skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {why}")
    schema = f"vigie_hi_{uuid.uuid4().hex[:10]}"
    try:
        yield schema, build_reference(f"{POSTGRES}?schema={schema}", persons=30, seed=3)
    finally:
        drop(POSTGRES, schema)


def test_a_password_in_the_query_reaches_neither_the_bundle_nor_the_terminal(pg_reader, tmp_path):
    schema, reader = pg_reader
    password = f"Qpw-{uuid.uuid4().hex[:12]}&x"
    url = f"{reader}&password={password.replace('&', '%26')}"
    out = tmp_path / "bundle"
    result = vigie("run", "--warehouse", url, "--profile", "omop-cdm-5.4", "--profile", "omop-dq",
                   "--profile", "eds-privacy", "--profile", "load-warehouse", "--out", str(out))
    assert (out / "report.json").is_file(), result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["targets"][0]["url"].endswith(f"password={REDACTED}")
    assert f"password={REDACTED}" in report["run"]["command"]
    everything = bundle_text(out) + result.stdout + result.stderr
    assert schema in everything   # the URL is shown: the search below looks where it would be
    secret = password.partition("&")[0]
    assert secret not in everything and password.replace("&", "%26") not in everything


# --- item 4: ids used in paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../../../../x", "a/b", "..", "", "x\x1bc", "-flag", "é"])
def test_a_target_id_that_is_not_an_id_is_refused_in_one_line(tmp_path, bad):
    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    (work / "vigie.toml").write_text(f'[[targets]]\nid = {json.dumps(bad)}\nkind = "fhir"\n'
                                     'url = "https://127.0.0.1:9/fhir"\n')
    before = set(tmp_path.rglob("*"))
    line = one_error_line(vigie("run", "--config", str(work / "vigie.toml"), "--profile", "fhir-r4-rest",
                                "--out", str(work / "out")))
    assert "target id" in line and "not a valid id" in line and "\x1b" not in line
    assert set(tmp_path.rglob("*")) == before


def test_evidence_paths_stay_in_the_bundle_whatever_the_names(tmp_path):
    bundle = tmp_path / "one" / "two" / "three" / "bundle"
    store = EvidenceStore(bundle, Redactor())
    written = [store.write_json(f"tls/{name}.json", {"name": name})
               for name in ("../../../../x", "..", "a/b", "a%2Fb", ".hidden", "x\x1bc")]
    written.append(store.path_for(f"load/{'../' * 6}stats.json").relative_to(bundle).as_posix())
    files = [p for p in tmp_path.rglob("*") if p.is_file() or not any(p.iterdir())]
    assert all((bundle / "evidence") in p.parents for p in files), files
    assert len(set(written)) == len(written) and all(w.startswith("evidence/") for w in written)
    assert not any("/../" in w or "\x1b" in w for w in written)
    # names that differ never share a file
    assert len({safe_name(n) for n in ("a/b", "a_b", "a%2Fb", "a%2fb", "..", "%2E.", "x" * 300, "x" * 301)}) == 8


def test_profile_and_requirement_ids_are_checked_at_load(tmp_path):
    good = {"id": "p1", "version": "1", "title": {"en": "t", "fr": "t"}, "source": {"title": "s"},
            "applies_to": ["fhir"], "requirements": [{"id": "P-01", "level": "SHALL", "title": {"en": "t", "fr": "t"},
                                                      "reference": "r", "check": "tls.protocols"}]}
    (tmp_path / "p.yaml").write_text(json.dumps(good))
    assert list(load_catalogue(tmp_path)) == ["p1"]
    for field, bad in (("profile", "../p"), ("requirement", "../../../x")):
        data = json.loads(json.dumps(good))
        if field == "profile":
            data["id"] = bad
        else:
            data["requirements"][0]["id"] = bad
        (tmp_path / "p.yaml").write_text(json.dumps(data))
        with pytest.raises(VigieError, match=f"{field} id '{bad}' is not a valid id"):
            load_catalogue(tmp_path)


def test_an_ig_package_named_like_a_path_is_refused_in_one_line(tmp_path):
    statement = {"resourceType": "CapabilityStatement", "id": "x", "rest": [{"mode": "server", "resource": []}]}
    path = engines.package_tgz(tmp_path / "evil.tgz",
                               {"name": "../../evil", "version": "0.1.0", "fhirVersions": ["4.0.1"]},
                               {"package/CapabilityStatement-x.json": json.dumps(statement).encode()})
    line = one_error_line(vigie("profiles", "show", f"ig:{path}", env={"FHIR_PACKAGE_CACHE": str(tmp_path / "c")}))
    assert "no valid name" in line and "../../evil" in line


# --- item 7: terminal escape sequences from the target --------------------------------------------------------

def test_escape_sequences_from_a_target_reach_neither_the_terminal_nor_summary_md(tmp_path):
    statement = capability({"Patient" + ESCAPES: {}}, software={"name": "Soft" + ESCAPES},
                           fhirVersion="4.0.1" + ESCAPES)
    out = tmp_path / "bundle"
    with FhirStub(statement, unknown="ignore") as stub:
        result = vigie("run", "--fhir", stub.url, "--profile", "fhir-r4-rest", "--out", str(out), timeout=240)
    assert result.returncode in (1, 2), result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    quoting = [o for o in report["outcomes"] if ESCAPES in o["summary"]]
    assert quoting, "no summary quotes the target: the test would prove nothing"
    # the terminal shows those summaries, visibly marked where the target sent control characters
    assert any(f"{o['requirement']}@fhir" in result.stdout for o in quoting)
    assert "Patient\ufffdc\ufffd]0;PWNED\ufffd\ufffd31m" in result.stdout
    summary = (out / "summary.md").read_text()
    assert "Patient\ufffdc" in summary and "Soft\ufffdc" in summary
    # verify names the product the target declared, and the files a received bundle holds
    (out / "extra\x1bc").write_text("")
    verified = vigie("verify", str(out))
    assert verified.returncode == 1 and "extra\ufffdc" in verified.stdout and "Soft\ufffdc" in verified.stdout
    for text in (result.stdout, result.stderr, summary, verified.stdout, verified.stderr):
        assert not any(c in text for c in CONTROL)


def test_configuration_errors_show_no_control_character(tmp_path):
    config = tmp_path / "vigie.toml"
    config.write_text('[[targets]]\n"x\\u001bc" = 1\nkind = "fhir"\nurl = "https://127.0.0.1:9/fhir"\n')
    line = one_error_line(vigie("run", "--config", str(config)))
    assert "unknown target key 'x\ufffdc'" in line and not any(c in line for c in CONTROL)
    line = one_error_line(vigie("run", "--fhir", f"https://127.0.0.1:9/fhir{ESCAPES}", "--profile", "fhir-r4-rest",
                                "--out", str(tmp_path / "out")))
    assert "holds control characters" in line and not any(c in line for c in CONTROL)
    assert not (tmp_path / "out").exists()


def test_the_verdict_table_shows_no_control_character():
    from rich.console import Console

    from vigie.display import outcome_line, verdict_table
    from vigie.model import Outcome
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    outcome_line(console, Outcome(requirement="R-1", profile="p", level="SHALL", target="t", check="c",
                                  status="failed", summary=f"quoted {ESCAPES} [bold]\u202eevil"))
    counts = dict.fromkeys(("passed", "failed", "error", "not_tested", "not_applicable"), 0)
    verdict_table(console, {"profiles": [{"id": "ig:x" + ESCAPES, "version": "1" + ESCAPES, "verdict": "incomplete",
                                          "counts": counts}],
                            "run": {"suite_errors": ["import failed: " + ESCAPES]}, "verdict": "incomplete"},
                  Path("/nonexistent"))
    shown = console.file.getvalue()
    assert "[bold]" in shown and "ig:x\ufffdc" in shown and "import failed: \ufffdc" in shown
    assert not any(c in shown for c in (*CONTROL, "\u202e"))


# --- item 12: private state folders, temporary folders removed ---------------------------------------------

def _serve_practice(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "vigie", "reference", "practice", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})


def _wait_for(condition, proc, what: str, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} never came: {proc.communicate()[0][-2000:]}")
        time.sleep(0.1)


def _stop(proc, signum=signal.SIGTERM) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_state_folder_is_private_and_never_written_through_links(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victims = {name: tmp_path / f"victim-{name}" for name in ("server.key", "vigie.toml", "ca.pem")}
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (state / name).symlink_to(victim)
    proc = _serve_practice("--state", str(state))
    try:
        _wait_for(lambda: (state / "vigie.toml").is_file() and not (state / "vigie.toml").is_symlink(), proc,
                  "vigie.toml")
        time.sleep(0.3)
        assert all(v.read_text() == "precious\n" for v in victims.values())
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        entries = list(state.iterdir())
        assert {"server.key", "server.pem", "ca.pem", "vigie.toml"} <= {p.name for p in entries}
        for entry in entries:
            info = entry.lstat()
            assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, entry
        assert load_config(state / "vigie.toml")["targets"][0].token
    finally:
        assert _stop(proc) == 0


def test_a_new_state_folder_is_created_private(tmp_path):
    state = tmp_path / "new" / "state"
    proc = _serve_practice("--state", str(state))
    try:
        _wait_for(lambda: (state / "vigie.toml").is_file(), proc, "vigie.toml")
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "vigie.toml").stat().st_mode) == 0o600
    finally:
        _stop(proc)


@pytest.mark.parametrize("case", ["link", "open"])
def test_a_state_folder_that_is_a_link_or_open_to_others_is_refused(tmp_path, case):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    state = tmp_path / "state"
    if case == "link":
        state.symlink_to(real)
    else:
        state.mkdir()
        state.chmod(0o755)
    line = one_error_line(vigie("reference", "practice", "--port", "0", "--state", str(state), timeout=60))
    assert str(state) in line and ("symbolic link" if case == "link" else "open to others") in line
    assert not any(real.iterdir()) and not any(p.is_file() for p in state.iterdir())


def test_the_practice_server_removes_its_temporary_folder_when_terminated(tmp_path):
    proc = _serve_practice(env={"TMPDIR": str(tmp_path)})
    _wait_for(lambda: any(tmp_path.glob("vigie-practice-*/server.key")), proc, "the temporary TLS material")
    folder = next(tmp_path.glob("vigie-practice-*"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "server.key").stat().st_mode) == 0o600
    time.sleep(1)   # serving
    assert _stop(proc) == 0
    assert not list(tmp_path.glob("vigie-practice-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_demo_removes_its_temporary_folder(tmp_path, signum):
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vigie", "demo", "--profile", "http-hardening",
                             "--out", str(tmp_path / "bundle")], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    _wait_for(lambda: "reference practice system at" in (tmp_path / "demo.log").read_text(), proc,
              "the reference practice system")
    folder = next(tmp_path.glob("vigie-demo-*"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and (folder / "server.key").is_file()
    time.sleep(1)   # into the run
    code = _stop(proc, signum)
    assert code != -signum, "the signal killed the demo where it stood"
    assert not list(tmp_path.glob("vigie-demo-*")), (tmp_path / "demo.log").read_text()[-2000:]


def test_an_interrupt_handled_inside_generated_code_does_not_kill_vigie_at_exit(tmp_path):
    # what an interrupt landing while a dataclass is built (pytest collecting the checks) leaves behind:
    # CPython 3.11 would then end `python -m vigie` with SIGINT, whatever exit code vigie chose
    (tmp_path / "interrupted.py").write_text(
        "from vigie.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"     # all it imports, imported
        "try:\n    exec('raise KeyboardInterrupt')\nexcept KeyboardInterrupt:\n    pass\n"
        "main(['--version'])\n")
    result = subprocess.run([sys.executable, "-m", "interrupted"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, check=False)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])


def test_a_demo_that_fails_removes_its_temporary_folder(tmp_path):
    # a bundle folder already holding a run is refused once the reference systems are up
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "journal.ndjson").write_text("")
    result = vigie("demo", "--profile", "http-hardening", "--out", str(tmp_path / "bundle"),
                   env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 3, result.stderr[-2000:]
    assert not list(tmp_path.glob("vigie-demo-*"))
