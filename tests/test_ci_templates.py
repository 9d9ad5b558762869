"""The CI templates of docs/ci/ do what they say: their shell lines, run here as the CI would run them
against the reference practice system, write the bundle, keep what the publishing steps read, and fail
the job exactly when the run is not conformant."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
# the installing lines are checked, not run: the test runs the vigie installed here. The profiles are two
# that the reference system can meet whole on a machine without FR Core's dependency packages
INSTALL_STEP = "Install vigie"
PROFILES = 'profiles = ["http-hardening", "api-access"]\n'


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    """Two reference practice systems in their own processes: a clean one and one without HSTS."""
    procs, states = [], {}
    for name, flaws in (("clean", []), ("no-hsts", ["--flaw", "no-hsts"])):
        state = tmp_path_factory.mktemp(f"practice-{name}")
        procs.append(subprocess.Popen([sys.executable, "-m", "vigie", "reference", "practice", "--port", "0",
                                       "--state", str(state), *flaws],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        states[name] = state / "vigie.toml"
    deadline = time.monotonic() + 60
    try:
        for proc, toml in zip(procs, states.values()):
            while not toml.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
        time.sleep(0.2)
        yield states
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def workspace(tmp_path: Path, toml: Path, signer_pub: Path | None = None) -> Path:
    """A checkout as the CI sees it: vigie.toml at its root (kept to two small profiles for speed)."""
    work = tmp_path / "checkout"
    work.mkdir()
    text = toml.read_text()
    # relative paths in vigie.toml are relative to it: make the CA file absolute before moving it
    ca = next(line.split("=", 1)[1].strip().strip('"') for line in text.splitlines() if line.startswith("ca_file"))
    text = text.replace(f'"{ca}"', f'"{(toml.parent / ca).resolve()}"')
    (work / "vigie.toml").write_text(PROFILES + text)
    if signer_pub is not None:   # the public key the templates verify against, committed by the vendor
        (work / "vigie-signer.pub").write_bytes(signer_pub.read_bytes())
    return work


def shell(script: str, cwd: Path, env: dict) -> int:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=env,
                          timeout=300, check=False).returncode


def base_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIGIE_SIGN_KEY", None)
    return env


def run_github(tmp_path: Path, toml: Path, sign_key: str = "", signer_pub: Path | None = None
               ) -> tuple[list[str], str | None, Path]:
    """Runs the workflow's `run:` steps like the runner: after a failure only `if: always()` steps run."""
    workflow = yaml.safe_load(GITHUB.read_text())
    (job,) = workflow["jobs"].values()
    work = workspace(tmp_path, toml, signer_pub)
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    env = base_env(tmp_path) | {"RUNNER_TEMP": str(temp), "GITHUB_STEP_SUMMARY": str(temp / "summary.md")}
    ran, failed = [], None
    for step in job["steps"]:
        name = step.get("name", step.get("uses", ""))
        if failed and "always()" not in str(step.get("if", "")):
            continue
        if "uses" in step:
            for key in ("path", "report_paths", "sarif_file"):  # what the action would publish exists
                if key in step.get("with", {}):
                    assert (work / step["with"][key]).exists(), (name, step["with"][key])
            continue
        if name == INSTALL_STEP:
            assert "pip install vigie" in step["run"]
            continue
        step_env = dict(env)
        for key, value in (step.get("env") or {}).items():
            step_env[key] = sign_key if "secrets.VIGIE_SIGN_KEY" in str(value) else str(value)
        ran.append(name)
        if shell(step["run"], work, step_env) != 0 and failed is None:
            failed = name
    return ran, failed, work


def test_github_workflow_passes_on_a_conformant_system_and_signs(systems, tmp_path):
    key = tmp_path / "k.pem"
    made = subprocess.run([sys.executable, "-m", "vigie", "keygen", str(key)], capture_output=True, check=False)
    assert made.returncode == 0
    ran, failed, work = run_github(tmp_path, systems["clean"], sign_key=key.read_text(),
                                   signer_pub=Path(f"{key}.pub"))
    assert failed is None, ran
    assert ran[-1] == "Fail on non-conformance"
    assert (work / "report" / "manifest.sig").exists()
    verified = subprocess.run([sys.executable, "-m", "vigie", "verify", str(work / "report"), "--key",
                               f"{key}.pub"], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout
    assert "conformant" in (tmp_path / "runner-temp" / "summary.md").read_text()


def test_github_workflow_fails_on_a_non_conformant_system_and_still_publishes(systems, tmp_path):
    ran, failed, work = run_github(tmp_path, systems["no-hsts"])
    assert failed == "Fail on non-conformance", ran
    assert "Verify the bundle" in ran and "Step summary" in ran
    assert {"junit.xml", "results.sarif", "summary.md", "report.html"} <= {p.name for p in (work / "report").iterdir()}
    assert "HTTP-01" in (tmp_path / "runner-temp" / "summary.md").read_text()


def run_gitlab(tmp_path: Path, toml: Path) -> tuple[list[str], str | None, Path, dict]:
    (job,) = [j for j in yaml.safe_load(GITLAB.read_text()).values() if isinstance(j, dict) and "script" in j]
    work = workspace(tmp_path, toml)
    env = base_env(tmp_path)
    installs = [line for line in job["before_script"] if "pip install" in line or "apt-get" in line]
    assert any("pip install vigie" in line for line in installs)
    ran, failed = [], None
    for line in [*[x for x in job["before_script"] if x not in installs], *job["script"]]:
        ran.append(line)
        if shell(line, work, env) != 0:
            failed = line
            break
    return ran, failed, work, job


def test_gitlab_job_fails_on_a_non_conformant_system_and_keeps_its_artifacts(systems, tmp_path):
    ran, failed, work, job = run_gitlab(tmp_path, systems["no-hsts"])
    assert failed is not None and failed.startswith("vigie run "), ran
    assert job["artifacts"]["when"] == "always"
    assert (work / job["artifacts"]["reports"]["junit"]).is_file()
    assert all((work / p).exists() for p in job["artifacts"]["paths"])


def test_gitlab_job_passes_on_a_conformant_system(systems, tmp_path):
    ran, failed, _, _ = run_gitlab(tmp_path, systems["clean"])
    assert failed is None, ran
    assert "vigie verify report" in ran[-1]


def test_github_workflow_fails_when_the_bundle_is_signed_by_another_key(systems, tmp_path):
    """A bundle signed, but not by the key the repository trusts, stops the workflow at verification."""
    for name in ("k.pem", "other.pem"):
        assert subprocess.run([sys.executable, "-m", "vigie", "keygen", str(tmp_path / name)], capture_output=True,
                              check=False).returncode == 0
    ran, failed, _ = run_github(tmp_path, systems["clean"], sign_key=(tmp_path / "k.pem").read_text(),
                                signer_pub=tmp_path / "other.pem.pub")
    assert failed == "Verify the bundle", ran
