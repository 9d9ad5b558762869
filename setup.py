"""The package layout of vigie's distribution (its metadata is in pyproject.toml).

The repository keeps the suite at its root (profiles/, conformance/, security/, load/, fixtures/); a wheel
or an sdist carries the same folders inside the vigie package, in vigie/bundled/, where vigie.suite.suite_root
finds them once installed. Nothing is installed at the top level but vigie (PyPI has a `fixtures` package)."""
from setuptools import find_packages, setup

# the suite's folders that hold Python code: each becomes vigie.bundled.<folder>, its subpackages with it
CODE_DIRS = ("conformance", "security", "load", "fixtures")

packages = find_packages(include=["vigie", "vigie.*"])
package_dir = {"vigie.bundled.profiles": "profiles"}
for folder in CODE_DIRS:
    package_dir[f"vigie.bundled.{folder}"] = folder
    packages += [f"vigie.bundled.{folder}"] + [f"vigie.bundled.{folder}.{p}" for p in find_packages(folder)]
# profiles/ is data only: a package without __init__.py, for its YAML to be package data
packages.append("vigie.bundled.profiles")

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "vigie": ["suite.ini", "schema/*.json", "render/templates/*", "warehouse/data/*", "rules/*.yml",
                  "locale/*.json"],
        "vigie.bundled.profiles": ["*.yaml"],
        # the reference vendor source trees (source-security's targets) are files to scan, not modules
        "vigie.bundled.fixtures": ["source/README.md", "source/*/*", "source/*/*/*"],
    },
)
