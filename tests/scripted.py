"""A scripted HTTPS server on loopback for the security checks' unit tests: each answer comes from a function
of the request, so that a test can give a check exactly the partial observation it is about (every token
refused, personal data answered 403, an empty search...). vigie talks to it through its real RecordingClient."""
from __future__ import annotations

import http.server
import itertools
import json
import threading
from contextlib import contextmanager
from pathlib import Path

from vigie.fixtures.practice import tlsmaterial

from vigie.campaign import Target
from vigie.http import RecordingClient

TOKEN = "main-token"
FHIR_JSON = "application/fhir+json"
GOOD_HEADERS = {"Strict-Transport-Security": "max-age=63072000", "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
_ids = itertools.count(1)


def bundle(*resources) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def outcome(code: str = "not-found") -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}


def reply(status: int, body: dict | str | None = None, headers: dict | None = None) -> tuple:
    """An answer: status, headers (the hardened ones unless given), body (JSON for a dict)."""
    return status, {**GOOD_HEADERS, **(headers or {})}, body


def bearer(headers) -> str | None:
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    return token if scheme.lower() == "bearer" else None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):   # the Server header: no version (http.server's names Python's)
        return "scripted"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, headers, body = self.server.answer(self.command, self.path, self.headers)
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or "").encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(body, dict):
            self.send_header("Content-Type", FHIR_JSON)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_OPTIONS = do_TRACE = _answer

    def log_message(self, *args):
        pass


@contextmanager
def scripted(answer, workdir: Path):
    """Serve `answer(method, path, headers) -> (status, headers, body)` over HTTPS under /fhir; yields a
    RecordingClient whose target has the token TOKEN and the roles reader and patient."""
    material = tlsmaterial.generate(workdir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.answer = lambda method, path, headers: answer(method, path.removeprefix("/fhir/"), headers)
    server.socket = tlsmaterial.server_context(material).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = Target(id=f"scripted-{next(_ids)}", kind="fhir", url=f"https://127.0.0.1:{server.server_address[1]}/fhir",
                    ca_file=str(material.ca_file), token=TOKEN,
                    tokens={"reader": "reader-token", "patient": "patient-token"})
    client = RecordingClient(target)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()
