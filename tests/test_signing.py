"""Integrity of a report bundle: keygen, manifest, Ed25519 signature, in-toto/DSSE attestation, and
`vigie verify` catching every change (a byte, a deletion, an addition, a rename) on a real signed bundle."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from reportbundle import copy_of, signed_bundle, vigie

from vigie.errors import VigieError
from vigie.signing import (
    ATTESTATION,
    MANIFEST,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    SIGNATURE,
    STATEMENT_TYPE,
    load_public_key,
    pae,
    verify,
)

# byte positions changed per file: first, middle, last and random ones; more in the seal files, whose every
# part (manifest, signature, envelope) must count
POSITIONS_PER_FILE = 4
POSITIONS_PER_SEAL_FILE = 16


@pytest.fixture(scope="module")
def signed():
    return signed_bundle()


@pytest.fixture
def bundle(signed, tmp_path):
    """A private copy of the signed bundle, free to damage."""
    return copy_of(signed.path, tmp_path)


def key_id_from_pem(path: Path) -> str:
    """The key id computed independently of vigie: sha256 of the DER inside the PEM armour."""
    body = "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))
    return "sha256:" + hashlib.sha256(base64.b64decode(body)).hexdigest()


# --- keygen ---------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_readable_by_its_owner_only(tmp_path):
    result = vigie("keygen", str(tmp_path / "k"))
    assert result.returncode == 0, result.stderr
    mode = stat.S_IMODE((tmp_path / "k").stat().st_mode)
    assert mode == 0o600
    assert (tmp_path / "k").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert key_id_from_pem(tmp_path / "k.pub") in result.stdout


def test_keygen_never_overwrites_a_key(tmp_path):
    (tmp_path / "k").write_text("precious")
    result = vigie("keygen", str(tmp_path / "k"))
    assert result.returncode == 3 and "already exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "k").read_text() == "precious"


@pytest.mark.parametrize("content, message", [
    ("not a key", "not a PEM private key"),
    (None, "no such key file"),
])
def test_a_bad_signing_key_is_a_usage_error_before_the_run(tmp_path, content, message):
    key = tmp_path / "bad.pem"
    if content is not None:
        key.write_text(content)
    result = vigie("demo", "--profile", "fhir-r4-rest", "--sign-key", str(key), "--out", str(tmp_path / "b"))
    assert result.returncode == 3 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "b").exists()


# --- what a signed run writes ---------------------------------------------------------------------------


def test_signed_run_verifies_only_against_a_trusted_key(signed):
    with_key = vigie("verify", str(signed.path), "--key", str(signed.public))
    assert with_key.returncode == 0, with_key.stdout
    assert "intact" in with_key.stdout and key_id_from_pem(signed.public) in with_key.stdout
    # intact, but nobody said whose key is to be trusted: not a pass for a CI gate
    without = vigie("verify", str(signed.path))
    assert without.returncode == 2 and "give --key" in without.stdout
    assert vigie("verify", str(signed.path), "--integrity-only").returncode == 0


def test_verify_says_which_run_it_is(signed):
    """An older bundle put in place of a newer one verifies: the run, its dates, targets and verdict printed
    let the reader tell."""
    report = json.loads((signed.path / "report.json").read_text())
    out = vigie("verify", str(signed.path), "--key", str(signed.public)).stdout
    assert f"run {report['run']['id']}, started {report['run']['started']}" in out
    target = report["targets"][0]
    assert f"verdict: {report['verdict']}" in out and f"targets: {target['id']} {target['url']}" in out, out


def test_trusted_keys_from_a_keyring_or_the_environment(signed, tmp_path):
    assert vigie("keygen", str(tmp_path / "other")).returncode == 0
    ring = tmp_path / "ring.pem"
    ring.write_bytes((tmp_path / "other.pub").read_bytes() + Path(signed.public).read_bytes())
    assert vigie("verify", str(signed.path), "--key", str(ring)).returncode == 0
    env = {**os.environ, "VIGIE_TRUSTED_KEYS": f"{tmp_path / 'other.pub'}{os.pathsep}{signed.public}"}
    result = subprocess.run([sys.executable, "-m", "vigie", "verify", str(signed.path)], capture_output=True,
                            text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout
    env["VIGIE_TRUSTED_KEYS"] = str(tmp_path / "other.pub")
    result = subprocess.run([sys.executable, "-m", "vigie", "verify", str(signed.path)], capture_output=True,
                            text=True, env=env, check=False)
    assert result.returncode == 2 and "UNKNOWN KEY" in result.stdout


def test_manifest_lists_every_file_but_the_seal(signed):
    manifest = json.loads((signed.path / MANIFEST).read_text())
    on_disk = {p.relative_to(signed.path).as_posix() for p in signed.path.rglob("*") if p.is_file()}
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == on_disk - {MANIFEST, SIGNATURE, ATTESTATION}
    assert {"report.json", "report.html", "report.pdf", "junit.xml", "results.sarif", "summary.md",
            "journal.ndjson"} <= set(listed)
    for rel, entry in listed.items():
        data = (signed.path / rel).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["signer"]["keyid"] == key_id_from_pem(signed.public)


def test_attestation_is_an_in_toto_statement_in_a_dsse_envelope(signed):
    envelope = json.loads((signed.path / ATTESTATION).read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    (sig,) = envelope["signatures"]
    assert sig["keyid"] == key_id_from_pem(signed.public)
    load_public_key(signed.public).verify(base64.b64decode(sig["sig"]), pae(PAYLOAD_TYPE, payload))
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    statement = json.loads(payload)
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    manifest = json.loads((signed.path / MANIFEST).read_text())
    assert statement["subject"] == [{"name": f["path"], "digest": {"sha256": f["sha256"]}}
                                    for f in manifest["files"]]
    report = json.loads((signed.path / "report.json").read_text())
    predicate = statement["predicate"]
    assert predicate["verdict"] == report["verdict"] == "non-conformant"
    assert predicate["suite_digest"] == report["run"]["suite_digest"]
    assert predicate["tool"] == {"name": "vigie", "version": report["run"]["tool_version"]}
    assert [(p["id"], p["version"], p["digest"], p["verdict"]) for p in predicate["profiles"]] == \
        [(p["id"], p["version"], p["digest"], p["verdict"]) for p in report["profiles"]]
    assert report["run"]["signer"] == sig["keyid"]


# --- tampering ------------------------------------------------------------------------------------------


def _positions(size: int, rng: random.Random, count: int) -> list[int]:
    fixed = {0, size // 2, size - 1}
    return sorted(fixed | {rng.randrange(size) for _ in range(count - len(fixed))})


def test_every_single_byte_change_is_detected(bundle, signed):
    public = load_public_key(signed.public)
    rng = random.Random(7)
    # an empty file has no byte to change; deleting it is tested below
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.stat().st_size)
    assert {MANIFEST, SIGNATURE, ATTESTATION} <= {p.name for p in files}
    tried = 0
    for path in files:
        original = path.read_bytes()
        seal = path.name in (MANIFEST, SIGNATURE, ATTESTATION)
        for pos in _positions(len(original), rng, POSITIONS_PER_SEAL_FILE if seal else POSITIONS_PER_FILE):
            changed = bytearray(original)
            changed[pos] ^= 0x01  # the smallest change there is: one bit of one byte
            path.write_bytes(bytes(changed))
            # against the trusted key, and for the seal (where the two differ) against the key the bundle names
            for key in (public, None) if seal else (public,):
                result = verify(bundle, key)
                assert result.problems, f"{path.relative_to(bundle)} byte {pos} changed, not detected (key={key})"
            tried += 1
        path.write_bytes(original)
    assert tried >= 3 * len(files) + 3 * (POSITIONS_PER_SEAL_FILE - POSITIONS_PER_FILE)
    assert verify(bundle, public).intact  # every byte restored: intact again


def test_a_changed_file_is_named(bundle, signed):
    report = bundle / "report.json"
    report.write_text(report.read_text().replace('"non-conformant"', '"conformant"'))
    result = vigie("verify", str(bundle), "--key", str(signed.public))
    assert result.returncode == 1
    assert f"{bundle}: changed: report.json (its sha256 no longer matches the manifest)" in result.stdout.splitlines()


@pytest.mark.parametrize("name", ["report.json", "report.pdf", "evidence", MANIFEST, SIGNATURE, ATTESTATION])
def test_a_deleted_file_is_detected(bundle, signed, name):
    victim = bundle / name
    if victim.is_dir():
        victim = min(p for p in victim.rglob("*") if p.is_file())
    rel = victim.relative_to(bundle).as_posix()
    victim.unlink()
    result = vigie("verify", str(bundle), "--key", str(signed.public))
    assert result.returncode == 1
    assert f"{bundle}: missing: {rel}" in result.stdout, result.stdout


@pytest.mark.parametrize("rel", ["notes.txt", "evidence/http/extra.json", ".hidden"])
def test_an_added_file_is_detected(bundle, signed, rel):
    (bundle / rel).write_text("{}")
    result = vigie("verify", str(bundle), "--key", str(signed.public))
    assert result.returncode == 1 and f"extra: {rel}" in result.stdout


def test_a_renamed_file_is_named_as_such(bundle, signed):
    old = next(p for p in sorted((bundle / "evidence").rglob("*.json")))
    new = old.with_name("renamed.json")
    old.rename(new)
    result = verify(bundle, load_public_key(signed.public))
    assert result.problems == [f"renamed: {old.relative_to(bundle).as_posix()} -> {new.relative_to(bundle).as_posix()}"]


def test_another_key_is_an_unknown_key(bundle, tmp_path):
    assert vigie("keygen", str(tmp_path / "other")).returncode == 0
    result = vigie("verify", str(bundle), "--key", str(tmp_path / "other.pub"))
    assert result.returncode == 2 and "UNKNOWN KEY" in result.stdout


def test_a_bundle_resigned_by_someone_else_fails_against_the_trusted_key(bundle, signed, tmp_path):
    """Whoever edits a bundle can sign it again with their own key; only --key tells."""
    assert vigie("keygen", str(tmp_path / "forger")).returncode == 0
    assert vigie("report", str(bundle), "--format", "md", "--sign-key", str(tmp_path / "forger")).returncode != 3
    assert vigie("verify", str(bundle), "--integrity-only").returncode == 0  # self-consistent...
    assert vigie("verify", str(bundle)).returncode == 2                      # ...signed by nobody trusted
    result = vigie("verify", str(bundle), "--key", str(signed.public))
    assert result.returncode == 2 and "UNKNOWN KEY" in result.stdout  # ...and not by the trusted key


# --- unsigned bundles and re-rendering ------------------------------------------------------------------


def test_rerendering_without_a_key_drops_the_stale_signature(bundle, signed):
    result = vigie("report", str(bundle), "--format", "md")
    assert "previous signature was removed" in result.stdout
    assert not (bundle / SIGNATURE).exists() and not (bundle / ATTESTATION).exists()
    plain = vigie("verify", str(bundle), "--integrity-only")
    assert plain.returncode == 0 and "NOT SIGNED" in plain.stdout
    required = vigie("verify", str(bundle), "--key", str(signed.public))
    assert required.returncode == 2 and "NOT SIGNED" in required.stdout
    # an unsigned manifest still catches a change
    (bundle / "summary.md").write_text("all good")
    changed = vigie("verify", str(bundle))
    assert changed.returncode == 1 and "changed: summary.md" in changed.stdout


def test_rerendering_with_the_key_signs_again(bundle, signed):
    result = vigie("report", str(bundle), "--sign-key", str(signed.key))
    assert result.returncode == 1  # the exit code of the verdict: non-conformant
    assert vigie("verify", str(bundle), "--key", str(signed.public)).returncode == 0
    assert json.loads((bundle / "report.json").read_text())["run"]["signer"] == key_id_from_pem(signed.public)


def test_a_signature_without_a_signer_is_reported(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["signer"] = None
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    result = verify(bundle)
    assert any("names no signer" in p for p in result.problems)


@pytest.mark.parametrize("args, message", [
    (["verify", "/no/such/bundle"], "not a report bundle folder"),
    (["verify", ".", "--key", "/no/such.pub"], "no such key file"),
])
def test_verify_usage_errors(args, message):
    result = vigie(*args)
    assert result.returncode == 3 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_rejects_a_private_key_given_as_public(signed):
    with pytest.raises(VigieError, match="not a PEM public key"):
        load_public_key(signed.key)


def test_a_manifest_pointing_outside_the_bundle_is_refused(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"].append({"path": "../outside.txt", "size": 0, "sha256": "0" * 64})
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    result = verify(bundle)
    assert any("outside the bundle: ../outside.txt" in p for p in result.problems)


def test_a_bundle_without_manifest(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    result = vigie("verify", str(tmp_path))
    assert result.returncode == 1 and "missing: manifest.json" in result.stdout


def test_the_signed_statement_names_the_product(signed):
    envelope = json.loads((signed.path / ATTESTATION).read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["product"] == json.loads((signed.path / "report.json").read_text())["product"]
    assert predicate["product"]["name"] == "vigie-reference"
