"""CDA R2 documents against the ANS's CI-SIS (profiles cda-r2 and ci-sis), on the ANS's published test content
(../shared/data/ci-sis, recorded with `vigie packages add-cisis` as a user would):

- every ANS example of ExemplesCDA meets its volet, but for those where the ANS's own rules report errors on
  the example (listed below with why);
- each flawed document, built from a clean example by one change (tests/cdaflaws.py), fails exactly its
  requirements, and each volet family's example, changed where its volet is strict, fails its family's;
- hostile documents are a failed well-formedness, never a crash or a hang; missing content is an error with the
  instruction, never a pass.

One campaign over the 80 examples and the flawed documents serves the tests (about two minutes)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cdaflaws import CISIS_DATA, CLEAN, EXAMPLES, FLAWS, build, build_family_flaw

from vigie.campaign import make_target
from vigie.catalogue import load_catalogue, select
from vigie.cda.content import add_content, find_content, installed
from vigie.cda.document import read_document
from vigie.cda.volets import detect
from vigie.runner import run_campaign

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the ANS CI-SIS test content (../shared/data/ci-sis) "
                                                               "is not beside the repository")

# requirement -> the ANS examples that fail it, and why (the ANS's own rules, or this copy of the content)
EXAMPLE_FAILURES = {
    # CI-SIS_ModelesDeContenusCDA.sch (dansJeuDeValeurs): a section author's code G15_10/SCH10, SCH16 is not in
    # the value set JDV_J01-XdsAuthorSpecialty-CISIS of this content: the ANS's rules reject the ANS's example
    "CISIS-CANCER-FRCP": {"CANCER-FRCP_2022.01_Transversale.xml"},
    "CISIS-TLM-DA": {"TLM-DA_2022.01_TCG.xml", "TLM-DA_2022.01_TCG_anamnèse-non-structurée.xml",
                     "TLM-DA_2022.01_TE1_anamnèse-non-structurée.xml"},
    # a catalogue of every content model, which the ANS attaches to no volet schematron; its templateIds say VSM
    # (1.2.250.1.213.1.1.1.13) but its code is 60591-5, not VSM's SYNTH: the VSM rules reject it
    "CISIS-VSM": {"01_Modèles_contenus_CDA.xml"},
    # the ANS's examples carry INS numbers whose NIR key is wrong (FACTS.md: official examples with invalid keys)
    "CISIS-ENT-01": {"CSE-CS24_2024.01.xml", "CSE-CS24_2025.01.xml", "CSE-CS8_2024.01.xml", "CSE-CS8_2025.01.xml",
                     "CSE-CS9_2024.01.xml", "CSE-CS9_2025.01.xml", "CSE-MDE_2023.01.xml", "OBP-SEM_2024.01.xml",
                     "OBP-SNE_2024.01.xml", "SDM-MR_2024.01_nouveau-ne.xml"},
}
# requirement -> the example it cannot judge in this copy of the content, and why
EXAMPLE_ERRORS = {
    # schematrons/include/specificationsVolets/BIO-CR-BIO_2023.01 is an empty file in the snapshot, not the
    # folder CI-SIS_BIO-CR-BIO_2023.01.sch includes: the rules cannot be compiled
    "CISIS-BIO-CR-BIO": {"BIO-CR-BIO_2023.01_Electrophorese.xml"},
}


def _outcomes(report) -> dict:
    return {o["requirement"]: o for o in report["outcomes"]}


def _campaign(folder: Path, out: Path, profiles=("cda-r2", "ci-sis")) -> dict:
    target = make_target({"id": "documents", "kind": "documents", "url": str(folder)}, "test")
    return run_campaign(select(load_catalogue(), list(profiles)), [target], out, "en", "test", formats=["md"])


def _failing(outcome, name: str) -> bool:
    """Whether the outcome fails the document `name`."""
    return outcome["status"] == "failed" and name in outcome["measurements"].get("documents_failing", ())


@pytest.fixture(scope="module")
def cisis(fhir_package_cache, tmp_path_factory):
    """The ANS's test content recorded in the session's package cache, as `vigie packages add-cisis` does."""
    return add_content(CISIS_DATA)


@pytest.fixture(scope="module")
def examples_run(cisis, tmp_path_factory):
    """One campaign over the 80 examples (example/), the crafted flaws (flaw/) and each family's example made to
    fail its volet (family/)."""
    root = tmp_path_factory.mktemp("cda-documents")
    shutil.copytree(EXAMPLES, root / "example")
    (root / "flaw").mkdir()
    for n, flaw in enumerate(FLAWS):
        (root / "flaw" / f"{flaw}.xml").write_bytes(build(flaw, n))
    (root / "family").mkdir()
    families = {}
    for example in sorted(EXAMPLES.glob("*.xml")):
        volet = detect(read_document(example).clinical, cisis.schematrons)
        if volet and volet.candidates and volet.family not in families \
                and example.name not in EXAMPLE_ERRORS.get(f"CISIS-{volet.family}", ()):
            families[volet.family] = example.name
            (root / "family" / f"{volet.family}.xml").write_bytes(build_family_flaw(example, volet.family,
                                                                                     len(families)))
    report = _campaign(root, tmp_path_factory.mktemp("cda-report") / "bundle")
    return report, families


def test_add_cisis_records_the_content_with_its_version_and_digest(cisis):
    assert cisis.version == "2025.01" and cisis.digest.startswith("sha256:") and len(cisis.digest) == 71
    assert find_content() == cisis and [c.version for c in installed()] == ["2025.01"]
    assert (cisis.root / "schematrons" / "moteur" / "iso_svrl_for_xslt2.xsl").is_file()
    assert not list((cisis.root / "schematrons" / "moteur").glob("*.jar"))   # the ANS's engine is not copied


def test_every_ans_example_meets_its_volet(examples_run):
    report, _ = examples_run
    outcomes = _outcomes(report)
    examples = sorted(p.name for p in EXAMPLES.glob("*.xml"))
    for requirement, outcome in outcomes.items():
        failing = {name for name in examples if _failing(outcome, f"example/{name}")}
        assert failing == EXAMPLE_FAILURES.get(requirement, set()), (requirement, outcome["summary"])
    for requirement, outcome in outcomes.items():
        unchecked = {n.removeprefix("example/") for n in outcome["measurements"].get("documents_unchecked", ())
                     if n.startswith("example/")}
        assert unchecked == EXAMPLE_ERRORS.get(requirement, set()), requirement
    assert any("includes include/specificationsVolets/BIO-CR-BIO_2023.01/Entete/Entete_CR-BIO.sch, which is not "
               "in the CI-SIS content" in m for m in outcomes["CISIS-BIO-CR-BIO"]["messages"])


def test_every_requirement_is_seen_on_the_examples(examples_run):
    """No family requirement is left not applicable: each has at least one example."""
    report, families = examples_run
    statuses = {o["requirement"]: o["status"] for o in report["outcomes"]}
    assert [r for r, s in statuses.items() if s in ("not_applicable", "not_tested")] == []
    assert len(families) == 42


@pytest.mark.parametrize("flaw", sorted(FLAWS))
def test_crafted_document_fails_exactly_its_requirements(examples_run, flaw):
    report, _ = examples_run
    failing = {r for r, o in _outcomes(report).items() if _failing(o, f"flaw/{flaw}.xml")}
    assert failing == FLAWS[flaw][2]


def test_family_flaw_fails_exactly_its_family(examples_run):
    """Each family's example, changed where its volet is strict (its document code, or a mandatory section),
    fails its family's requirement and nothing its example does not fail already."""
    report, families = examples_run
    outcomes = _outcomes(report)
    for family, example in families.items():
        flawed = {r for r, o in outcomes.items() if _failing(o, f"family/{family}.xml")}
        original = {r for r, o in outcomes.items() if _failing(o, f"example/{example}")}
        # CANCER-FRCP and TLM-DA: every example already fails its volet (above); the change fails it too
        assert flawed == original | {f"CISIS-{family}"}, family
    assert set(families) == {r.removeprefix("CISIS-") for r in outcomes if r.startswith("CISIS-")
                             and not r.startswith(("CISIS-ENT-", "CISIS-VOL-"))}


