"""Integrity of a report bundle: a manifest of every file (size, sha256), an Ed25519 detached signature of
the manifest, and an in-toto Statement in a DSSE envelope; `verify` checks all of it offline.

Signing is a seal: it comes last, after every rendering, and anything written into the bundle afterwards
(a new rendering, a changed byte) shows up in `verify`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import VigieError

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ATTESTATION = "attestation.dsse.json"
# the seal itself is not listed in what it seals
SEAL_FILES = (MANIFEST, SIGNATURE, ATTESTATION)
MANIFEST_SCHEMA = "vigie-manifest/1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://vigie.dev/attestation/report/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


# ----------------------------------------------------------------------------------------------- keys

def generate_key(path: Path) -> str:
    """Writes an Ed25519 private key (PKCS#8 PEM, mode 600) to `path` and its public key to `path`.pub;
    returns the key id."""
    path = Path(path)
    pub = public_path(path)
    for p in (path, pub):
        if p.exists():
            raise VigieError(f"{p} already exists: choose another file name (vigie never overwrites a key)")
    if not path.parent.is_dir():
        raise VigieError(f"{path.parent}: no such folder")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # created with mode 600 from the start: the key is never readable by others, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(public_pem(key.public_key()))
    return key_id(key.public_key())


def public_path(path: Path) -> Path:
    return Path(str(path) + ".pub")


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public: Ed25519PublicKey) -> str:
    """The key's fingerprint: sha256 of its DER SubjectPublicKeyInfo (what `openssl pkey -pubout -outform
    DER | sha256sum` prints)."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_private_key(path) -> Ed25519PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise VigieError(f"{path}: the key is protected by a password; vigie needs an unencrypted key") from None
    except ValueError:
        raise VigieError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VigieError(f"{path}: not an Ed25519 key (make one with `vigie keygen`)")
    return key


def load_public_key(path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise VigieError(f"{path}: not a PEM public key (give the .pub file written by `vigie keygen`)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VigieError(f"{path}: not an Ed25519 public key")
    return key


def _read_key_file(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise VigieError(f"{path}: no such key file") from None
    except OSError as exc:
        raise VigieError(f"{path}: cannot read the key: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------------------------- sealing

def bundle_files(bundle: Path) -> list[str]:
    """Every regular file of the bundle (relative POSIX paths, sorted), the seal files excepted."""
    bundle = Path(bundle)
    found = []
    for path in bundle.rglob("*"):
        rel = path.relative_to(bundle).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in SEAL_FILES:
            found.append(rel)
    return sorted(found)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_manifest(bundle: Path, signer: dict | None) -> dict:
    files = []
    for rel in bundle_files(bundle):
        path = Path(bundle) / rel
        if path.is_symlink():  # a link could make the manifest vouch for a file outside the bundle
            raise VigieError(f"{path}: a symbolic link in a bundle cannot be sealed")
        files.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    return {"schema": MANIFEST_SCHEMA, "algorithm": "sha256", "signer": signer, "files": files}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature signs."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(manifest: dict, report: dict) -> dict:
    run = report.get("run", {})
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in manifest["files"]],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run": {k: run.get(k) for k in ("id", "started", "finished", "complete", "command")},
            "tool": {"name": "vigie", "version": run.get("tool_version")},
            "suite_digest": run.get("suite_digest"),
            "environment": run.get("environment", {}),
            "fhir_packages": run.get("fhir_packages", []),
            "product": report.get("product"),
            "targets": report.get("targets", []),
            "verdict": report.get("verdict"),
            "profiles": [{k: p.get(k) for k in ("id", "version", "digest", "verdict", "counts")}
                         for p in report.get("profiles", [])],
        },
    }


def seal(bundle: Path, key: Ed25519PrivateKey | None = None) -> dict:
    """Writes manifest.json; with a key, also manifest.sig and attestation.dsse.json. Without a key, any
    previous signature is removed: it no longer matches what the bundle holds."""
    bundle = Path(bundle)
    signer = None
    if key is not None:
        public = key.public_key()
        signer = {"keyid": key_id(public), "public_key": public_pem(public).decode()}
    manifest = make_manifest(bundle, signer)
    body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    (bundle / MANIFEST).write_bytes(body)
    if key is None:
        for name in (SIGNATURE, ATTESTATION):
            (bundle / name).unlink(missing_ok=True)
        return manifest
    (bundle / SIGNATURE).write_bytes(key.sign(body))
    report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    payload = json.dumps(statement(manifest, report), indent=2, ensure_ascii=False).encode()
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": signer["keyid"], "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload)))
                                .decode()}]}
    (bundle / ATTESTATION).write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    return manifest


# ----------------------------------------------------------------------------------------------- verifying

@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)   # what breaks the bundle's integrity
    signer: str | None = None   # key id of a valid signature (by the key the manifest names)
    signed: bool = False
    trusted: bool = False       # the signer is one of the keys the caller trusts
    files: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def load_trusted_keys(paths) -> list[Ed25519PublicKey]:
    """The public keys of each file given (a .pub file, or a keyring: several PEM public keys one after the
    other)."""
    keys = []
    for path in paths:
        blocks = _pem_blocks(_read_key_file(path))
        if not blocks:
            raise VigieError(f"{path}: not a PEM public key (give the .pub file written by `vigie keygen`)")
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block)
            except ValueError:
                raise VigieError(f"{path}: not a PEM public key (give the .pub file written by `vigie keygen`)") \
                    from None
            if not isinstance(key, Ed25519PublicKey):
                raise VigieError(f"{path}: holds a public key that is not Ed25519")
            keys.append(key)
    return keys


def _pem_blocks(data: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----"
    blocks, rest = [], data
    while begin in rest:
        start = rest.index(begin)
        stop = rest.find(end, start)
        if stop < 0:
            break
        blocks.append(rest[start:stop + len(end)] + b"\n")
        rest = rest[stop + len(end):]
    return blocks


def verify(bundle: Path, trusted=None) -> Verification:
    """Checks the manifest against the files, then the signature and the attestation against the key the
    manifest names, then whether that key is one of `trusted` (a public key or a list of them). Every problem
    found is listed; nothing stops at the first one. Integrity and trust are reported apart: a bundle
    re-signed by whoever edited it is intact, and trusted only if its signer is a key the caller trusts."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise VigieError(f"{bundle}: not a report bundle folder")
    if isinstance(trusted, Ed25519PublicKey):
        trusted = [trusted]
    trusted_ids = {key_id(k) for k in trusted or []}
    result = Verification()
    try:
        body = (bundle / MANIFEST).read_bytes()
    except FileNotFoundError:
        result.problems.append(f"missing: {MANIFEST} (the bundle has no manifest; nothing can be verified)")
        return result
    manifest = _parse_manifest(body, result)
    if manifest is not None:
        _check_files(bundle, manifest, result)
    _check_signature(bundle, body, manifest, result)
    result.trusted = result.signed and result.signer in trusted_ids
    return result


def _parse_manifest(body: bytes, result: Verification) -> dict | None:
    try:
        manifest = json.loads(body)
        files = manifest["files"]
        if manifest.get("schema") != MANIFEST_SCHEMA or not all(
                isinstance(f["path"], str) and isinstance(f["size"], int) and isinstance(f["sha256"], str)
                for f in files):
            raise ValueError
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
        result.problems.append(f"changed: {MANIFEST} is not a {MANIFEST_SCHEMA} manifest")
        return None
    # a crafted manifest must not make verify read files outside the bundle
    outside = [f["path"] for f in files if f["path"].startswith("/") or ".." in f["path"].split("/")]
    if outside:
        result.problems.append(f"changed: {MANIFEST} lists paths outside the bundle: {', '.join(outside)}")
        return None
    return manifest


def _check_files(bundle: Path, manifest: dict, result: Verification) -> None:
    listed = {f["path"]: f for f in manifest["files"]}
    result.files = len(listed)
    present = set(bundle_files(bundle))
    missing = [p for p in listed if p not in present]
    extra = sorted(present - set(listed))
    extra_digest = {}
    for rel in extra:
        path = bundle / rel
        extra_digest[rel] = None if path.is_symlink() else sha256_file(path)
    for rel in missing:
        # a missing file whose exact bytes sit under another name was renamed (or moved)
        moved = next((e for e in extra if extra_digest.get(e) == listed[rel]["sha256"]), None)
        if moved:
            extra.remove(moved)
            result.problems.append(f"renamed: {rel} -> {moved}")
        else:
            result.problems.append(f"missing: {rel}")
    for rel in extra:
        result.problems.append(f"extra: {rel} (not in the manifest)")
    for rel, entry in listed.items():
        path = bundle / rel
        if rel not in present:
            continue
        if path.is_symlink():
            result.problems.append(f"changed: {rel} is now a symbolic link")
        elif path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            result.problems.append(f"changed: {rel} (its sha256 no longer matches the manifest)")


def _check_signature(bundle: Path, body: bytes, manifest: dict | None, result: Verification) -> None:
    sig_path, att_path = bundle / SIGNATURE, bundle / ATTESTATION
    declared = (manifest or {}).get("signer")
    if not sig_path.exists() and not att_path.exists() and not declared:
        return
    for path in (sig_path, att_path):
        if not path.exists():
            result.problems.append(f"missing: {path.name}")
    public = _embedded_key(declared, result) if manifest is not None else None
    if public is None:
        if declared is None and (sig_path.exists() or att_path.exists()):
            result.problems.append(f"changed: {MANIFEST} names no signer but the bundle holds a signature")
        return
    # the signature proves the bundle is as its signer left it; who the signer is, only a trusted key tells
    expected = key_id(public)
    if sig_path.exists():
        try:
            public.verify(sig_path.read_bytes(), body)
            result.signed, result.signer = True, expected
        except InvalidSignature:
            result.problems.append(f"bad signature: {SIGNATURE} does not match {MANIFEST} under key {expected}")
    if att_path.exists():
        _check_attestation(att_path, manifest, public, expected, result)


def _embedded_key(declared, result: Verification) -> Ed25519PublicKey | None:
    if declared is None:
        return None
    try:
        key = serialization.load_pem_public_key(declared["public_key"].encode())
        if not isinstance(key, Ed25519PublicKey) or key_id(key) != declared["keyid"]:
            raise ValueError
        return key
    except (ValueError, KeyError, TypeError, AttributeError):
        result.problems.append(f"changed: the signer named in {MANIFEST} is not a valid Ed25519 public key")
        return None


def _b64decode(text: str) -> bytes:
    """Strict base64: a string that decodes but is not the canonical encoding of its bytes (changed
    padding bits) is refused, so that no change to the envelope goes unnoticed."""
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text:
        raise ValueError("non-canonical base64")
    return data


def _check_attestation(path: Path, manifest: dict | None, public, expected: str, result: Verification) -> None:
    try:
        envelope = json.loads(path.read_bytes())
        payload = _b64decode(envelope["payload"])
        payload_type = envelope["payloadType"]
        signatures = envelope["signatures"]
        sigs = [(s["keyid"], _b64decode(s["sig"])) for s in signatures]
    except (ValueError, KeyError, TypeError, RecursionError):
        result.problems.append(f"changed: {ATTESTATION} is not a DSSE envelope")
        return
    if payload_type != PAYLOAD_TYPE:
        result.problems.append(f"changed: {ATTESTATION} payloadType is {payload_type!r}, not {PAYLOAD_TYPE}")
    valid = False
    for keyid, sig in sigs:
        try:
            public.verify(sig, pae(payload_type, payload))
            valid = valid or keyid == expected
        except InvalidSignature:
            continue
    if not valid:
        result.problems.append(f"bad signature: {ATTESTATION} is not signed by key {expected}")
        return
    try:
        stmt = json.loads(payload)
        subjects = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    except (ValueError, KeyError, TypeError):
        result.problems.append(f"changed: the statement in {ATTESTATION} is not an in-toto Statement")
        return
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        result.problems.append(f"changed: the statement in {ATTESTATION} has an unexpected type")
    if manifest is not None and subjects != {f["path"]: f["sha256"] for f in manifest["files"]}:
        result.problems.append(f"changed: the subjects of {ATTESTATION} differ from {MANIFEST}")
