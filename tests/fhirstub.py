"""A small FHIR server for the FHIR checks' unit tests: plain HTTP on loopback, a CapabilityStatement and a
store given by the test, and one behaviour per switch, so that each test feeds a check exactly the partial
observation it is about (an empty server, a statement without search parameters, no self link...)."""
from __future__ import annotations

import http.server
import json
import threading
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode, urlsplit

from vigie.campaign import Target
from vigie.fhirrest import Capability
from vigie.http import RecordingClient

JSON = "application/fhir+json"


def capability(types: dict, **extra) -> dict:
    """A CapabilityStatement: types maps a type to its declaration (interaction codes, searchParam...)."""
    resources = [{"type": t, **{k: v for k, v in d.items() if k != "interactions"},
                  "interaction": [{"code": c} for c in d.get("interactions", ("read", "search-type"))]}
                 for t, d in types.items()]
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"], "rest": [{"mode": "server", "resource": resources}], **extra}


class FhirStub:
    """Serves `statement` at /fhir/metadata and the resources of `store` (type -> list): read, and search by
    _count (paged with next links), _id and the parameters of `filters` ((type, name) -> test(resource,
    value)). `unknown` says what other parameters do: "strict" (400 + OperationOutcome), "ignore" or
    "empty" (match nothing); `self_link` whether a searchset carries one."""

    def __init__(self, statement: dict, store: dict | None = None, filters: dict | None = None,
                 unknown: str = "strict", self_link: bool = True):
        self.statement, self.store, self.filters = statement, store or {}, filters or {}
        self.unknown, self.self_link = unknown, self_link
        self.requests: list[str] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                stub._reply(self, "GET", self.path, b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub._reply(self, "POST", self.path, body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- what the checks get -------------------------------------------------------------------------
    def target(self) -> Target:
        return Target(id="stub", kind="fhir", url=self.url, token="stub-token")

    def http(self) -> RecordingClient:
        return RecordingClient(self.target())

    def capability(self) -> Capability:
        return Capability(self.statement)

    # --- answers ------------------------------------------------------------------------------------
    def _reply(self, handler, method: str, raw_path: str, body: bytes):
        self.requests.append(f"{method} {raw_path}")
        parts = urlsplit(raw_path)
        query = parse_qsl(parts.query) + (parse_qsl(body.decode()) if method == "POST" else [])
        segments = [s for s in parts.path.split("/") if s][1:]       # after /fhir
        status, answer = self.answer(segments, dict(query))
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", JSON)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(self, segments: list[str], query: dict) -> tuple[int, dict]:
        if segments == ["metadata"]:
            return 200, self.statement
        if len(segments) == 2 and segments[1] == "_search":
            segments = segments[:1]
        if len(segments) == 1 and segments[0] in self.store:
            return self.search(segments[0], query)
        if len(segments) == 2 and segments[0] in self.store:
            found = [r for r in self.store[segments[0]] if r.get("id") == segments[1]]
            if found:
                return 200, found[0]
        return 404, outcome("not-found", "/".join(segments))

    def search(self, rtype: str, query: dict) -> tuple[int, dict]:
        count, offset = int(query.pop("_count", 20)), int(query.pop("_offset", 0))
        matches = list(self.store[rtype])
        applied = {}
        for name, value in query.items():
            test = self.filters.get((rtype, name)) or ((lambda r, v: r.get("id") == v) if name == "_id" else None)
            if test is not None:
                matches = [r for r in matches if test(r, value)]
                applied[name] = value
            elif self.unknown == "strict" and not name.startswith("_"):
                return 400, outcome("not-supported", f"unknown search parameter {name}")
            elif self.unknown == "empty":
                matches = []
        page = matches[offset:offset + count]
        links = []
        if self.self_link:
            links.append({"relation": "self", "url": f"{self.url}/{rtype}?{urlencode({**applied, '_count': count})}"})
        if offset + count < len(matches):
            links.append({"relation": "next", "url": f"{self.url}/{rtype}?"
                                                     f"{urlencode({**applied, '_count': count, '_offset': offset + count})}"})
        return 200, {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "link": links,
                     "entry": [{"fullUrl": f"{self.url}/{rtype}/{r.get('id')}", "resource": r,
                                "search": {"mode": "match"}} for r in page]}


def outcome(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code,
                                                           "diagnostics": text}]}


def requirement(**params) -> SimpleNamespace:
    return SimpleNamespace(id="TEST-01", params=params, profile="test")
