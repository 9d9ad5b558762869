"""`vigie validate` for a vendor: conformance resources from a folder without package.json (--ig), French
identifier checks (--fr-identifiers), and messages that say what to add."""
import json
import subprocess
import sys
import tarfile

import pytest
from test_fhir_data import CORE_TGZ, FRCORE_TGZ, PATIENT_INS, needs_packages

from vigie.fhir.frenchids import identifier_issues
from vigie.fhir.loose import conformance_resources
from vigie.fhir.tarball import PackageError

BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def vigie(*args, tmp_path):
    import os
    env = dict(os.environ, FHIR_PACKAGE_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=300,
                          env=env, check=False)


@pytest.fixture(scope="module")
def fr_core_folder(tmp_path_factory):
    """FR Core's profiles, value sets and code systems as loose files in nested folders, no package.json."""
    folder = tmp_path_factory.mktemp("ig")
    with tarfile.open(FRCORE_TGZ) as tgz:
        for member in tgz.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name.startswith(("StructureDefinition-", "ValueSet-", "CodeSystem-")):
                sub = folder / name.split("-", 1)[0]
                sub.mkdir(exist_ok=True)
                (sub / name).write_bytes(tgz.extractfile(member).read())
    (folder / "notes.json").write_text(json.dumps({"resourceType": "Patient", "id": "example"}))
    return folder


@pytest.fixture(scope="module")
def patient():
    from vigie.fixtures.practice import data
    return next(iter(data.build(42)["Patient"].values()))


@needs_packages
def test_loose_conformance_resources_are_read_examples_left_out(fr_core_folder):
    found = conformance_resources(fr_core_folder)
    assert PATIENT_INS in {r["url"] for r in found}
    assert {r["resourceType"] for r in found} == {"StructureDefinition", "ValueSet", "CodeSystem"}


def test_a_folder_without_conformance_resources_or_with_broken_json_is_refused(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"resourceType": "Patient"}))
    with pytest.raises(PackageError, match="no conformance resource"):
        conformance_resources(tmp_path)
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(PackageError, match="b.json is not valid JSON"):
        conformance_resources(tmp_path)


@needs_packages
def test_validate_against_a_profile_from_a_loose_folder(tmp_path, fr_core_folder, patient):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(patient))
    bad.write_text(json.dumps(dict(patient, extension=[e for e in patient["extension"] if e["url"] != BIRTH_PLACE])))
    args = ["validate", "--package", str(CORE_TGZ), "--ig", str(fr_core_folder), "--profile", PATIENT_INS]
    result = vigie(*args, str(good), str(bad), tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    clean, flawed = (json.loads(line) for line in result.stdout.splitlines())
    assert [i for i in clean["issue"] if i["severity"] == "error"] == []
    texts = [i["details"]["text"] for i in flawed["issue"] if i["severity"] == "error"]
    assert any("birthPlace" in t and t.endswith(f"add an extension with the url {BIRTH_PLACE}") for t in texts), texts


def test_validate_with_a_bad_ig_folder_is_one_line(tmp_path):
    (tmp_path / "p.json").write_text("{}")
    (tmp_path / "ig").mkdir()
    for folder, message in [(tmp_path / "ig", "no conformance resource"), (tmp_path / "none", "does not exist")]:
        result = vigie("validate", "--ig", str(folder), str(tmp_path / "p.json"), tmp_path=tmp_path)
        assert result.returncode == 3, result.stdout
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


NIR = "urn:oid:1.2.250.1.213.1.4.8"


@pytest.mark.parametrize("system, good, bad", [
    (NIR, "255081416802538", "255081416802539"),
    ("https://rpps.esante.gouv.fr", "10003461033", "1000346103"),
    ("https://sirene.fr", "73282932000074", "73282932000075"),
    ("https://sirene.fr", "732829320", "732829321"),
])
def test_french_identifiers_are_checked_by_their_register(system, good, bad):
    def resource(value):
        return {"resourceType": "Organization", "identifier": [{"system": "urn:x", "value": "1"},
                                                               {"system": system, "value": value}]}
    assert identifier_issues(resource(good), "Organization") == []
    found = identifier_issues(resource(bad), "Organization")
    assert [(s, p) for s, p, _ in found] == [("error", "Organization.identifier[1]")]


def test_an_unverified_finess_key_is_a_warning_and_bundles_are_searched():
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Organization", "id": "o", "identifier": [
            {"system": "https://finess.esante.gouv.fr", "value": "754567860"}]}}]}
    assert [(s, p) for s, p, _ in identifier_issues(bundle, "Bundle")] == [
        ("warning", "Bundle.entry[0].resource/*Organization/o*/.identifier[0]")]


@needs_packages
def test_validate_checks_french_identifiers_only_when_asked(tmp_path, patient):
    nir = next(i for i in patient["identifier"] if i.get("system") == NIR)
    broken = dict(patient, identifier=[dict(i, value=i["value"][:13] + f"{(int(i['value'][13:]) % 97) + 1:02d}")
                                       if i is nir else i for i in patient["identifier"]])
    (tmp_path / "p.json").write_text(json.dumps(broken))
    plain = vigie("validate", "--package", str(CORE_TGZ), str(tmp_path / "p.json"), tmp_path=tmp_path)
    assert plain.returncode == 0, plain.stdout
    checked = vigie("validate", "--package", str(CORE_TGZ), "--fr-identifiers", str(tmp_path / "p.json"),
                    tmp_path=tmp_path)
    assert checked.returncode == 1
    errors = [i for i in json.loads(checked.stdout)["issue"] if i["severity"] == "error"]
    index = broken["identifier"].index(next(i for i in broken["identifier"] if i.get("system") == NIR))
    assert [e["expression"] for e in errors] == [[f"Patient.identifier[{index}]"]]
