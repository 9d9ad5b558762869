"""FHIR packages and a StructureDefinition-driven validator.

    from vigie.fhir import load_packages, Validator
    packages = load_packages("hl7.fhir.fr.core-2.2.0.tgz")      # with its dependencies
    outcome = Validator(packages).validate(resource, profiles=[url])   # an OperationOutcome dict
"""
from .cache import PackageCache
from .packages import Package, PackageSet, load_packages, open_package
from .tarball import PackageError

__all__ = ["Package", "PackageCache", "PackageError", "PackageSet", "Validator", "load_packages", "open_package"]


def __getattr__(name):
    if name == "Validator":
        from .validator import Validator
        return Validator
    raise AttributeError(name)
