"""Bad input on the command line: one clear line on stderr, exit code 3, never a traceback."""
import subprocess
import sys
from pathlib import Path

import pytest


def vigie(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.parametrize("args, message", [
    (["run", "--bogus"], "No such option '--bogus'"),
    (["demo", "--profile", "no-such-profile"], "unknown profile 'no-such-profile'"),
    (["demo", "--flaw", "no-such-flaw"], "unknown flaw 'no-such-flaw'"),
    (["run"], "no target"),
    (["run", "--fhir", "ftp://x"], "is not an http(s) URL"),
    (["run", "--fhir", "https://127.0.0.1:9", "--ca-file", "/no/such/ca.pem"], "CA file '/no/such/ca.pem' not found"),
    (["run", "--config", "/no/such/vigie.toml"], "configuration file not found"),
    (["report", "/no/such/bundle"], "not a report bundle folder"),
    (["profiles", "show", "nope"], "unknown profile 'nope'"),
    (["verify", "/no/such/bundle"], "not a report bundle folder"),
    (["run", "--warehouse", "nosuchdb://x/y"], "unknown database scheme 'nosuchdb'"),
])
def test_usage_errors(args, message):
    result = vigie(*args)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file(tmp_path):
    (tmp_path / "vigie.toml").write_text("[[targets]]\nkind = 'fhir'\nurl = 'https://127.0.0.1:9'\ncolour = 1\n")
    result = vigie("run", "--config", str(tmp_path / "vigie.toml"))
    assert result.returncode == 3 and "unknown target key 'colour'" in result.stderr


def test_bad_product_in_config(tmp_path):
    (tmp_path / "vigie.toml").write_text("[product]\nname = 'Cabinet'\nbuild = 3\n\n[[targets]]\nkind = 'fhir'\n"
                                         "url = 'https://127.0.0.1:9'\n")
    result = vigie("run", "--config", str(tmp_path / "vigie.toml"))
    assert result.returncode == 3 and "unknown product key 'build'" in result.stderr


def test_product_from_config_and_flags(tmp_path):
    from vigie.campaign import load_config
    (tmp_path / "vigie.toml").write_text("[product]\nname = 'Cabinet Plus'\nversion = '4.2'\n")
    assert load_config(tmp_path / "vigie.toml")["product"] == {"name": "Cabinet Plus", "version": "4.2"}


def test_profiles_list_and_show():
    listed = vigie("profiles", "list")
    assert listed.returncode == 0 and "fhir-r4-rest" in listed.stdout
    shown = vigie("profiles", "show", "fhir-r4-rest", "--lang", "fr")
    assert shown.returncode == 0 and "FHIR-REST-01" in shown.stdout and "CapabilityStatement" in shown.stdout


def test_a_relative_ca_file_is_kept_as_the_file_it_names(tmp_path, monkeypatch):
    # `--ca-file state/ca.pem` as the README writes it: the load process, which runs from another folder,
    # must still find it
    from vigie.campaign import make_target
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.chdir(tmp_path)
    target = make_target({"kind": "fhir", "url": "https://127.0.0.1:9/fhir", "ca_file": "state/ca.pem"},
                         "--fhir")
    assert Path(target.ca_file).is_absolute() and Path(target.ca_file) == tmp_path / "state" / "ca.pem"


def test_a_language_vigie_does_not_write_is_refused_before_the_campaign(tmp_path):
    config = tmp_path / "vigie.toml"
    config.write_text('lang = "de"\n[[targets]]\nid = "p"\nkind = "fhir"\nurl = "https://127.0.0.1:9/fhir"\n')
    result = subprocess.run([sys.executable, "-m", "vigie", "run", "--config", str(config), "--profile",
                             "http-hardening", "--out", str(tmp_path / "b")], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 3 and result.stderr.strip() == (
        f"vigie: error: {config}: lang must be one of en, fr, not 'de'"), result.stderr
    assert not (tmp_path / "b").exists() and "HTTP-01" not in result.stdout


@pytest.mark.parametrize("width", [80, 160])
def test_the_verdict_table_shows_every_verdict_whole(width):
    import io

    from rich.console import Console

    from vigie.display import verdict_table
    counts = {"passed": 1, "failed": 2, "error": 3, "not_tested": 4, "not_applicable": 5}
    report = {"profiles": [{"id": "mozilla-tls-intermediate", "version": "5.7-vigie.1", "verdict": verdict,
                            "counts": counts} for verdict in ("conformant-with-reservations", "non-conformant")],
              "run": {}, "verdict": "non-conformant", "outcomes": []}
    out = io.StringIO()
    verdict_table(Console(width=width, file=out), report, Path("/nonexistent"))
    shown = out.getvalue()
    assert "conformant-with-reservations" in shown and "non-conformant" in shown and "…" not in shown, shown
    assert max(len(line) for line in shown.splitlines()) <= width
    assert "not applicable" in shown   # the counts say what they count, in the heading or in the caption


def _config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vigie.toml").write_text(text)
    return folder / "vigie.toml"


BAD_CONFIG = """lang = 3
colour = 1
[limits]
check_timeout = -1
rate = "fast"
[[targets]]
kind = "fhir"
url = "https://127.0.0.1:99999/fhir"
ca_file = "missing.pem"
[[targets]]
kind = "source"
url = "nosrc"
"""


def test_check_config_names_every_problem_one_line_each(tmp_path):
    config = _config(tmp_path, BAD_CONFIG)
    result = vigie("check-config", str(config))
    assert result.returncode == 3, result.stderr
    problems = result.stderr.strip().splitlines()
    assert all(line.startswith(f"vigie: error: {config}: ") for line in problems), problems
    for expected in ("unknown key 'colour'", "port out of range (1-65535)", f"CA file '{tmp_path}/missing.pem'",
                     f"source folder '{tmp_path}/nosrc' not found", "check_timeout must be a positive",
                     "rate must be a positive", "lang must be one of en, fr, not 3"):
        assert sum(expected in line for line in problems) == 1, (expected, problems)
    assert len(problems) == 7 and "Traceback" not in result.stderr
    assert result.stdout.strip().endswith("7 problem(s)")
    # run --config refuses the same file with the same lines, before anything runs
    ran = vigie("run", "--config", str(config))
    assert ran.returncode == 3 and ran.stderr.strip().splitlines() == problems and not ran.stdout


def test_check_config_prints_what_it_found(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "src").mkdir()
    config = _config(tmp_path, 'profiles = ["http-hardening"]\nout = "bundles"\n[[targets]]\nid = "practice"\n'
                     'kind = "fhir"\nurl = "https://127.0.0.1:8443/fhir"\nca_file = "ca.pem"\ntoken = "s3cr3t"\n'
                     'tokens = {reader = "r3ad"}\n[[targets]]\nkind = "source"\nurl = "src"\n')
    result = vigie("check-config", str(config))
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.splitlines() == [
        f"target practice (fhir): https://127.0.0.1:8443/fhir, CA file {tmp_path}/ca.pem, a token, roles reader",
        f"target source (source): {tmp_path}/src", "profiles: http-hardening",
        f"bundles: {tmp_path}/bundles/<run-id> (one folder per run)", f"{config}: no problem found"]
    assert "s3cr3t" not in result.stdout and "r3ad" not in result.stdout
    unknown = vigie("check-config", str(_config(tmp_path / "p", 'profiles = ["nope"]\n[[targets]]\nkind = "fhir"\n'
                                                                 'url = "https://127.0.0.1:8443/fhir"\n')))
    assert unknown.returncode == 3 and "unknown profile 'nope'" in unknown.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--fhir", "https://127.0.0.1:99999/fhir"], "port out of range (1-65535)"),
    (["run", "--fhir", "https://127.0.0.1:0/fhir"], "port out of range (1-65535)"),
    (["run", "--fhir", "https://127.0.0.1:9/fhir", "--out", "afile/sub"], "afile is a file"),
    (["demo", "--out", "afile/sub/deeper"], "afile is a file"),
])
def test_bad_values_are_one_line_before_the_run(tmp_path, args, message):
    (tmp_path / "afile").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=60,
                            check=False, cwd=tmp_path)
    assert result.returncode == 3 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout, (result.stdout, result.stderr)


