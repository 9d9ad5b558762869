"""vigie as users install it: a wheel built from this checkout, installed in a throwaway venv outside it.
The venv sees the machine's packages (--system-site-packages) and pip may not reach an index, so nothing
is downloaded: vigie's dependencies come from the machine, vigie itself only from the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what setup.py packages: the build runs on a copy, so that it writes no build/ or egg-info into the checkout
SOURCES = ("pyproject.toml", "setup.py", "README.md", "vigie", "profiles", "conformance", "security", "load",
           "fixtures")


def build(dest: Path) -> tuple[Path, Path]:
    """Builds vigie's sdist from a copy of the checkout, then its wheel from that sdist (as pip does from an
    sdist: what the wheel holds, the sdist held), with the machine's setuptools: no build isolation, no
    download. Returns (sdist, wheel)."""
    src = dest / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = quiet_pip(dict(os.environ))
    sdist_of = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    made = subprocess.run([sys.executable, "-c", sdist_of, str(dest / "sdist")],
                          cwd=src, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert made.returncode == 0, made.stderr[-3000:]
    sdist = dest / "sdist" / made.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(dest / "unpacked", filter="data")
    (unpacked,) = (dest / "unpacked").iterdir()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dest / "dist"), str(unpacked)],
                           capture_output=True, text=True, timeout=300, check=False, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (dest / "dist").glob("*.whl")
    return sdist, wheel


def venv(path: Path) -> Path:
    """A venv over the machine's packages, without pip of its own (`python -m pip` runs the machine's pip,
    which installs into the venv); returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)],
                   check=True, timeout=120)
    return path / "bin"


def site_packages(bin_dir: Path) -> Path:
    script = "import sysconfig; print(sysconfig.get_path('purelib'))"
    found = subprocess.run([str(bin_dir / "python"), "-c", script], capture_output=True, text=True,
                           check=True, timeout=60)
    return Path(found.stdout.strip())


def venv_env(bin_dir: Path) -> dict:
    """The environment of a shell in the venv: its bin first, nothing that would import this checkout."""
    env = quiet_pip(dict(os.environ))
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def quiet_pip(env: dict) -> dict:
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env