def test_the_ans_message_is_quoted_in_french_whatever_the_language(examples_run):
    from vigie.messages import localized
    report, _ = examples_run
    outcome = _outcomes(report)["CISIS-VSM"]
    line = next(m for m in outcome["messages"] if m.startswith("flaw/mandatory-section-removed.xml: "))
    assert "[variables] /ClinicalDocument/component/structuredBody: \"[VSM" in line
    assert "La section 'Pathologies, antécédents, allergies et facteurs de risque'" in line
    assert "evidence/cda/CISIS-VSM@documents.json" in outcome["evidence"]
    french = next(o for o in localized(report, "fr")["outcomes"] if o["requirement"] == "CISIS-VSM")
    assert any("La section 'Pathologies, antécédents, allergies" in m for m in french["messages"])
    assert outcome["title"]["fr"].startswith("Les documents du volet VSM respectent")


HOSTILE = {
    "billion-laughs.xml": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;'
                          b'&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'
                          b'&lol2;&lol2;&lol2;&lol2;">]><ClinicalDocument xmlns="urn:hl7-org:v3">&lol3;'
                          b'</ClinicalDocument>',
    "external-entity.xml": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                           b'<ClinicalDocument xmlns="urn:hl7-org:v3">&x;</ClinicalDocument>',
    "deep.xml": b'<ClinicalDocument xmlns="urn:hl7-org:v3">' + b"<a>" * 100_000 + b"</a>" * 100_000
                + b"</ClinicalDocument>",
    "binary.xml": bytes(range(256)) * 4,
    "empty.xml": b"",
    "not-cda.xml": b'<?xml version="1.0"?><html><body>hello</body></html>',
}


