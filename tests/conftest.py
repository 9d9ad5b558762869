"""Shared test set-up: a FHIR package cache filled from the official packages in ../shared/data (beside the
repository; CI has it), so that the suite's FR Core and validation requirements can run. The packages are
never committed: without ../shared/data the cache stays as the environment has it."""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHARED_PACKAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-packages"


@pytest.fixture(scope="session", autouse=True)
def fhir_package_cache(tmp_path_factory):
    """FHIR_PACKAGE_CACHE for the whole session (subprocesses such as `vigie demo` inherit it)."""
    if not SHARED_PACKAGES.is_dir():
        yield None
        return
    from vigie.fhir import PackageCache
    root = tmp_path_factory.mktemp("fhir-packages")
    cache = PackageCache(root)
    for tgz in sorted(SHARED_PACKAGES.glob("*.tgz")):
        cache.add(tgz)
    before = os.environ.get("FHIR_PACKAGE_CACHE")
    os.environ["FHIR_PACKAGE_CACHE"] = str(root)
    yield root
    if before is None:
        os.environ.pop("FHIR_PACKAGE_CACHE", None)
    else:
        os.environ["FHIR_PACKAGE_CACHE"] = before


@contextlib.contextmanager
def practice_process(state: Path):
    """`vigie reference practice --state DIR` in its own process, as a vendor's test server would run;
    yields DIR once DIR/vigie.toml (URL, CA file, every token) is written, and stops the server after."""
    proc = subprocess.Popen([sys.executable, "-m", "vigie", "reference", "practice", "--port", "0",
                             "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (state / "vigie.toml").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        time.sleep(0.2)
        yield state
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
