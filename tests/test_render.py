"""The renderers and the report.json schema, on a hand-written sample report (tests/data/report-sample.json)."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import jsonschema
import pytest

from vigie.render import SCHEMA_PATH, load_report, render, report_schema, validate_report
from vigie.render.html import EMBED_MAX_BYTES, render_html
from vigie.render.i18n import LANGS, STATUSES, VERDICTS, labels, t
from vigie.render.junit import render_junit
from vigie.render.markdown import render_markdown

SAMPLE = Path(__file__).parent / "data" / "report-sample.json"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def report() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


class Page(HTMLParser):
    """The parts of an HTML page the tests look at: tags with attributes, and the visible text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.text = " ".join("".join(self.chunks).split())

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.chunks.append(" ")

    def handle_endtag(self, tag):
        self.chunks.append(" ")

    def handle_data(self, data):
        self.chunks.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def _html(report: dict, tmp_path: Path, lang: str = "en", **kw) -> tuple[str, Page]:
    out = kw.pop("out", tmp_path / f"report-{lang}.html")
    render_html(report, out, lang=lang, **kw)
    html = out.read_text(encoding="utf-8")
    return html, Page(html)


# --- schema -------------------------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(report_schema())
    assert SCHEMA_PATH.name == "report.schema.json"


def test_sample_validates(report):
    validate_report(report)
    assert load_report(SAMPLE)["verdict"] == "non-conformant"


def test_sample_covers_every_status_and_verdict(report):
    assert {o["status"] for o in report["outcomes"]} == set(STATUSES)
    assert {p["verdict"] for p in report["profiles"]} | {report["verdict"]} == set(VERDICTS)
    assert any(o["check"] == "attestation" for o in report["outcomes"])


def test_sample_counts_match_its_outcomes(report):
    for p in report["profiles"]:
        seen = Counter(o["status"] for o in report["outcomes"] if o["profile"] == p["id"])
        assert p["counts"] == {s: seen.get(s, 0) for s in STATUSES}, p["id"]


def _drop_verdict(r):
    del r["verdict"]


def _bad_status(r):
    r["outcomes"][0]["status"] = "flaky"


def _bad_level(r):
    r["outcomes"][0]["level"] = "MUST"


def _no_evidence(r):
    del r["outcomes"][0]["evidence"]


def _bad_schema_id(r):
    r["schema"] = "vigie-report/2"


def _missing_count(r):
    del r["profiles"][0]["counts"]["not_tested"]


def _absolute_evidence(r):
    r["outcomes"][0]["evidence"] = ["/etc/passwd"]


@pytest.mark.parametrize(
    "breakage",
    [
        _drop_verdict,
        _bad_status,
        _bad_level,
        _no_evidence,
        _bad_schema_id,
        _missing_count,
        _absolute_evidence,
    ],
)
def test_broken_reports_do_not_validate(report, breakage):
    breakage(report)
    with pytest.raises(ValueError, match="vigie-report/1"):
        validate_report(report)


def test_added_fields_are_allowed(report):
    report["signature"] = {"alg": "ed25519"}
    report["outcomes"][0]["attempts"] = 2
    validate_report(report)


# --- HTML ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_html_structure(report, tmp_path, lang):
    _, page = _html(report, tmp_path, lang)
    assert page.all("html") == [{"lang": lang}]
    headings = [int(tag[1]) for tag, _ in page.tags if tag in ("h1", "h2", "h3", "h4", "h5", "h6")]
    assert headings.count(1) == 1 and headings[0] == 1
    assert all(b <= a + 1 for a, b in pairwise(headings)), "a heading level is skipped"
    assert t(f"verdict.{report['verdict']}", lang) in page.text
    for o in report["outcomes"]:
        assert o["requirement"] in page.text
    for value in (report["run"]["id"], report["run"]["tool_version"], report["run"]["suite_digest"]):
        assert value in page.text
    for target in report["targets"]:
        assert target["id"] in page.text and target["url"] in page.text
    # one details block per outcome, and every in-page link lands on an element
    assert len(page.all("details")) == len(report["outcomes"])
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))
    for a in page.all("a"):
        if a["href"].startswith("#"):
            assert a["href"][1:] in ids, a["href"]


