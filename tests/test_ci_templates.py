"""The CI templates of docs/ci/ do what they say: their shell lines, run here as the CI would run them
against the reference practice system, install vigie from the package the user names (here the wheel built
from this checkout, in a throwaway venv: the `vigie` the later steps run is that wheel's), write the bundle in
a folder of its own per pipeline run, keep what the publishing steps read, and fail the job exactly when the
run is not conformant. Only the system packages' apt-get lines are not run."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from wheelbuild import build, venv, venv_env

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
INSTALL_STEP = "Install vigie"
# what the CI would say of this run: its run (pipeline) and attempt (job) numbers
RUN_ID, ATTEMPT, JOB_ID = "4242", "2", "777"
# The profiles are two that the reference system can meet whole on a machine without FR Core's dependency
# packages
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """What the user's VIGIE_PACKAGE names: here the wheel built from this checkout."""
    return build(tmp_path_factory.mktemp("build"))[1]


def base_env(bin_dir: Path) -> dict:
    """A CI shell whose `python` and `vigie` are the venv's (pip may not download: the machine has vigie's
    dependencies, and the venv sees them)."""
    env = venv_env(bin_dir)
    env.pop("VIGIE_SIGN_KEY", None)
    return env


def is_apt(script: str) -> bool:
    """The system packages' lines (PDF libraries): the only lines not run here."""
    return all(re.match(r"(sudo )?apt-get ", part.strip()) for part in script.strip().split("&&"))


# GitHub Actions --------------------------------------------------------------------------------------------

def github_job() -> dict:
    (job,) = yaml.safe_load(GITHUB.read_text())["jobs"].values()
    return job


def expand(value, context: dict) -> str:
    """A workflow value with its ${{ ... }} expressions replaced as the runner would, from context."""
    def one(match):
        assert match.group(1) in context, f"the test does not know the expression {match.group(0)}"
        return context[match.group(1)]
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", one, str(value))


def github_context(package: str = "", sign_key: str = "") -> dict:
    context = {"github.run_id": RUN_ID, "github.run_attempt": ATTEMPT, "vars.VIGIE_PACKAGE": package,
               "secrets.VIGIE_SIGN_KEY": sign_key}
    for key, value in (github_job().get("env") or {}).items():
        context[f"env.{key}"] = expand(value, context)
    return context


def step_env(step: dict, env: dict, context: dict) -> dict:
    job_env = {k: expand(v, context) for k, v in (github_job().get("env") or {}).items()}
    return env | job_env | {k: expand(v, context) for k, v in (step.get("env") or {}).items()}


def step_named(name: str) -> dict:
    (step,) = [s for s in github_job()["steps"] if s.get("name") == name]
    return step


@pytest.fixture(scope="module")
def github_venv(wheel, tmp_path_factory) -> Path:
    """The workflow's install step, run once for the module, with VIGIE_PACKAGE naming the wheel."""
    root = tmp_path_factory.mktemp("github")
    bin_dir = venv(root / "venv")
    context = github_context(package=str(wheel))
    assert shell(step_named(INSTALL_STEP)["run"], root, step_env(step_named(INSTALL_STEP), base_env(bin_dir),
                                                                context)) == 0
    return bin_dir


def run_github(tmp_path: Path, toml: Path, bin_dir: Path, sign_key: str = "", signer_pub: Path | None = None
               ) -> tuple[list[str], str | None, Path]:
    """Runs the workflow's `run:` steps like the runner: after a failure only `if: always()` steps run. The
    install step ran once for the module (github_venv): its venv is the shell's."""
    work = workspace(tmp_path, toml, signer_pub)
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    env = base_env(bin_dir) | {"RUNNER_TEMP": str(temp), "GITHUB_STEP_SUMMARY": str(temp / "summary.md")}
    context = github_context(sign_key=sign_key)
    ran, failed = [], None
    for step in github_job()["steps"]:
        name = step.get("name", step.get("uses", ""))
        if failed and "always()" not in str(step.get("if", "")):
            continue
        if "uses" in step:
            for key in ("path", "report_paths", "sarif_file"):  # what the action would publish exists
                if key in step.get("with", {}):
                    published = expand(step["with"][key], context)
                    assert (work / published).exists(), (name, published)
            continue
        if name == INSTALL_STEP or is_apt(step["run"]):
            continue
        ran.append(name)
        if shell(step["run"], work, step_env(step, env, context)) != 0 and failed is None:
            failed = name
    return ran, failed, work


