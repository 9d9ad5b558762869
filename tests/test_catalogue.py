"""The profile catalogue: the shipped profiles load, and bad profiles give one clear error with file and line."""
import textwrap

import pytest

from vigie.catalogue import load_catalogue, load_profile, select
from vigie.errors import VigieError

GOOD = """\
id: demo
version: "1"
title: {en: Demo, fr: Démo}
source: {title: A guide, url: "https://example.org", published: "2024"}
applies_to: [fhir]
requirements:
  - id: DEMO-01
    level: SHALL
    title: {en: One, fr: Un}
    reference: "§1"
    check: fhir.capability
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_profiles_load_with_unique_ids():
    catalogue = load_catalogue()
    assert {"fhir-r4-rest", "http-hardening", "anssi-tls", "load-baseline"} <= set(catalogue)
    ids = [r.id for p in catalogue.values() for r in p.requirements]
    assert len(ids) == len(set(ids))
    for profile in catalogue.values():
        assert profile.digest.startswith("sha256:")
        for r in profile.requirements:
            assert r.title["en"] and r.title["fr"] and r.reference


def test_good_profile(tmp_path):
    profile = load_profile(write(tmp_path, GOOD))
    assert profile.id == "demo" and profile.requirements[0].profile == "demo"
    assert profile.requirements[0].params == {}


@pytest.mark.parametrize("change, message", [
    (("    check: fhir.capability\n", "    check: fhir.capability\n    colour: blue\n"), "line 7: unknown key 'colour'"),
    (("level: SHALL", "level: MUST"), "line 7: unknown level 'MUST'"),
    (("applies_to: [fhir]", "applies_to: [mainframe]"), "applies_to"),
    (("title: {en: One, fr: Un}", "title: {en: One}"), "line 7: title needs an English and a French text"),
    (("    reference: \"§1\"\n", ""), "line 7: missing key 'reference'"),
    (("version: \"1\"\n", "version: \"1\"\nversion: \"2\"\n"), "line 3: duplicate key 'version'"),
    (("requirements:", "requirements: ["), "not valid YAML"),
])
def test_bad_profiles_name_file_and_line(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(VigieError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_requirement_ids_across_profiles(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("id: demo", "id: other"), "b.yaml")
    with pytest.raises(VigieError, match="requirement id 'DEMO-01' already used in a.yaml"):
        load_catalogue(tmp_path)


def test_unknown_profile_selected():
    with pytest.raises(VigieError, match="unknown profile 'nope'"):
        select(load_catalogue(), ["nope"])


def test_cda_profiles_join_the_default_campaign_of_documents_only():
    """cda-r2 and ci-sis check a FHIR server's documents when selected; its default campaign leaves them out
    (they need the CI-SIS content a user adds), a documents target's holds them."""
    from vigie.cli import _campaign_profiles
    for kinds, expected in ((["fhir"], set()), (["documents"], {"cda-r2", "ci-sis"}),
                            (["fhir", "documents"], {"cda-r2", "ci-sis"})):
        assert {p.id for p in _campaign_profiles((), kinds)} & {"cda-r2", "ci-sis"} == expected, kinds
    assert {p.id for p in _campaign_profiles(("ci-sis",), ["fhir"])} == {"ci-sis"}


@pytest.mark.parametrize("value", ["[warehouse]", "[]", "maybe"])
def test_default_campaign_lists_kinds_the_profile_applies_to(tmp_path, value):
    path = write(tmp_path, GOOD.replace("applies_to: [fhir]", f"applies_to: [fhir]\ndefault_campaign: {value}"))
    with pytest.raises(VigieError, match="default_campaign must be true or false, or a list"):
        load_profile(path)


def test_default_campaign_as_a_list_of_kinds(tmp_path):
    path = write(tmp_path, GOOD.replace("applies_to: [fhir]", "applies_to: [fhir, documents]\n"
                                                                "default_campaign: [documents]"))
    profile = load_profile(path)
    assert profile.default_campaign == ("documents",)
    assert profile.in_default_campaign(["documents"]) and not profile.in_default_campaign(["fhir"])
