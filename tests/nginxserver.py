"""A real nginx for the TLS tests: one non-daemon master with its own prefix and configuration in a temporary
folder, one HTTPS server block per configuration under test, each on its own 127.0.0.1 port.

Certificates are made with `cryptography` (sslyze's strict path validation refuses trustme's). Debian's
nginx package provides the binary; the tests skip with a clear reason where it is absent (CI installs it).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

LOCAL = "127.0.0.1"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
HSTS_TWO_YEARS = 'add_header Strict-Transport-Security "max-age=63072000" always;'
# RFC 2409 §6.2: the 1024-bit MODP group, a weak DH group to serve on purpose
MODP_1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)


@dataclass
class Site:
    """One server block: the certificates (names from `Pki.make`) and the TLS directives."""

    name: str
    certificates: list[str] = field(default_factory=lambda: ["ecdsa"])
    directives: list[str] = field(default_factory=list)
    port: int = 0


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """An ECDSA P-256 CA and the server certificates the sites use, written into `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.now = dt.datetime.now(dt.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._build(_name("vigie nginx test CA"), self.ca_key.public_key(), [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                           encipher_only=False, decipher_only=False), True)])
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))

    def _build(self, subject, public_key, extensions, valid_until=None) -> x509.Certificate:
        until = valid_until or self.now + dt.timedelta(days=30)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(_name("vigie nginx test CA"))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(min(self.now, until) - dt.timedelta(days=30))
                   .not_valid_after(until)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(self.ca_key, hashes.SHA256())

    def make(self, name: str, key, ocsp_url: str | None = None, valid_until=None,
             san: x509.GeneralName | None = None) -> tuple[Path, Path]:
        extensions = [
            (x509.SubjectAlternativeName([san or x509.IPAddress(ipaddress.ip_address(LOCAL))]), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), False)]
        if ocsp_url:
            extensions.append((x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), False))
        cert = self._build(_name(LOCAL), key.public_key(), extensions, valid_until)
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file


def standard_pki(folder: Path) -> Pki:
    """The certificates the test sites name: ecdsa, rsa2048, rsa1024, ecdsa-ocsp (names an OCSP responder
    that nothing answers), ecdsa-expired (since yesterday), ecdsa-other-host (for other.invalid, not the
    server's address), and dh1024.pem."""
    pki = Pki(folder)
    pki.make("ecdsa", ec.generate_private_key(ec.SECP256R1()))
    pki.make("rsa2048", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pki.make("rsa1024", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    pki.make("ecdsa-ocsp", ec.generate_private_key(ec.SECP256R1()), ocsp_url=f"http://{LOCAL}:9/ocsp")
    pki.make("ecdsa-expired", ec.generate_private_key(ec.SECP256R1()), valid_until=pki.now - dt.timedelta(days=1))
    pki.make("ecdsa-other-host", ec.generate_private_key(ec.SECP256R1()), san=x509.DNSName("other.invalid"))
    (folder / "dh1024.pem").write_bytes(dh.DHParameterNumbers(MODP_1024, 2).parameters().parameter_bytes(
        serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3))
    return pki


def _free_ports(count: int) -> list[int]:
    sockets = [socket.create_server((LOCAL, 0)) for _ in range(count)]
    try:
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _config(prefix: Path, pki: Pki, sites: list[Site]) -> str:
    blocks = []
    for site in sites:
        certs = "".join(f"        ssl_certificate {pki.folder / c}.pem;\n        ssl_certificate_key "
                        f"{pki.folder / c}.key;\n" for c in site.certificates)
        extra = "".join(f"        {d}\n" for d in site.directives)
        blocks.append(f"""    server {{
        listen {LOCAL}:{site.port} ssl;
        server_name localhost;
{certs}{extra}        location / {{ return 200 "vigie nginx test: {site.name}\\n"; }}
    }}
""")
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    server_tokens off;
    default_type text/plain;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
{"".join(blocks)}}}
"""


@contextmanager
def nginx(prefix: Path, pki: Pki, sites: list[Site], timeout: float = 15):
    """Start nginx with these sites (ports assigned here), yield them, stop it (SIGQUIT then SIGKILL)."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    for site, port in zip(sites, _free_ports(len(sites))):
        site.port = port
    conf = prefix / "nginx.conf"
    conf.write_text(_config(prefix, pki, sites))
    test = subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf)], check=False, capture_output=True,
                          text=True, timeout=timeout)
    if test.returncode:
        raise RuntimeError(f"nginx refused its configuration: {test.stderr.strip()}")
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        for site in sites:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {proc.stderr.read().strip()}")
                try:
                    socket.create_connection((LOCAL, site.port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not listen on {site.port} "
                                           f"within {timeout:g} s") from None
                    time.sleep(0.05)
        yield sites
    finally:
        proc.send_signal(signal.SIGQUIT)   # graceful: the master waits for its worker
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
