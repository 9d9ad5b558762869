"""The light core install: a requirement whose tool comes with an extra (vigie/extras.py) ends in error with the
line that installs it, shown under the verdicts; what needs no extra still runs."""
import json
import subprocess
import sys

from vigie.suite import FIXTURES_DIR

# vigie as run on a machine where the `source` extra is not installed: its modules cannot be found
WITHOUT_SOURCE_EXTRA = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name in ("bandit", "semgrep", "pip_audit") else real(name, *a, **k)
from vigie.cli import main
sys.argv[0] = "vigie"
main(sys.argv[1:])
"""


def test_a_missing_extra_makes_its_requirements_errors_with_the_install_line(tmp_path):
    out = tmp_path / "bundle"
    result = subprocess.run([sys.executable, "-c", WITHOUT_SOURCE_EXTRA, "run", "--source",
                             str(FIXTURES_DIR / "source" / "flawed"), "--format", "md", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    by_check = {}
    for o in report["outcomes"]:
        by_check.setdefault(o["check"], []).append(o)
    line = "pip install 'vigie-sante[source]' (from a checkout: pip install -e '.[source]')"
    for check, tool in (("source.bandit", "bandit"), ("source.semgrep", "semgrep")):
        for o in by_check[check]:
            assert o["status"] == "error" and o["summary"].endswith(
                f"{tool} is not installed (vigie's 'source' extra): {line}"), o
    assert by_check["source.sbom"][0]["status"] != "error"   # no tool of an extra: judged as ever
    assert result.returncode == 2 and line in " ".join(result.stdout.split("and why:")[1].split())
