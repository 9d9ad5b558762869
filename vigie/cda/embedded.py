"""What a CDA document carries besides its text: active content (scripts, event handlers, script URIs,
references to outside resources) and embedded files (nonXMLBody, observationMedia) with their media types."""
from __future__ import annotations

import base64
import binascii

from .document import NS

SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:text/html", "data:application/xhtml")
EXTERNAL = ("http://", "https://", "ftp://", "file:", "//")
# what the bytes of an embedded PDF start with (ISO 32000): a file declared PDF that is not one is refused
SIGNATURES = {"application/pdf": b"%PDF-"}


def active_content(clinical) -> list[str]:
    """Scripts, event handlers and script URIs anywhere; embedded files that a viewer would load from outside."""
    found = []
    for element in clinical.iter():
        if not isinstance(element.tag, str):
            continue
        local = element.tag.rpartition("}")[2]
        where = clinical.getroottree().getpath(element)
        if local in ("script", "object", "embed", "iframe", "applet"):
            found.append(f"{where}: {local} element")
        for name, value in element.attrib.items():
            if name.rpartition("}")[2].lower().startswith("on"):
                found.append(f"{where}: event handler attribute {name}")
            elif value.strip().lower().startswith(SCRIPT_SCHEMES):
                found.append(f"{where}/@{name}: script URI {value[:60]!r}")
    for path in (".//cda:observationMedia/cda:value/cda:reference", ".//cda:nonXMLBody/cda:text/cda:reference"):
        for element in clinical.iterfind(path, NS):
            if (element.get("value") or "").strip().lower().startswith(EXTERNAL):
                found.append(f"{clinical.getroottree().getpath(element)}/@value: embedded file loaded from outside "
                             f"{element.get('value')[:80]!r}")
    return found


def embedded_files(clinical) -> list[dict]:
    """Each embedded file: where, media type, and whether its bytes are what the media type says."""
    files = []
    for element in clinical.iterfind(".//cda:nonXMLBody/cda:text", NS):
        files.append(_embedded(clinical, element))
    for element in clinical.iterfind(".//cda:observationMedia/cda:value", NS):
        files.append(_embedded(clinical, element))
    return files


def _embedded(clinical, element) -> dict:
    media = (element.get("mediaType") or "text/plain").strip().lower()
    entry = {"where": clinical.getroottree().getpath(element), "media_type": media, "problem": None}
    if element.get("representation") == "B64":
        try:
            head = base64.b64decode("".join((element.text or "").split())[:64], validate=True)[:8]
        except (binascii.Error, ValueError):
            entry["problem"] = "its base64 content does not decode"
            return entry
        expected = SIGNATURES.get(media)
        if expected and not head.startswith(expected):
            entry["problem"] = f"its bytes are not {media} (they start {head[:5]!r})"
    elif element.find("cda:reference", NS) is not None and element.text is None:
        entry["problem"] = "the file is referenced, not embedded"
    return entry
