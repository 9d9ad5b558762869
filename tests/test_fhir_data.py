"""(No tests here.) Where the tests find the official FHIR packages: ../shared/data beside the repository (never committed)."""
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PACKAGES = SHARED / "fhir-packages"
CASES = SHARED / "fhir-validation-cases"
CORE_TGZ = PACKAGES / "hl7.fhir.r4.core-4.0.1.tgz"
FRCORE_TGZ = PACKAGES / "hl7.fhir.fr.core-2.2.0.tgz"
FRCORE21_TGZ = PACKAGES / "hl7.fhir.fr.core-2.1.0.tgz"
SAS_TGZ = PACKAGES / "ans.fhir.fr.sas-1.1.0.tgz"
ANNUAIRE_TGZ = PACKAGES / "ans.fhir.fr.annuaire-1.2.0-snapshot-2.tgz"
PATIENT_INS = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"

needs_packages = pytest.mark.skipif(not CORE_TGZ.is_file(), reason=f"official FHIR packages not found in {PACKAGES}")
