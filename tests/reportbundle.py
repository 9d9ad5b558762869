"""One real, signed report bundle per test session, shared by the report tests (signing, formats, HTML in
Chromium, diff): a run costs seconds, and every one of these tests reads the same kind of bundle.

The run is `vigie run --fhir URL --token T` against the reference practice system with two flaws on
(no-hsts: a SHALL failure; server-version: a SHOULD failure), so that the bundle holds failures for SARIF
and the PDF, TLS and load evidence for the HTML drill-down, and a token on the command line whose removal
from the report can be checked.
"""
from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("fhir-r4-rest", "http-hardening", "anssi-tls", "load-baseline")
FLAWS = ("no-hsts", "server-version")


@dataclass(frozen=True)
class SignedBundle:
    path: Path        # the bundle folder (treat as read-only: copy it before changing anything)
    key: Path         # the Ed25519 private key that signed it
    public: Path      # its public key
    token: str        # the bearer token given on the command line
    returncode: int
    output: str


_cache: dict[str, SignedBundle] = {}


def vigie(*args, timeout=240, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)


def signed_bundle() -> SignedBundle:
    if "bundle" not in _cache:
        _cache["bundle"] = _make()
    return _cache["bundle"]


def _make() -> SignedBundle:
    from vigie.fixtures.practice import start_practice

    root = Path(tempfile.mkdtemp(prefix="vigie-report-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    key = root / "signer.pem"
    made = vigie("keygen", str(key))
    assert made.returncode == 0, made.stderr
    system = start_practice(port=0, flaws=FLAWS, workdir=root / "practice")
    try:
        args = ["run", "--fhir", system.url, "--ca-file", str(system.ca_file), "--token", system.token,
                "--sign-key", str(key), "--out", str(root / "bundle")]
        for p in PROFILES:
            args += ["--profile", p]
        result = vigie(*args)
    finally:
        system.stop()
    assert (root / "bundle" / "report.json").is_file(), result.stdout + result.stderr
    return SignedBundle(root / "bundle", key, Path(str(key) + ".pub"), system.token, result.returncode,
                        result.stdout + result.stderr)


def copy_of(bundle: Path, where: Path) -> Path:
    target = where / bundle.name
    shutil.copytree(bundle, target)
    return target
