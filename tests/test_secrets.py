"""Secrets (bearer tokens, a database password, the server's private key) never appear in any file of a
bundle, nor in what vigie prints; and the redaction rules themselves."""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pypdf
import pytest
from conftest import practice_process

from vigie.campaign import Target
from vigie.evidence import REDACTED, Redactor, strip_password

DB_PASSWORD = "Pa55-w0rd-Secret"   # port 1: nothing listens, the warehouse checks end in error at once
WAREHOUSE = f'[[targets]]\nid = "dw"\nkind = "warehouse"\nurl = "postgresql://vigie_user:{DB_PASSWORD}@127.0.0.1:1/omop"\n'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The reference practice system in its own process; its vigie.toml knows every token."""
    with practice_process(tmp_path_factory.mktemp("practice")) as state:
        yield state


def _secrets(state: Path) -> list[str]:
    target = tomllib.loads((state / "vigie.toml").read_text())["targets"][0]
    key = [line for line in (state / "server.key").read_text().splitlines() if line and "-----" not in line]
    return [target["token"], *target["tokens"].values(), DB_PASSWORD, *key]


def _texts(bundle: Path) -> dict[str, str]:
    """Every file of the bundle as text; PDF pages as their extracted text (their streams are compressed)."""
    texts = {}
    for path in bundle.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
            if path.suffix == ".pdf":
                texts[str(path) + " (text)"] = "\n".join(p.extract_text() for p in pypdf.PdfReader(path).pages)
    return texts


def test_no_secret_in_bundles_or_output(served, tmp_path):
    config = tmp_path / "vigie.toml"
    config.write_text((served / "vigie.toml").read_text() + WAREHOUSE)
    target = tomllib.loads(config.read_text())["targets"][0]
    env = {**os.environ, "VIGIE_LOAD_DURATION": "1"}
    runs = [  # every profile, with every token known from the configuration
        ["run", "--config", str(config), "--out", str(tmp_path / "a"), "--check-timeout", "60"],
        # the token on the command line, which the journal records (redacted)
        ["run", "--fhir", target["url"], "--ca-file", target["ca_file"], "--token", target["token"],
         "--profile", "fhir-r4-rest", "--profile", "api-access", "--out", str(tmp_path / "b")]]
    printed = ""
    for args in runs:
        result = subprocess.run([sys.executable, "-m", "vigie", *args], capture_output=True, text=True,
                                timeout=300, env=env, check=False)
        assert result.returncode in (0, 1, 2), result.stdout[-2000:] + result.stderr
        printed += result.stdout + result.stderr
    texts = {"output": printed, **_texts(tmp_path / "a"), **_texts(tmp_path / "b")}
    assert any(p.endswith("locust.log") for p in texts) and any("/evidence/http/" in p for p in texts)
    leaks = {secret[:6] + "...": [p for p, text in texts.items() if secret in text]
             for secret in _secrets(served)}
    assert not any(leaks.values()), leaks
    # what replaced them is there: the redaction happened, the evidence was not simply left out
    assert REDACTED in "".join(t for p, t in texts.items() if "/evidence/http/" in p)
    journal = [json.loads(line) for line in (tmp_path / "b" / "journal.ndjson").read_text().splitlines()]
    assert "--token " + REDACTED in journal[0]["command"]
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert [t["url"] for t in report["targets"] if t["id"] == "dw"] != []
    assert all(DB_PASSWORD not in t["url"] for t in report["targets"])


# ---- the rules, in-process -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("cannot connect to postgresql://omop:s3cr%40t@db.example:5432/cdm: refused",
     "cannot connect to postgresql://omop:[redacted]@db.example:5432/cdm: refused"),
    ("dsn=mysql+pymysql://root:hunter2@10.0.0.1/x and https://u:p@h/",
     "dsn=mysql+pymysql://root:[redacted]@10.0.0.1/x and https://u:[redacted]@h/"),
    ("postgresql://only-user@host/db", "postgresql://only-user@host/db"),
    ("vigie run --fhir https://h/fhir --token abc --out x", "vigie run --fhir https://h/fhir --token [redacted] --out x"),
    ("vigie run --token='a b c'", "vigie run --token=[redacted]"),
    ("GET /Patient?access_token=xyz&_count=1", "GET /Patient?access_token=[redacted]&_count=1"),
    ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer [redacted]"),
])
def test_redaction_in_any_text(text, expected):
    assert Redactor().text(text) == expected


def test_redaction_of_data_and_known_secrets():
    redact = Redactor(["t0k3n-of-the-run"])
    data = {"password": "x", "nested": [{"note": "token t0k3n-of-the-run used"}], "n": float("inf"),
            "deep": [[[[]]]]}
    for _ in range(100):
        data["deep"] = [data["deep"]]
    clean = redact.data(data)
    assert clean["password"] == REDACTED and clean["nested"][0]["note"] == f"token {REDACTED} used"
    assert clean["n"] == "inf"
    json.dumps(clean, allow_nan=False, indent=2)   # writable: no Infinity, no nesting beyond the writers


def test_a_database_url_is_shown_without_its_password():
    target = Target(id="dw", kind="warehouse", url="postgresql://omop:p%40ss@db:5432/cdm")
    assert target.public()["url"] == "postgresql://omop:[redacted]@db:5432/cdm"
    assert {"p%40ss", "p@ss"} <= set(target.secrets())
    assert strip_password("https://h/fhir") == "https://h/fhir"