@pytest.mark.parametrize("lang", LANGS)
def test_html_tables_are_accessible(report, tmp_path, lang):
    html, _ = _html(report, tmp_path, lang)
    tables = html.split("<table>")[1:]
    assert len(tables) >= 2 + len(report["profiles"])
    for table in tables:
        body = table.split("</table>")[0]
        assert "<caption" in body
        tp = Page(body)
        assert all(th.get("scope") in ("col", "row") for th in tp.all("th"))


def test_html_is_self_contained(report, tmp_path):
    html, page = _html(report, tmp_path)
    assert "<script" not in html.lower()
    assert not page.all("script") and not page.all("link") and not page.all("img") and not page.all("iframe")
    assert not [a for _, a in page.tags if "src" in a]
    assert "@import" not in html and "url(" not in html
    assert "@media print" in html and "details-content" in html


def test_html_french_labels(report, tmp_path):
    _, page = _html(report, tmp_path, "fr")
    for label in (
        "Rapport de conformité",
        "Verdict global",
        "Synthèse",
        "Exigences non testées",
        "Exigences vérifiées sur attestation",
        "réussi",
        "échoué",
        "erreur",
        "ignoré",
        "non applicable",
        "non testé",
        "conforme avec réserves",
        "non conforme",
        "incomplet",
        "non applicable",
    ):
        assert label in page.text, label
    assert "Recommandations TLS de l'ANSSI" in page.text  # titles in the chosen language
    assert "Seuls TLS 1.2 et TLS 1.3 sont acceptés" in page.text
    assert "Conformance report" not in page.text


def test_html_sections_for_not_tested_and_attestations(report, tmp_path):
    html, _ = _html(report, tmp_path)
    not_tested = html.split('id="not-tested"')[1].split("<section")[0]
    attest = html.split('id="attestations"')[1].split("<section")[0]
    assert "FRCORE-PRA-01" in not_tested and "OMOP-PRIV-04" in not_tested and "ANSSI-TLS-01" not in not_tested
    assert "OMOP-PRIV-03" in attest and "OMOP-PRIV-04" in attest and "FRCORE-PRA-01" not in attest
    assert "evidence/attestations/hds-certificate.pdf" in attest


def test_html_escapes_everything(report, tmp_path):
    o = report["outcomes"][0]
    o["summary"] = XSS
    o["messages"] = [XSS]
    o["title"] = {"en": XSS}
    o["measurements"] = {XSS: XSS}
    o["evidence"] = ['evidence/"><script>alert(1)</script>.json']
    report["targets"][0]["url"] = XSS
    report["run"]["command"] = XSS
    report["profiles"][0]["source"]["url"] = "javascript:alert(1)"
    html, page = _html(report, tmp_path)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS in page.text  # shown to the reviewer as text
    assert not [a for a in page.all("a") if a["href"].lower().startswith("javascript")]


def _bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    tls = bundle / "evidence" / "tls" / "practice.json"
    tls.parent.mkdir(parents=True)
    tls.write_text(json.dumps({"protocols": {"TLSv1.0": {"accepted": True}}, "banner": "</pre>" + XSS}))
    big = bundle / "evidence" / "http" / "practice" / "0002-get-patient.json"
    big.parent.mkdir(parents=True)
    big.write_text(json.dumps({"padding": "x" * EMBED_MAX_BYTES, "marker": "BIG-FILE-MARKER"}))
    (tmp_path / "secret.json").write_text(json.dumps({"token": "OUTSIDE-THE-BUNDLE"}))
    return bundle


