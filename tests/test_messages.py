"""The French of vigie's sentences: a catalogue complete for what the code writes, whose translations keep
their parameters, and a translation that reads a sentence's values back into its French."""
import json
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from french import english_words

from vigie.messages import CATALOGUES, key_of, localized, translate

ROOT = Path(__file__).resolve().parent.parent
FRENCH = json.loads((CATALOGUES / "fr.json").read_text(encoding="utf-8"))


def fields(template: str) -> Counter:
    return Counter(f for _, f, _, _ in string.Formatter().parse(template) if f is not None)


def test_every_sentence_the_code_writes_has_its_french():
    result = subprocess.run([sys.executable, "scripts/messages.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_catalogue_holds_only_what_the_code_writes():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import messages
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert set(FRENCH) == set(messages.templates())


def test_a_translation_keeps_the_parameters_of_its_sentence():
    wrong = [(english, french) for english, french in FRENCH.items() if fields(french) != fields(english)]
    assert not wrong, wrong[:10]
    for english, french in FRENCH.items():
        french.format(**{name: "x" for name in fields(english)})


def test_prose_is_translated():
    # the sentences left as they are must be code, addresses or SQL, not English prose
    english = [e for e, f in FRENCH.items() if f == e and len(english_words(e)) >= 2 and "import " not in e]
    assert not english, english[:20]


def test_a_sentence_is_read_back_into_its_french_with_its_values():
    text = ("no AuditEvent records GET Patient/p1 within 5 s (AuditEvents recorded since 2026-12-03T10:00:00Z: 3, "
            "of which 1 existed before it)")
    key = key_of(text)
    if key is None:   # the wording of the traceability check changed: the test must follow it
        pytest.fail(f"no template for {text!r}")
    template, params = key
    assert "{" in template and "Patient/p1" in " ".join(params.values())
    french = translate(text, "fr")
    assert "Patient/p1" in french and "5" in french and not english_words(french), french


def test_a_value_that_is_a_sentence_is_translated_too():
    inner = "the answer is not HTTP"
    assert translate(inner, "fr") != inner
    outer = f"undetermined: {inner}"
    assert translate(outer, "fr") == FRENCH["undetermined: {text}"].format(text=translate(inner, "fr"))


def test_a_value_from_the_target_stays_as_the_target_wrote_it():
    assert translate("Internal Server Error", "fr") == "Internal Server Error"
    assert translate("", "fr") == ""


def test_a_report_is_localised_and_report_json_keeps_the_english():
    report = {"run": {"lang": "fr"}, "outcomes": [
        {"requirement": "R", "summary": "undetermined: the answer is not HTTP", "messages": ["the answer is not HTTP"]}]}
    french = localized(report, "fr")
    assert french["outcomes"][0]["summary"].startswith(FRENCH["undetermined: {text}"].split("{")[0])
    assert report["outcomes"][0]["summary"] == "undetermined: the answer is not HTTP"
    assert localized(report, "en") is report


def test_a_flawed_campaign_in_french_has_no_english_sentence(tmp_path):
    """The reference practice system with the flaws of its HTTP hardening and API access (failures of every
    kind: headers, CORS, TRACE, tokens, authorisation), rendered in French: the results and messages of the
    HTML report and the Markdown summary hold no English sentence."""
    from lxml import html as lxml_html
    flaws = ["no-hsts", "missing-nosniff", "cacheable-responses", "server-version", "cors-wildcard",
             "framing-allowed", "trace-enabled", "alg-none-accepted", "expired-token-accepted", "reader-can-write",
             "bola", "stack-trace-errors", "sql-error-leak"]
    out = tmp_path / "bundle"
    result = subprocess.run(
        [sys.executable, "-m", "vigie", "demo", *[a for f in flaws for a in ("--flaw", f)], "--profile",
         "http-hardening", "--profile", "api-access", "--profile", "api-robustness", "--lang", "fr",
         "--rate", "200", "--format", "html", "--format", "md", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert sum(o["status"] == "failed" for o in report["outcomes"]) >= 10
    page = lxml_html.fromstring((out / "report.html").read_text(encoding="utf-8"))
    texts = [e.text_content() for e in page.xpath("//td[@class='result'] | //ul[@class='messages']/li")]
    assert len(texts) >= len(report["outcomes"])
    texts += [line for line in (out / "summary.md").read_text(encoding="utf-8").splitlines() if " — " in line]
    english = [(text, english_words(text)) for text in texts if english_words(text)]
    assert not english, english[:10]
