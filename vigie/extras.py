"""vigie's optional parts (pip extras): a light core install, and the tools of some requirements on request.

`source` (bandit, semgrep, pip-audit) serves the source-security profile, `pdf` (weasyprint) the PDF report,
`cda` (saxonche) the ci-sis schematrons, `spark` (pyspark) warehouses on Spark; `all` is all but spark. A
requirement whose tool is missing ends in `error` with the line that installs it.
"""
from __future__ import annotations

from importlib.util import find_spec

from .errors import ObservationError

EXTRAS = {"source": ("bandit", "semgrep", "pip_audit"), "pdf": ("weasyprint",), "cda": ("saxonche",),
          "spark": ("pyspark",)}


def install_line(extra: str) -> str:
    return f"pip install 'vigie-sante[{extra}]' (from a checkout: pip install -e '.[{extra}]')"


def missing(what: str, extra: str) -> str:
    """The sentence for a tool of an extra that is not installed."""
    return f"{what} is not installed (vigie's '{extra}' extra): {install_line(extra)}"


def require(module: str, what: str, extra: str) -> None:
    """An ObservationError naming the install line unless the module of `what` can be imported."""
    if find_spec(module) is None:
        raise ObservationError(missing(what, extra))