def test_html_embeds_small_json_evidence_once(report, tmp_path):
    bundle = _bundle(tmp_path)
    report["outcomes"][1]["evidence"].append("../secret.json")
    html, page = _html(report, tmp_path, out=bundle / "report.html", bundle_dir=bundle)
    assert "<script" not in html.lower()
    assert '"TLSv1.0": { "accepted": true }' in page.text
    # five outcomes share the TLS scan: its excerpt is embedded once, the others link to it
    assert page.text.count("Excerpt of evidence/tls/practice.json") == 1
    assert page.text.count("excerpt shown with ANSSI-TLS-01 @ practice") == 4
    assert "BIG-FILE-MARKER" not in html  # too large: linked, not embedded
    assert "OUTSIDE-THE-BUNDLE" not in html  # never read outside the bundle
    hrefs = [a["href"] for a in page.all("a")]
    assert "evidence/tls/practice.json" in hrefs and "evidence/http/practice/0002-get-patient.json" in hrefs


def test_html_evidence_links_are_relative_to_the_report(report, tmp_path):
    bundle = _bundle(tmp_path)
    _, page = _html(report, tmp_path, out=bundle / "html" / "report.html", bundle_dir=bundle)
    assert "../evidence/tls/practice.json" in [a["href"] for a in page.all("a")]


def test_html_renders_a_partial_report(report, tmp_path):
    report["run"]["finished"] = None
    report["run"]["complete"] = False
    del report["run"]["suite_digest"], report["run"]["command"], report["targets"][0]["url"]
    report["outcomes"].append({**report["outcomes"][0], "profile": "orphan", "title": "plain title"})
    _, page = _html(report, tmp_path)
    assert "not finished" in page.text and "partial" in page.text
    assert "orphan" in page.text and "plain title" in page.text


def test_unknown_language_is_refused(report, tmp_path):
    with pytest.raises(ValueError, match="de"):
        render_html(report, tmp_path / "r.html", lang="de")
    with pytest.raises(ValueError):
        t("report_title", "de")
    with pytest.raises(ValueError):
        render_markdown(report, tmp_path / "s.md", lang="de")


# --- labels -------------------------------------------------------------------------------------------


def test_every_label_exists_in_every_language():
    for key, texts in labels().items():
        assert set(texts) == set(LANGS) and all(texts.values()), key
    for s in STATUSES:
        for lang in LANGS:
            assert t(f"status.{s}", lang) and t(f"status_desc.{s}", lang)
    for v in VERDICTS:
        for lang in LANGS:
            assert t(f"verdict.{v}", lang) and t(f"verdict_desc.{v}", lang)


def test_french_names_of_statuses_and_verdicts():
    assert [t(f"status.{s}", "fr") for s in STATUSES] == [
        "réussi",
        "échoué",
        "erreur",
        "ignoré",
        "non applicable",
        "non testé",
    ]
    assert [t(f"verdict.{v}", "fr") for v in VERDICTS] == [
        "conforme",
        "conforme avec réserves",
        "non conforme",
        "incomplet",
        "non applicable",
    ]


# --- JUnit --------------------------------------------------------------------------------------------