def github_bundle(work: Path) -> Path:
    return work / f"vigie-report-{RUN_ID}-{ATTEMPT}"


def test_github_workflow_passes_on_a_conformant_system_and_signs(systems, github_venv, tmp_path):
    key = tmp_path / "k.pem"
    made = subprocess.run([sys.executable, "-m", "vigie", "keygen", str(key)], capture_output=True, check=False)
    assert made.returncode == 0
    ran, failed, work = run_github(tmp_path, systems["clean"], github_venv, sign_key=key.read_text(),
                                   signer_pub=Path(f"{key}.pub"))
    assert failed is None, ran
    assert ran[-1] == "Fail on non-conformance"
    assert (github_bundle(work) / "manifest.sig").exists()
    verified = subprocess.run([sys.executable, "-m", "vigie", "verify", str(github_bundle(work)), "--key",
                               f"{key}.pub"], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stdout
    assert "conformant" in (tmp_path / "runner-temp" / "summary.md").read_text()


def test_github_workflow_fails_on_a_non_conformant_system_and_still_publishes(systems, github_venv, tmp_path):
    ran, failed, work = run_github(tmp_path, systems["no-hsts"], github_venv)
    assert failed == "Fail on non-conformance", ran
    assert "Verify the bundle" in ran and "Step summary" in ran
    written = {p.name for p in github_bundle(work).iterdir()}
    assert {"junit.xml", "results.sarif", "summary.md", "report.html"} <= written
    assert "HTTP-01" in (tmp_path / "runner-temp" / "summary.md").read_text()


def test_github_workflow_fails_when_the_bundle_is_signed_by_another_key(systems, github_venv, tmp_path):
    """A bundle signed, but not by the key the repository trusts, stops the workflow at verification."""
    for name in ("k.pem", "other.pem"):
        assert subprocess.run([sys.executable, "-m", "vigie", "keygen", str(tmp_path / name)], capture_output=True,
                              check=False).returncode == 0
    ran, failed, _ = run_github(tmp_path, systems["clean"], github_venv,
                                sign_key=(tmp_path / "k.pem").read_text(), signer_pub=tmp_path / "other.pem.pub")
    assert failed == "Verify the bundle", ran


def test_github_workflow_installs_the_wheel_it_is_given(github_venv, tmp_path):
    """The `vigie` of the later steps is the one VIGIE_PACKAGE named, installed in the job's environment."""
    script = "command -v vigie; python -c 'import vigie; print(vigie.__file__)'"
    where = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=base_env(github_venv),
                           capture_output=True, text=True, check=False)
    command, module = where.stdout.split()
    assert Path(command).parent == github_venv
    assert Path(module).is_relative_to(github_venv.parent)


def test_each_github_run_writes_and_publishes_its_own_bundle():
    """Two runs (or two attempts of one) never share a bundle folder or an artifact name."""
    names = set()
    for run_id, attempt in (("1", "1"), ("1", "2"), ("2", "1")):
        context = github_context() | {"github.run_id": run_id, "github.run_attempt": attempt}
        context.update({f"env.{k}": expand(v, context) for k, v in github_job()["env"].items()})
        (upload,) = [s for s in github_job()["steps"] if str(s.get("uses", "")).startswith("actions/upload-")]
        names.add((expand(upload["with"]["name"], context), expand(upload["with"]["path"], context)))
    assert len(names) == 3 and all(run.rstrip("/") == name for name, run in names)


# GitLab CI -------------------------------------------------------------------------------------------------

def gitlab_job() -> dict:
    (job,) = [j for j in yaml.safe_load(GITLAB.read_text()).values() if isinstance(j, dict) and "script" in j]
    return job


def gitlab_env(env: dict) -> dict:
    """The job's variables as the runner gives them: its predefined ones, then the job's own, expanded."""
    env = env | {"CI_PIPELINE_ID": RUN_ID, "CI_JOB_ID": JOB_ID}
    for key, value in (gitlab_job().get("variables") or {}).items():
        env[key] = gitlab_expand(str(value), env)
    return env