def test_out_in_the_config_receives_one_bundle_folder_per_run(tmp_path):
    # `out =` of vigie.toml serves every run: each writes <out>/<run-id>, relative to the file's folder
    from vigie.campaign import load_config
    from vigie.cli import _bundle_dir
    config = _config(tmp_path / "conf", 'out = "bundles"\n[[targets]]\nkind = "fhir"\n'
                     'url = "https://127.0.0.1:8443/fhir"\n')
    bundles = load_config(config)["out"]
    assert bundles == tmp_path / "conf" / "bundles"
    first = _bundle_dir(None, False, bundles)
    first.mkdir(parents=True)
    (first / "journal.ndjson").write_text('{"type": "run"}\n')   # a previous run's bundle
    second = _bundle_dir(None, False, bundles)
    assert first.parent == second.parent == bundles and first != second
    assert _bundle_dir(str(tmp_path / "mine"), False, bundles) == tmp_path / "mine"   # --out wins


def test_progress_counts_outcomes_elapsed_and_an_estimate():
    from vigie.display import Progress
    now = [100.0]
    progress = Progress(80, clock=lambda: now[0])
    assert progress.text() == "0/80 requirements checked, 0 s elapsed"
    now[0] += 30
    for _ in range(20):
        progress.advance()
    assert progress.text() == "20/80 requirements checked, 30 s elapsed, about 1 min 30 s left"
    for _ in range(60):
        progress.advance()
    assert progress.text() == "80/80 requirements checked, 30 s elapsed"


