"""`vigie validate` and `vigie packages` from the command line."""
import json
import subprocess
import sys

from test_fhir_data import CORE_TGZ, FRCORE_TGZ, PATIENT_INS, needs_packages


def vigie(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def _env(tmp_path):
    import os
    return dict(os.environ, FHIR_PACKAGE_CACHE=str(tmp_path / "cache"))


@needs_packages
def test_validate_patient_ins_prints_fhirpath_locations_and_exits_1(tmp_path):
    from vigie.fixtures.practice import data
    patient = next(iter(data.build(42)["Patient"].values()))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(patient))
    patient = dict(patient, birthDate="le 4 septembre")
    bad = tmp_path / "patient.json"
    bad.write_text(json.dumps(patient))
    result = vigie("validate", "--package", str(FRCORE_TGZ), "--profile", PATIENT_INS, str(bad), env=_env(tmp_path))
    assert result.returncode == 1, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert ["Patient.birthDate"] in [i["expression"] for i in outcome["issue"] if i["severity"] == "error"]
    result = vigie("validate", "--package", str(FRCORE_TGZ), "--profile", PATIENT_INS, str(good), env=_env(tmp_path))
    assert result.returncode == 0, result.stdout


@needs_packages
def test_validate_bad_json_file_is_a_fatal_issue(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Patient",')
    result = vigie("validate", "--package", str(CORE_TGZ), str(broken), env=_env(tmp_path))
    assert result.returncode == 1
    assert json.loads(result.stdout)["issue"][0]["severity"] == "fatal"


def test_validate_usage_errors_are_one_line(tmp_path):
    (tmp_path / "p.json").write_text("{}")
    for args, message in [
        (["validate", str(tmp_path / "p.json")], "hl7.fhir.r4.core#4.0.1 is not loaded"),
        (["validate", "--package", str(tmp_path / "none.tgz"), str(tmp_path / "p.json")], "no such package"),
        (["packages", "add", str(tmp_path / "p.json")], "not a readable package tarball"),
    ]:
        result = vigie(*args, env=_env(tmp_path))
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@needs_packages
def test_packages_add_and_list(tmp_path):
    assert "no packages" in vigie("packages", "list", env=_env(tmp_path)).stdout
    added = vigie("packages", "add", str(CORE_TGZ), env=_env(tmp_path))
    assert added.returncode == 0 and "added hl7.fhir.r4.core#4.0.1" in added.stdout
    assert vigie("packages", "list", env=_env(tmp_path)).stdout.split() == ["hl7.fhir.r4.core#4.0.1"]
    # with the core package in the cache, validate needs no --package
    (tmp_path / "p.json").write_text(json.dumps({"resourceType": "Patient", "gender": "other"}))
    assert vigie("validate", str(tmp_path / "p.json"), env=_env(tmp_path)).returncode == 0