def test_junit(report, tmp_path):
    out = tmp_path / "junit.xml"
    render_junit(report, out)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [p["id"] for p in report["profiles"]]
    cases = root.findall("testsuite/testcase")
    names = [c.get("name") for c in cases]
    assert len(names) == len(set(names)) == len(report["outcomes"])
    assert names[0] == "ANSSI-TLS-01@practice"
    for suite, p in zip(suites, report["profiles"]):
        c = p["counts"]
        assert int(suite.get("tests")) == sum(c.values())
        assert int(suite.get("failures")) == c["failed"]
        assert int(suite.get("errors")) == c["error"]
        assert int(suite.get("skipped")) == c["skipped"] + c["not_applicable"] + c["not_tested"]
    total = Counter(o["status"] for o in report["outcomes"])
    assert int(root.get("tests")) == len(report["outcomes"])
    assert int(root.get("failures")) == total["failed"] and int(root.get("errors")) == total["error"]
    for case, o in zip(cases, report["outcomes"]):
        assert case.get("classname") == f"vigie.{o['profile']}"
        assert float(case.get("time")) == pytest.approx(o.get("duration_s") or 0, abs=1e-3)
        # junit-10.xsd allows no properties in a testcase: level and check are in its output
        assert case.find("properties") is None
        assert f"level: {o['level']}\ncheck: {o['check']}" in case.find("system-out").text
        if o["status"] == "failed":
            assert case.find("failure").get("message") == o["summary"]
        elif o["status"] == "error":
            assert case.find("error").get("message") == o["summary"]
        elif o["status"] == "passed":
            assert (
                case.find("failure") is None and case.find("error") is None and case.find("skipped") is None
            )
        else:
            assert case.find("skipped").get("message").startswith(o["status"])


def test_junit_names_stay_unique_and_xml_stays_valid(report, tmp_path):
    report["outcomes"].append(copy.deepcopy(report["outcomes"][0]))
    report["outcomes"][0]["summary"] = "bell \x07 and " + XSS
    out = tmp_path / "junit.xml"
    render_junit(report, out)
    root = ET.parse(out).getroot()
    names = [c.get("name") for c in root.iter("testcase")]
    assert len(names) == len(set(names)) and "ANSSI-TLS-01@practice#2" in names
    assert root.find("testsuite/testcase/failure").get("message") == "bell  and " + XSS   # control character gone


# --- Markdown and dispatch ----------------------------------------------------------------------------


def test_the_product_under_test_is_named(report, tmp_path):
    _, page = _html(report, tmp_path, "fr")
    assert "Produit évalué" in page.text and "Cabinet Plus 4.2.1 (commit 9f1c2ab) — déclaré par l'évaluateur" in page.text
    del report["product"]
    _, page = _html(report, tmp_path, "en")
    assert "not named (give --product" in page.text


def test_markdown_summary(report, tmp_path):
    report["outcomes"][0]["summary"] = "a | b " + XSS
    out = tmp_path / "summary.md"
    render_markdown(report, out, lang="fr")
    md = out.read_text(encoding="utf-8")
    assert "non conforme" in md and "réussi" in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(report["profiles"])
    assert len({line.replace("\\|", "").count("|") for line in rows}) == 1  # no cell broke the table
    assert "<script>" not in md and "a \\| b" in md
    assert "ANSSI-TLS-01" in md and "FRCORE-PAT-02" in md  # a failed SHALL and an error are listed


def test_render_dispatch(report, tmp_path):
    for fmt, name in (("html", "report.html"), ("junit", "junit.xml"), ("md", "summary.md")):
        assert render(report, fmt, tmp_path / name).stat().st_size > 0
    with pytest.raises(ValueError, match="pdf"):
        render(report, "pdf", tmp_path / "report.pdf")


# --- findings first, dates, levels and references in the report's language (HTML and PDF) --------------

FINDING_ORDER = ["ANSSI-TLS-01", "FRCORE-PAT-02", "FRCORE-PRA-01", "OMOP-PRIV-02", "ANSSI-TLS-05", "FRCORE-SRCH-01",
                 "OMOP-PRIV-04"]  # SHALL failed, error, not tested; SHOULD failed, skipped; MAY skipped, not tested


