"""The CDA documents a FHIR server serves: its DocumentReferences searched (pages, count and time capped),
each CDA attachment fetched through the recording client (inline `data`, else `url` resolved against the
base URL: a Binary read as its own media type, or as a FHIR Binary resource). A document that cannot be
fetched is kept as unreadable with the reason, so that no check passes on it; a search that fails is an
ObservationError."""
from __future__ import annotations

import base64
import binascii
import time

from ..errors import ObservationError
from ..fhirrest import json_object, link_of, resources_of
from ..http import RecordingClient
from .document import CdaDocument, parse_document

# the media types a CDA document is attached with (IHE XDS / the ANS's DMP: text/xml; HL7's own)
CDA_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml", "application/cda+xml")
PAGE_SIZE, MAX_PAGES = 50, 10
MAX_DOCUMENTS = 200
TIME_LIMIT_S = 300


def is_cda(attachment: dict) -> bool:
    media = attachment.get("contentType")
    return isinstance(media, str) and media.split(";")[0].strip().lower() in CDA_TYPES


def _unread(name: str, reason: str) -> CdaDocument:
    return CdaDocument(name, b"", f"not fetched: {reason}", fetched=False)


def _decoded(name: str, data: str, not_base64: str) -> CdaDocument:
    try:
        return parse_document(base64.b64decode(data, validate=True), name)
    except (binascii.Error, ValueError):
        return _unread(name, not_base64)


def fetch(client, name: str, attachment: dict) -> CdaDocument:
    """The document an attachment carries: its `data`, else what its `url` serves."""
    data = attachment.get("data")
    if isinstance(data, str):
        return _decoded(name, data, "its attachment.data is not base64")
    url = attachment.get("url")
    if not isinstance(url, str) or not url:
        return _unread(name, "its attachment has neither data nor url")
    media = attachment["contentType"].split(";")[0].strip()
    try:
        response = client.get(url, headers={"Accept": f"{media}, application/fhir+json;q=0.5"})
    except ObservationError as exc:
        return _unread(name, str(exc))
    if response.status_code != 200:
        return _unread(name, f"GET {url} answered {response.status_code}")
    if getattr(response, "truncated", False):
        return _unread(name, f"GET {url}: the body is larger than vigie reads")
    served = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if served in ("application/fhir+json", "application/json"):
        binary = json_object(response)
        if not binary or binary.get("resourceType") != "Binary" or not isinstance(binary.get("data"), str):
            return _unread(name, f"GET {url} answered JSON that is not a Binary with data")
        return _decoded(name, binary["data"], f"GET {url}: the Binary's data is not base64")
    return parse_document(response.content, name)


def served_documents(target) -> tuple[list[CdaDocument], int, list, str]:
    """(the CDA documents, how many DocumentReferences the search returned, the exchanges, and, when the server
    lists more than vigie fetched (a next page or documents past the caps), what was checked: said with every
    pass; else "")."""
    client = RecordingClient(target)
    deadline = time.monotonic() + TIME_LIMIT_S
    documents, served, names, more = [], 0, {}, False
    try:
        path, params = "DocumentReference", {"_count": PAGE_SIZE}
        for page in range(1, MAX_PAGES + 1):
            response = client.get(path, params=params)
            label = "GET DocumentReference" + (f" (page {page})" if page > 1 else "")
            if response.status_code != 200:
                raise ObservationError(f"{label} answered {response.status_code}: the documents the server "
                                       "serves could not be listed")
            bundle = json_object(response)
            if not bundle or bundle.get("resourceType") != "Bundle":
                raise ObservationError(f"{label} did not return a Bundle")
            for reference in resources_of(bundle):
                if reference.get("resourceType") != "DocumentReference":
                    continue
                served += 1
                contents = reference.get("content") if isinstance(reference.get("content"), list) else []
                attachments = [c.get("attachment") for c in contents if isinstance(c, dict)]
                for n, attachment in enumerate(attachments):
                    if not isinstance(attachment, dict) or not is_cda(attachment):
                        continue
                    name = f"DocumentReference/{reference.get('id')}" + (f"#content[{n}]" if n else "")
                    # the same id twice (pages that overlap): each document keeps a name of its own
                    names[name] = names.get(name, 0) + 1
                    name += f" ({names[name]})" if names[name] > 1 else ""
                    if len(documents) >= MAX_DOCUMENTS:
                        more = True
                        break
                    documents.append(_unread(name, f"the observation's {TIME_LIMIT_S} s ran out")
                                     if time.monotonic() > deadline else fetch(client, name, attachment))
            nxt = link_of(bundle, "next")
            more = more or bool(nxt and (len(documents) >= MAX_DOCUMENTS or page == MAX_PAGES))
            if not nxt or len(documents) >= MAX_DOCUMENTS:
                break
            path, params = nxt, None
    finally:
        exchanges = client.take_exchanges()
        client.close()
    bound = (f"the first {len(documents)} CDA documents the server lists (it lists more; vigie fetches at most "
             f"{MAX_DOCUMENTS} in {TIME_LIMIT_S} s)") if more else ""
    return documents, served, exchanges, bound
