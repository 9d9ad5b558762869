"""vigie installed from its wheel, as a user installs it: the package carries its whole suite (profiles, check
folders, reference systems) inside vigie/, installs nothing else at the top level, and runs outside the
checkout: its profiles listed, a short demo to its verdict."""
from __future__ import annotations

import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from wheelbuild import ROOT, build, site_packages, venv, venv_env

from vigie.suite import CHECK_DIRS, suite_digest

SUITE_DIRS = ("profiles", *CHECK_DIRS, "fixtures")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """The wheel installed in a fresh venv (vigie only, its dependencies from the machine)."""
    bin_dir = venv(tmp_path_factory.mktemp("venv") / "venv")
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "-q", str(built[1])],
                          capture_output=True, text=True, timeout=300, check=False, env=venv_env(bin_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


def in_venv(bin_dir: Path, *args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=venv_env(bin_dir),
                          capture_output=True, text=True, timeout=timeout, check=False)


def checkout_files(folder: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_wheel_carries_the_engine_and_the_suite_inside_vigie(built):
    with zipfile.ZipFile(built[1]) as wheel:
        names = set(wheel.namelist())
    assert built[1].name.startswith("vigie_sante-")   # PyPI's "vigie" is another project
    dist_info = "-".join(built[1].name.split("-")[:2]) + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"vigie", dist_info}
    assert checkout_files("vigie") <= names
    for folder in SUITE_DIRS:
        missing = {f"vigie/bundled/{f}" for f in checkout_files(folder)} - names
        assert not missing, missing


def test_the_sdist_carries_the_suite_at_the_repository_layout(built):
    with tarfile.open(built[0]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for folder in ("vigie", *SUITE_DIRS):
        missing = checkout_files(folder) - names
        assert not missing, missing
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


def test_the_installed_package_is_vigie_alone_and_runs_outside_the_checkout(installed, tmp_path):
    site = site_packages(installed)
    top_level = {p.name.split("-")[0] for p in site.iterdir() if p.name != "__pycache__"}
    assert top_level == {"vigie", "vigie_sante"}   # the package and its dist-info
    assert not (site / "fixtures").exists()
    script = ("import vigie, vigie.suite as s, vigie.fixtures.practice as p; "
              "print(vigie.__file__); print(s.suite_root()); print(p.__file__)")
    where = in_venv(installed, "python", "-c", script, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    module, root, practice = (Path(line) for line in where.stdout.split())
    # the wheel's code and suite, not the checkout's (the machine's editable install is visible in the venv)
    assert module.is_relative_to(site) and root == site / "vigie" / "bundled"
    assert practice.is_relative_to(root)


def test_profiles_list_from_the_wheel_lists_every_profile(installed, tmp_path):
    listed = in_venv(installed, "vigie", "profiles", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    shown = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert shown == {yaml.safe_load(p.read_text())["id"] for p in (ROOT / "profiles").glob("*.yaml")}


def test_a_demo_from_the_wheel_reaches_its_verdict_with_the_checkouts_suite(installed, tmp_path):
    out = tmp_path / "bundle"
    demo = in_venv(installed, "vigie", "demo", "--profile", "http-hardening", "--out", str(out), cwd=tmp_path,
                   timeout=300)
    assert demo.returncode in (0, 2), demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "overall verdict:" in demo.stdout
    report = json.loads((out / "report.json").read_text())
    expected = yaml.safe_load((ROOT / "profiles" / "http-hardening.yaml").read_text())["requirements"]
    assert sorted(o["requirement"] for o in report["outcomes"]) == sorted(r["id"] for r in expected)
    # every profile and check of this checkout, no more, no fewer: the same digest
    assert report["run"]["suite_digest"] == suite_digest()
