"""The reference systems (practice software, warehouse, hostile systems, vendor source trees) as the package
vigie.fixtures: they live in the suite's fixtures/ folder, at the checkout's root or in an installed wheel's
vigie/bundled/ (vigie.suite.suite_root), and this module makes that folder the package's path, so that one
import name serves both layouts and no top-level `fixtures` package is installed (PyPI has one)."""
from .suite import FIXTURES_DIR

__path__ = [str(FIXTURES_DIR)]
