"""JSON Web Tokens as a client sees them: decoded without verification, and forged for access-control probes.

vigie never holds the target's keys: every forgery starts from a genuine token of the target and changes
one thing, so that a server that accepts the forgery shows exactly which verification it skips.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass


class NotAJwt(ValueError):
    """The token is not a compact JWS (three base64url parts, a JSON header and payload)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise NotAJwt("a part is not base64url") from exc


def _part(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Jwt:
    header: dict
    payload: dict
    signature: bytes
    raw: tuple[str, str] = ("", "")   # the header and payload parts as the issuer encoded them

    def encode(self) -> str:
        """The compact form; a part left unchanged keeps the issuer's bytes (its JSON spacing, key order)."""
        header, payload = self.raw
        original = decode(f"{header}.{payload}.") if header and payload else None
        return ".".join([header if original and original.header == self.header else _part(self.header),
                         payload if original and original.payload == self.payload else _part(self.payload),
                         b64url(self.signature)])


def decode(token: str) -> Jwt:
    """The token's parts, unverified; NotAJwt when it is not a compact JWS."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        raise NotAJwt("a JWT has three dot-separated parts")
    try:
        header, payload = json.loads(unb64url(parts[0])), json.loads(unb64url(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAJwt("the header or payload is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict) or "alg" not in header:
        raise NotAJwt("the header and payload must be JSON objects, the header with an alg")
    return Jwt(header, payload, unb64url(parts[2]), (parts[0], parts[1]))


def forge(token: str, kind: str, now: float | None = None) -> str:
    """A forgery of `token`:

    alg-none       header alg "none", same claims, empty signature (RFC 7519 §6 unsecured JWT)
    bad-signature  same header and claims, signature bytes flipped
    expired        exp an hour in the past, original signature (so only valid if the server skips checks)
    """
    jwt = decode(token)
    now = time.time() if now is None else now
    if kind == "alg-none":
        return Jwt({**jwt.header, "alg": "none"}, jwt.payload, b"", jwt.raw).encode()
    if kind == "bad-signature":
        flipped = bytes(b ^ 0xFF for b in jwt.signature) or b"\x00"
        return Jwt(jwt.header, jwt.payload, flipped, jwt.raw).encode()
    if kind == "expired":
        return Jwt(jwt.header, {**jwt.payload, "iat": int(now - 7200), "exp": int(now - 3600)}, jwt.signature,
                   jwt.raw).encode()
    raise ValueError(f"unknown forgery {kind!r}")


# tokens no server may accept, whatever its token format
MALFORMED = {
    "garbage": "vigie-not-a-token",
    "empty parts": "..",
    "truncated": None,      # the genuine token without its signature part
    "bad base64": "eyJhbGciOiJFUzI1NiJ9.%%%%.%%%%",
}


def malformed(token: str) -> dict[str, str]:
    """Malformed variants of `token` by name."""
    forged = dict(MALFORMED)
    forged["truncated"] = token.rsplit(".", 1)[0] if token.count(".") >= 1 else token[: len(token) // 2]
    return forged