def test_every_action_is_repeated_under_the_verdicts_beyond_the_commonest_reasons():
    from vigie.display import MAX_REASONS, shown_reasons
    outcomes = [{"requirement": f"R-{i}-{j}", "status": "error", "summary": f"reason {i}"}
                for i in range(MAX_REASONS + 3) for j in range(MAX_REASONS + 3 - i)]
    action = ("FHIR package hl7.fhir.fr.core#2.2.0 is not in the package cache and no registry gave it: "
              "vigie packages add hl7.fhir.fr.core-<version>.tgz (from https://hl7.fr/ig/fhir/core)")
    outcomes.append({"requirement": "FR-CORE-01", "status": "error", "summary": action})   # the rarest reason
    shown, left = shown_reasons({"outcomes": outcomes})
    assert (["FR-CORE-01"], action) in shown and len(shown) == MAX_REASONS and left == 4


def test_quiet_prints_the_verdict_lines_only(tmp_path):
    from conftest import practice_process
    with practice_process(tmp_path / "state") as state:
        result = vigie("run", "--config", str(state / "vigie.toml"), "--profile", "http-hardening", "--quiet",
                       "--format", "md", "--out", str(tmp_path / "b"), timeout=240)
        import tomllib
        target = tomllib.loads((state / "vigie.toml").read_text())["targets"][0]
        refused = vigie("run", "--fhir", target["url"], "--ca-file", target["ca_file"], "--token", "wrong", "--quiet")
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.splitlines() == ["overall verdict: conformant", f"report: {tmp_path / 'b' / 'report.json'}"]
    # errors are still said (here the pre-flight's), on stderr
    assert refused.returncode == 3 and not refused.stdout and "refused the token" in refused.stderr


def test_check_config_of_a_file_without_targets_or_unreadable(tmp_path):
    # targets may come from flags: a file without them is not wrong
    bare = vigie("check-config", str(_config(tmp_path, 'lang = "fr"\n')))
    assert bare.returncode == 0 and bare.stdout.splitlines()[0].startswith("targets: none"), bare.stdout
    folder = vigie("check-config", str(tmp_path))
    assert folder.returncode == 3 and folder.stderr == f"vigie: error: {tmp_path}: is a folder, not a configuration file\n"
    assert folder.stdout == f"{tmp_path}: 1 problem(s)\n"


def test_a_reader_that_closes_the_pipe_does_not_break_the_run(tmp_path):
    """`vigie demo | head -2`: once the reader has gone, the run goes on silently and writes its report."""
    process = subprocess.Popen([sys.executable, "-m", "vigie", "demo", "--profile", "http-hardening", "--out",
                                str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()
    try:
        stderr = process.communicate(timeout=300)[1]
    finally:
        process.kill()
    assert first.startswith("reference practice system at "), first
    assert "Traceback" not in stderr and "INTERNALERROR" not in stderr and "BrokenPipe" not in stderr, stderr
    assert process.returncode == 0 and (tmp_path / "b" / "report.json").is_file()