@pytest.mark.parametrize("lang", LANGS)
def test_html_opens_with_the_findings(report, tmp_path, lang):
    html, page = _html(report, tmp_path, lang)
    # right after the verdict and the product: before the run's facts, the contents and the matrix
    order = [html.index(mark) for mark in ('class="verdict-banner', 'id="findings"', 'id="run"', 'id="toc"',
                                           'id="traceability"')]
    assert order == sorted(order)
    section = html.split('id="findings"')[1].split("</section>")[0]
    rows = [r for r in section.split("<tr>")[2:]]
    assert [Page(r).text.split()[0] for r in rows] == FINDING_ORDER
    first = Page(rows[0])
    assert first.all("a")[0]["href"] == "#o-ANSSI-TLS-01-practice"  # to its details, where its evidence is
    assert "evidence/tls/practice.json" in [a["href"] for a in first.all("a")]
    assert t("level.SHALL", lang) in first.text and report["outcomes"][0]["summary"] in first.text
    # the details of every finding are open, the others closed
    opened = [a for a in page.all("details") if "open" in a]
    assert len(opened) == len(FINDING_ORDER)


def test_html_says_when_nothing_is_to_be_found(report, tmp_path):
    report["outcomes"] = [o for o in report["outcomes"] if o["status"] in ("passed", "not_applicable")]
    _, page = _html(report, tmp_path, "fr")
    assert "Constats (0)" in page.text and "Aucune exigence n'a échoué et aucune ne reste à vérifier." in page.text


@pytest.mark.parametrize("lang, started, finished", [
    ("fr", "28 novembre 2026, 15 h 47 UTC", "28 novembre 2026, 15 h 49 UTC"),
    ("en", "28 November 2026, 15:47 UTC", "28 November 2026, 15:49 UTC")])
def test_dates_in_the_report_language(report, tmp_path, lang, started, finished):
    report["run"]["finished"] = "2026-11-28T16:49:13+01:00"  # an offset is shown in UTC
    _, page = _html(report, tmp_path, lang)
    assert started in page.text and finished in page.text
    assert "2026-11-28T15:47" not in page.text  # ISO stays in the datetime attributes only
    assert {"datetime": "2026-11-28T15:47:00Z"} in page.all("time")


def test_date_text():
    from vigie.render.i18n import date_text

    assert date_text("2026-12-03T10:21:44+00:00", "fr") == "3 décembre 2026, 10 h 21 UTC"
    assert date_text("2026-08-01T00:05:00Z", "fr") == "1er août 2026, 00 h 05 UTC"
    assert date_text("not a date", "fr") == "not a date" and date_text(None, "en") == ""


RFC_2119_BARE = re.compile(r"(?<!\()\b(SHALL|SHOULD|MAY)\b(?!\))")


def test_levels_in_french(report, tmp_path):
    _, page = _html(report, tmp_path, "fr")
    for word in ("EXIGÉ (SHALL)", "RECOMMANDÉ (SHOULD)", "FACULTATIF (MAY)"):
        assert word in page.text
    assert not RFC_2119_BARE.findall(page.text)  # the English word only in brackets, never in a French sentence
    assert not [key for key, texts in labels().items() if RFC_2119_BARE.search(texts["fr"])]
    _, page = _html(report, tmp_path, "en")
    assert "EXIGÉ" not in page.text and "SHALL" in page.text


def test_references_say_in_french_what_was_not_verified(report, tmp_path):
    report["outcomes"][0]["reference"] = "§ versions de protocole (R3, R4 — numbering unverified)"
    _, page = _html(report, tmp_path, "fr")
    assert "R4 — numérotation non vérifiée" in page.text and "numbering unverified" not in page.text
    _, page = _html(report, tmp_path, "en")
    assert "R4 — numbering unverified" in page.text


def _pdf_text(report: dict, tmp_path: Path, lang: str, **kw) -> list[str]:
    from pypdf import PdfReader

    from vigie.render.pdf import render_pdf

    out = tmp_path / f"report-{lang}.pdf"
    render_pdf(report, out, lang, **kw)
    return [" ".join(p.extract_text().split()) for p in PdfReader(str(out)).pages]