def test_hostile_documents_fail_well_formedness_and_nothing_passes_on_them(cisis, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, raw in HOSTILE.items():
        (folder / name).write_bytes(raw)
    report = _campaign(folder, tmp_path / "bundle")
    outcomes = _outcomes(report)
    assert outcomes["CDA-R2-01"]["status"] == "failed"
    assert {m.split(":")[0] for m in outcomes["CDA-R2-01"]["messages"]} == set(HOSTILE)
    assert "passwd" not in str(report) or "root:x:0:0" not in str(report)
    others = {r: o["status"] for r, o in outcomes.items() if r != "CDA-R2-01"}
    assert set(others.values()) == {"error"}   # a family too: an unread document may be of it


def test_missing_content_makes_the_requirements_that_need_it_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIR_PACKAGE_CACHE", str(tmp_path / "empty-cache"))
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(EXAMPLES / CLEAN, folder / CLEAN)
    outcomes = _outcomes(_campaign(folder, tmp_path / "bundle"))
    for requirement in ("CDA-R2-02", "CISIS-VOL-00", "CISIS-VSM", "CISIS-BIO-CR-BIO"):
        assert outcomes[requirement]["status"] == "error", requirement
        assert "vigie packages add-cisis DIR|ZIP" in outcomes[requirement]["summary"]
    assert outcomes["CDA-R2-01"]["status"] == "passed" and outcomes["CISIS-ENT-01"]["status"] == "passed"
    # never a pass of what needs the content; the example embeds no file, so CDA-R2-04 does not concern it
    assert {r: o["status"] for r, o in outcomes.items() if o["status"] not in ("passed", "error")} == \
        {"CDA-R2-04": "not_applicable"}


def _vigie(*args, env_cache: Path):
    import os
    env = {**os.environ, "FHIR_PACKAGE_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def _small_content(folder: Path) -> Path:
    (folder / "schematrons" / "moteur").mkdir(parents=True)
    (folder / "schematrons" / "CI-SIS_VSM_2023.01.sch").write_text(
        "<!-- Historique : 02/03/2023 création -->\n<schema xmlns='http://purl.oclc.org/dsdl/schematron'/>")
    (folder / "jeuxDeValeurs").mkdir()
    (folder / "infrastructure" / "cda").mkdir(parents=True)
    return folder


def test_add_cisis_command_from_a_folder_and_a_zip(tmp_path):
    content = _small_content(tmp_path / "TestContenuCDA")
    result = _vigie("packages", "add-cisis", str(content), env_cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "added the CI-SIS content 2023.01 (dated 2023-03-02, sha256:" in result.stdout
    archive = tmp_path / "content.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(content.rglob("*")):
            z.write(path, Path("TestContenuCDA-main") / path.relative_to(content))
    result = _vigie("packages", "add-cisis", str(archive), env_cache=tmp_path / "cache2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache2" / "ans.cisis.cda#2023.01" / "vigie-cisis.json").is_file()
    listed = _vigie("packages", "list", env_cache=tmp_path / "cache2")
    assert "ans.cisis.cda#2023.01 (CI-SIS test content, dated 2023-03-02, sha256:" in listed.stdout


@pytest.mark.parametrize("bad", ["missing", "not-content", "zip-slip"])
def test_add_cisis_refuses_what_is_not_the_content_in_one_line(tmp_path, bad):
    if bad == "missing":
        source = tmp_path / "nowhere"
    elif bad == "not-content":
        source = tmp_path / "other"
        source.mkdir()
    else:
        source = tmp_path / "evil.zip"
        with zipfile.ZipFile(source, "w") as z:
            z.writestr("../schematrons/x.sch", "x")
    result = _vigie("packages", "add-cisis", str(source), env_cache=tmp_path / "cache")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("vigie: error: ")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("ans.cisis.cda#*"))


def test_run_documents_option_checks_a_folder(cisis, tmp_path, fhir_package_cache):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(EXAMPLES / CLEAN, folder / CLEAN)
    result = _vigie("run", "--documents", str(folder), "--profile", "cda-r2", "--profile", "ci-sis", "--out",
                    str(tmp_path / "bundle"), "--format", "md", env_cache=fhir_package_cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CISIS-VSM@documents" in result.stdout
    missing = _vigie("run", "--documents", str(tmp_path / "nowhere"), env_cache=fhir_package_cache)
    assert missing.returncode == 3 and "documents folder or file" in missing.stderr


def test_vigie_toml_documents_target(tmp_path):
    from vigie.campaign import load_config
    from vigie.cda.observation import document_files
    from vigie.errors import VigieError
    (tmp_path / "docs" / "vsm").mkdir(parents=True)
    (tmp_path / "docs" / "vsm" / "a.xml").write_text("<a/>")
    (tmp_path / "docs" / "b.xml").write_text("<b/>")
    (tmp_path / "vigie.toml").write_text('[[targets]]\nid = "dmp"\nkind = "documents"\nurl = "docs"\n\n'
                                         '[[targets]]\nid = "two"\nkind = "documents"\n'
                                         'files = ["docs/b.xml", "docs/vsm/a.xml"]\n')
    folder, listed = load_config(tmp_path / "vigie.toml")["targets"]
    assert folder.kind == "documents" and folder.url == str((tmp_path / "docs").resolve())
    assert [p.name for p in document_files(folder)] == ["b.xml", "a.xml"]
    assert listed.url == str((tmp_path / "docs").resolve()) and [p.name for p in document_files(listed)] == \
        ["b.xml", "a.xml"]
    (tmp_path / "bad.toml").write_text('[[targets]]\nkind = "documents"\nfiles = ["docs/none.xml"]\n')
    with pytest.raises(VigieError, match="document 'docs/none.xml' not found|none.xml' not found"):
        load_config(tmp_path / "bad.toml")


def test_compiled_schematrons_are_reused_from_disk(cisis):
    from vigie.cda.schematron import Schematrons
    first = Schematrons(cisis, cisis.root / "compiled")
    first.executable("CI-SIS_VSM_2023.01.sch")
    again = Schematrons(cisis, cisis.root / "compiled")
    again.executable("CI-SIS_VSM_2023.01.sch")
    assert "CI-SIS_VSM_2023.01.sch" in again.from_disk


def test_a_document_too_large_for_the_schematrons_is_an_error_not_a_hang(cisis, tmp_path, monkeypatch):
    from vigie.cda import observation
    monkeypatch.setattr(observation, "MAX_ELEMENTS", 500)    # the clean VSM has 1,082 elements
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(EXAMPLES / CLEAN, folder / CLEAN)
    outcome = _outcomes(_campaign(folder, tmp_path / "bundle", ("ci-sis",)))["CISIS-VSM"]
    assert outcome["status"] == "error" and "1082 elements: more than the 500" in outcome["summary"]


def test_a_read_only_cache_of_compiled_schematrons_only_costs_the_compile(cisis, tmp_path):
    from vigie.cda.document import clinical_text
    from vigie.cda.schematron import Schematrons
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    schematrons = Schematrons(cisis, blocked / "compiled")
    findings = schematrons.validate("CI-SIS_VSM_1.4_2022.01.sch", clinical_text(read_document(EXAMPLES / CLEAN)))
    assert [f for f in findings if f.level == "error"] == [] and not schematrons.from_disk
