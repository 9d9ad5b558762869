"""A raw TLS 1.0-1.2 ClientHello and the ServerHello it gets back, byte by byte.

It observes what the scanner library does not report: whether the server agrees to encrypt-then-MAC
(RFC 7366) on a CBC suite, and which of two offered suites it picks (its own order or the client's).
Python's ssl can neither offer that extension on purpose nor show the server's extensions, and a few
bytes on a socket are simpler and steadier than driving OpenSSL to do it.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from functools import cache

VERSIONS = {"TLSv1.0": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303}
EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_RENEGOTIATION_INFO = 0xFF01
# x25519, secp256r1, secp384r1, secp521r1, x448, brainpoolP256/384/512r1, ffdhe2048..8192: as wide as a
# browser, so that the probe is refused for the suites it offers and never for a missing group.
_GROUPS = (29, 23, 24, 25, 30, 26, 27, 28, 256, 257, 258, 259, 260)
# ECDSA and RSA (PSS and PKCS#1) with SHA-2, Ed25519/Ed448, then SHA-1 last for old servers.
_SIGNATURE_ALGORITHMS = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
                         0x0807, 0x0808, 0x0203, 0x0201)
_RECORD_HANDSHAKE, _RECORD_ALERT = 22, 21
_SERVER_HELLO = 2
_MAX_HELLO = 1 << 16


class HelloError(Exception):
    """The exchange could not be completed (not a refusal: a broken or silent peer)."""


@dataclass(frozen=True)
class ServerHello:
    version: int
    cipher_suite: int
    extensions: tuple[int, ...]


def _vector(data: bytes, length_bytes: int) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _extension(kind: int, body: bytes = b"") -> bytes:
    return struct.pack("!H", kind) + _vector(body, 2)


def client_hello(version: int, suites: list[int], server_name: str | None = None) -> bytes:
    """The record carrying a ClientHello for `version` that offers `suites`, encrypt-then-MAC and the usual
    extensions; the renegotiation SCSV is added so that servers requiring RFC 5746 answer."""
    extensions = [
        _extension(EXT_SUPPORTED_GROUPS, _vector(b"".join(struct.pack("!H", g) for g in _GROUPS), 2)),
        _extension(EXT_EC_POINT_FORMATS, _vector(b"\x00", 1)),
        _extension(EXT_ENCRYPT_THEN_MAC),
        _extension(EXT_EXTENDED_MASTER_SECRET),
    ]
    if version >= VERSIONS["TLSv1.2"]:   # the extension does not exist before TLS 1.2
        algorithms = b"".join(struct.pack("!H", a) for a in _SIGNATURE_ALGORITHMS)
        extensions.append(_extension(EXT_SIGNATURE_ALGORITHMS, _vector(algorithms, 2)))
    if server_name and not _is_ip(server_name):   # RFC 6066: literal addresses are not sent
        name = server_name.encode("idna")
        extensions.insert(0, _extension(EXT_SERVER_NAME, _vector(b"\x00" + _vector(name, 2), 2)))
    body = (struct.pack("!H", version) + os.urandom(32) + _vector(b"", 1)
            + _vector(b"".join(struct.pack("!H", s) for s in [*suites, 0x00FF]), 2)
            + _vector(b"\x00", 1) + _vector(b"".join(extensions), 2))
    handshake = bytes([1]) + _vector(body, 3)
    # The record layer says TLS 1.0, as browsers do: some servers drop a first record marked higher.
    return bytes([_RECORD_HANDSHAKE]) + struct.pack("!H", 0x0301) + _vector(handshake, 2)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_server_hello(message: bytes) -> ServerHello:
    """A ServerHello handshake message (type, length, body) into its version, suite and extension types."""
    if len(message) < 4 or message[0] != _SERVER_HELLO:
        raise HelloError(f"expected a ServerHello, got handshake message type {message[:1].hex() or 'none'}")
    try:
        body = message[4:4 + int.from_bytes(message[1:4], "big")]
        version = struct.unpack_from("!H", body, 0)[0]
        at = 2 + 32
        at += 1 + body[at]                       # session id
        suite = struct.unpack_from("!H", body, at)[0]
        at += 2 + 1                              # suite, compression method
        extensions = []
        if at < len(body):
            end = at + 2 + struct.unpack_from("!H", body, at)[0]
            at += 2
            while at < end:
                kind, size = struct.unpack_from("!HH", body, at)
                extensions.append(kind)
                at += 4 + size
    except (IndexError, struct.error):
        raise HelloError("truncated ServerHello") from None
    return ServerHello(version, suite, tuple(extensions))


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed")
        data += chunk
    return data


def exchange(host: str, port: int, version: str, suites: list[int], server_name: str | None = None,
             timeout: float = 5) -> ServerHello | None:
    """Send one ClientHello; the ServerHello, or None when the server refuses (an alert, or a close before
    any handshake byte). Raises HelloError when the peer is silent or answers something else than TLS."""
    hello = client_hello(VERSIONS[version], suites, server_name)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(hello)
            handshake = b""
            while True:
                try:
                    kind, _, length = struct.unpack("!BHH", _read_exact(sock, 5))
                except ConnectionResetError:
                    if handshake:
                        raise HelloError("connection closed in the middle of the ServerHello") from None
                    return None
                payload = _read_exact(sock, length)
                if kind == _RECORD_ALERT and not handshake:
                    return None
                if kind != _RECORD_HANDSHAKE or len(handshake) > _MAX_HELLO:
                    raise HelloError(f"unexpected TLS record type {kind} before the ServerHello")
                handshake += payload
                if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
                    return parse_server_hello(handshake)
    except TimeoutError:
        raise HelloError(f"no answer within {timeout:g} s") from None
    except ConnectionResetError:
        return None   # a reset before any record is how some stacks refuse a hello
    except OSError as exc:
        raise HelloError(exc.strerror or str(exc)) from None


@cache
def suite_codes() -> dict[str, int]:
    """OpenSSL cipher name -> IANA code point, for every suite this Python's OpenSSL knows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}
