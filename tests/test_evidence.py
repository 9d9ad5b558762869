"""Redaction: tokens, cookies and passwords never reach the evidence."""
import json

from vigie.evidence import REDACTED, EvidenceStore, Redactor


def test_redacts_headers_known_secrets_and_fields(tmp_path):
    store = EvidenceStore(tmp_path, Redactor(["s3cr3t-token-value"]))
    path = store.write_json("http/x.json", {
        "headers": {"Authorization": "Bearer abc.def", "Cookie": "sid=1", "Accept": "application/json"},
        "url": "https://h/x?access_token=zzz&q=1",
        "body": "echo s3cr3t-token-value and Bearer eyJhbGciOi.xx.yy",
        "password": "hunter2"})
    text = (tmp_path / path).read_text()
    for secret in ("s3cr3t-token-value", "zzz", "hunter2", "eyJhbGciOi"):
        assert secret not in text
    data = json.loads(text)
    assert data["password"] == REDACTED
    assert data["url"] == f"https://h/x?access_token={REDACTED}&q=1"
    assert Redactor().headers({"Authorization": "Bearer x", "Set-Cookie": "a=b", "X": "y"}) == \
        {"Authorization": REDACTED, "Set-Cookie": REDACTED, "X": "y"}