def gitlab_expand(value: str, env: dict) -> str:
    def one(match):
        name = match.group(1) or match.group(2)
        assert name in env, f"the test does not know the variable {match.group(0)}"
        return env[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, value)


@pytest.fixture(scope="module")
def gitlab_venv(wheel, tmp_path_factory) -> Path:
    """The job's before_script (its apt-get line aside), run once for the module, VIGIE_PACKAGE the wheel."""
    root = tmp_path_factory.mktemp("gitlab")
    bin_dir = venv(root / "venv")
    env = gitlab_env(base_env(bin_dir)) | {"VIGIE_PACKAGE": str(wheel)}
    for line in gitlab_job()["before_script"]:
        if not is_apt(line):
            assert shell(line, root, env) == 0, line
    return bin_dir


def run_gitlab(tmp_path: Path, toml: Path, bin_dir: Path) -> tuple[list[str], str | None, Path, dict]:
    job = gitlab_job()
    work = workspace(tmp_path, toml)
    env = gitlab_env(base_env(bin_dir))
    ran, failed = [], None
    for line in job["script"]:
        ran.append(line)
        if shell(line, work, env) != 0:
            failed = line
            break
    return ran, failed, work, env


def test_gitlab_job_fails_on_a_non_conformant_system_and_keeps_its_artifacts(systems, gitlab_venv, tmp_path):
    ran, failed, work, env = run_gitlab(tmp_path, systems["no-hsts"], gitlab_venv)
    assert failed is not None and failed.startswith("vigie run "), ran
    artifacts = gitlab_job()["artifacts"]
    assert artifacts["when"] == "always"
    assert (work / gitlab_expand(artifacts["reports"]["junit"], env)).is_file()
    assert all((work / gitlab_expand(p, env)).exists() for p in artifacts["paths"])
    assert (work / f"vigie-report-{RUN_ID}-{JOB_ID}" / "junit.xml").is_file()
    assert gitlab_expand(artifacts["name"], env) == f"vigie-report-{RUN_ID}-{JOB_ID}"


def test_gitlab_job_passes_on_a_conformant_system(systems, gitlab_venv, tmp_path):
    ran, failed, work, _ = run_gitlab(tmp_path, systems["clean"], gitlab_venv)
    assert failed is None, ran
    assert "vigie verify" in ran[-1]
    assert (work / f"vigie-report-{RUN_ID}-{JOB_ID}" / "report.json").is_file()


# Both ------------------------------------------------------------------------------------------------------

def test_the_templates_install_only_what_the_user_names():
    """Every pip install installs "$VIGIE_PACKAGE": never a name from an index (PyPI's `vigie` is another
    project's)."""
    for template in (GITHUB, GITLAB):
        # commands only: the error message quotes the command it warns against
        installs = re.findall(r"^\s*(?:- )?(?:python3? -m )?pip3? install (.*)$", template.read_text(),
                              re.MULTILINE)
        assert installs == ['"$VIGIE_PACKAGE"'], (template.name, installs)


@pytest.mark.parametrize("template", ["github", "gitlab"])
def test_an_unset_package_stops_the_job_before_pip_with_a_clear_message(template, tmp_path):
    """Without VIGIE_PACKAGE the install fails at once, says which variable to set, and runs no pip."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("python", "pip", "vigie"):   # record any call: none may happen
        (fake / name).write_text(f"#!/bin/sh\ntouch '{tmp_path}/called-{name}'\n")
        (fake / name).chmod(0o755)
    env = base_env(fake)
    if template == "github":
        step = step_named(INSTALL_STEP)
        env = step_env(step, env, github_context(package=""))
        scripts = [step["run"]]
    else:
        env = gitlab_env(env)
        env.pop("VIGIE_PACKAGE", None)
        scripts = [line for line in gitlab_job()["before_script"] if not is_apt(line)]
    result = None
    for script in scripts:
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        if result.returncode != 0:
            break
    assert result is not None and result.returncode != 0
    assert "VIGIE_PACKAGE is not set" in result.stdout + result.stderr
    assert not list(tmp_path.glob("called-*"))