def test_pdf_cover_in_french(report, tmp_path):
    report["outcomes"][0]["reference"] = "R3 (numbering unverified)"
    pages = _pdf_text(report, tmp_path, "fr")
    cover = pages[0]
    assert "`" not in cover and "se vérifie avec vigie verify sur le lot" in cover
    assert "28 novembre 2026, 15 h 47 UTC — 28 novembre 2026, 15 h 49 UTC" in cover
    # the product under test and the masking of patient data stay on the cover
    assert "Produit évalué Cabinet Plus 4.2.1 (commit 9f1c2ab) — déclaré par l'évaluateur" in cover
    assert "Données des patients NON MASQUÉES" in cover  # the sample predates masking: it says so
    whole = " ".join(pages)
    assert "EXIGÉ (SHALL)" in whole and "numérotation non vérifiée" in whole and "numbering unverified" not in whole
    assert not RFC_2119_BARE.findall(whole)


def _evidence_bundle(report: dict, tmp_path: Path) -> Path:
    """A bundle whose findings hold one evidence file of each kind vigie records, and some broken ones."""
    bundle = tmp_path / "bundle"
    files = {
        "tls.json": {"host": "127.0.0.1", "port": 8443, "accepted_protocols": ["TLSv1.0", "TLSv1.2"],
                     "cipher_suites": {}, "certificate": {"key_type": "EC", "key_bits": 256,
                                                          "not_after": "2026-12-05T15:46:58+00:00"}},
        "http.json": [
            {"request": {"method": "GET", "url": "https://127.0.0.1:8443/fhir/metadata"},
             "response": {"status": 200, "reason": "OK", "headers": {}}},
            {"request": {"method": "GET", "url": "https://127.0.0.1:8443/fhir/Patient?identifier=a%7Cb&_count=50"},
             "response": {"status": 500, "reason": XSS, "headers": {"Server": "x"}}}],
        "sql.json": {"queries": [{"sql": 'SELECT "other" FROM "t"', "rows": 5},
                                 {"sql": 'SELECT "year_of_birth", COUNT(*) FROM "condition_era" GROUP BY 1', "rows": 3},
                                 {"sql": "SELECT 1", "rows": 1}]},
        "bandit.json": {"findings": [{"rule": "B608", "severity": "MEDIUM", "file": "app/db.py", "line": 12,
                                      "message": "Possible SQL injection"}]},
        "fuzz.json": {"findings": {"server-error": {"count": 3, "kept": [
            {"method": "GET", "url": "https://127.0.0.1:8443/fhir/Patient?name=%27", "status": 500,
             "detail": "stack trace"}]}}},
        "audit.json": {"dependencies": [{"name": "requests", "version": "2.0.0", "vulns": [{"id": "PYSEC-1"}]}]},
        "scenario.json": {"host": "https://127.0.0.1:8443/fhir", "scenario": ["slot-search"], "duration_s": 5,
                          "aggregated": {"count": 20, "failures": 0, "response_times": {"1200": 20}},
                          "timeseries": [{"t": 1, "p50": 1200, "p95": 1200}, {"t": 2, "p50": 1200, "p95": 1200}]},
        "run.json": {"host": "https://127.0.0.1:8443/fhir", "duration_s": 5,
                     "aggregated": {"count": 90, "failures": 0, "response_times": {"15": 90}},
                     "timeseries": [{"t": 1, "p50": 15, "p95": 15}, {"t": 2, "p50": 15, "p95": 15}]},
        # shapes a broken or hostile run could leave: shown as links only, never a crash
        "broken.json": [1, "x", {"request": "GET /"}],
        "broken2.json": {"findings": ["x", 1]},
        "broken3.json": {"dependencies": [{"vulns": "x"}, 1], "queries": "no"},
        "broken4.json": {"queries": [1, {"sql": None}]},
    }
    for name, data in files.items():
        (bundle / "evidence").mkdir(parents=True, exist_ok=True)
        (bundle / "evidence" / name).write_text(json.dumps(data))
    (bundle / "evidence" / "garbage.json").write_text("{not json")
    by_id = {o["requirement"]: o for o in report["outcomes"]}
    for requirement, names in {"ANSSI-TLS-01": ["tls.json"], "FRCORE-PAT-02": ["http.json", "broken.json"],
                               "OMOP-PRIV-02": ["sql.json", "broken4.json"], "FRCORE-PRA-01": ["bandit.json"],
                               "ANSSI-TLS-05": ["fuzz.json", "broken2.json", "garbage.json", "../secret.json"],
                               "OMOP-PRIV-04": ["audit.json", "broken3.json"],
                               "FRCORE-SRCH-01": ["run.json", "scenario.json"], "OMOP-PRIV-01": ["run.json"]}.items():
        by_id[requirement]["evidence"] = [f"evidence/{n}" for n in names]
    (tmp_path / "secret.json").write_text(json.dumps([{"request": {"method": "GET", "url": "https://x/OUTSIDE"}}]))
    return bundle


def test_pdf_findings_show_their_decisive_evidence(report, tmp_path):
    from vigie.render.pdf import pdf_html

    bundle = _evidence_bundle(report, tmp_path)
    html = pdf_html(report, "en", bundle)
    assert "<script" not in html.lower() and "OUTSIDE" not in html
    sections = {}  # requirement -> its finding's section
    for part in html.split('<h2 id="f-')[1:]:
        part = '<h2 id="f-' + part.split('<div class="finding')[0].split("</section>")[0]
        sections[Page(part).text.split()[0]] = part
    text = {k: Page(v).text for k, v in sections.items()}
    assert list(text) == FINDING_ORDER  # in the order of the findings list
    assert "Accepted protocols: TLSv1.0, TLSv1.2" in text["ANSSI-TLS-01"]
    assert "Certificate: EC 256, valid until 5 December 2026, 15:46 UTC" in text["ANSSI-TLS-01"]
    # the request the finding names, not the others; what the target sent is escaped
    assert "GET /fhir/Patient?identifier=a%7Cb&_count=50 → 500 <script>" in text["FRCORE-PAT-02"]
    assert "/fhir/metadata" not in text["FRCORE-PAT-02"]
    # the query that counted what the finding reports, with the rows it returned
    assert 'SELECT "year_of_birth", COUNT(*) FROM "condition_era" GROUP BY 1 → 3 row(s)' in text["OMOP-PRIV-02"]
    assert "SELECT 1" not in text["OMOP-PRIV-02"] and '"other"' not in text["OMOP-PRIV-02"]
    assert "B608 MEDIUM app/db.py:12 — Possible SQL injection" in text["FRCORE-PRA-01"]
    assert "server-error (3): GET /fhir/Patient?name=%27 → 500 — stack trace" in text["ANSSI-TLS-05"]
    assert "requests 2.0.0: PYSEC-1" in text["OMOP-PRIV-04"]
    # the load scenario a finding judges, with its charts; the whole run's charts in the charts section
    assert "requests 20" in text["FRCORE-SRCH-01"] and "requests 90" not in text["FRCORE-SRCH-01"]
    assert sections["FRCORE-SRCH-01"].count('class="chart"') == 2
    assert sections["FRCORE-SRCH-01"].split("<figcaption>")[1].split("</figcaption>")[0].endswith("— slot-search")
    charts = html.split('id="charts"')[1].split("</section>")[0]
    assert "Load run on https://127.0.0.1:8443/fhir" in charts and "evidence/run.json" in charts
    assert charts.count('class="chart"') == 2 and 'class="chart outcomes-chart"' in charts
    # each profile's table links its findings to their sections, and only them
    tables = "".join(part.split("</table>")[0] for part in html.split('<table class="outcomes">')[1:])
    linked = [a["href"] for a in Page(tables).all("a")]
    assert sorted(set(linked)) == sorted(f"#f-{n}" for n in range(1, len(FINDING_ORDER) + 1))
