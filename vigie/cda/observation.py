"""The `cda-documents` observation: the documents of a `documents` target, or those a `fhir` target serves
(vigie.cda.served), read once per run, with what each check needs computed on first use and kept (schema
errors, volet, schematron findings), and the CI-SIS content with its compiled schematrons."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ObservationError
from ..observations import observation
from .content import ContentError, find_content
from .document import CdaDocument, clinical_text, read_document
from .volets import SHARED, Volet, detect

MAX_DOCUMENTS = 10_000
# the schematrons take about a millisecond per element on a loaded 2-core machine (the shared profiles read value
# sets for most of them), and a native Saxon call cannot be interrupted: beyond this many elements (ten times the
# largest ANS example, 4,655) a document is not put through them, and its family's requirement says so
MAX_ELEMENTS = 50_000


def document_files(target) -> list[Path]:
    if getattr(target, "files", ()):
        return [Path(f) for f in target.files]
    root = Path(target.url)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ObservationError(f"the documents folder {root} does not exist")
    files = sorted(p for p in root.rglob("*.xml") if p.is_file() and not p.is_symlink())
    if len(files) > MAX_DOCUMENTS:
        raise ObservationError(f"{len(files)} documents in {root}: more than the {MAX_DOCUMENTS} vigie checks in a run")
    return files


@dataclass
class CdaSet:
    folder: str
    documents: list[CdaDocument]
    content: object = None
    content_error: str | None = None
    _schematrons: object = field(default=None, repr=False)
    _volets: dict = field(default_factory=dict, repr=False)
    _findings: dict = field(default_factory=dict, repr=False)
    seconds: dict = field(default_factory=dict)
    used: dict = field(default_factory=dict)       # document -> the volet schematron it was judged by
    served: int | None = None     # a FHIR target's: how many DocumentReferences its search returned
    exchanges: list = field(default_factory=list, repr=False)   # a FHIR target's: the requests that fetched them
    bound: str = ""   # a FHIR target's documents past vigie's caps: what was checked, said with every pass

    def require_content(self):
        if self.content is None:
            raise ObservationError(self.content_error)
        return self.content

    def readable(self) -> list[CdaDocument]:
        return [d for d in self.documents if d.ok]

    def schematrons(self):
        if self._schematrons is None:
            from .schematron import Schematrons
            content = self.require_content()
            self._schematrons = Schematrons(content, content.root / "compiled")
        return self._schematrons

    def volet(self, doc: CdaDocument) -> Volet | None:
        if doc.name not in self._volets:
            self._volets[doc.name] = detect(doc.clinical, self.require_content().schematrons)
        return self._volets[doc.name]

    def findings(self, doc: CdaDocument) -> list:
        """Every failed assertion of the document's volet schematron and of the shared profiles; ObservationError
        when a schematron cannot run (missing from the content, or stopped on the document). Of several candidate
        versions of the volet, the first the document meets, else the newest's findings."""
        if doc.name not in self._findings:
            volet = self.volet(doc)
            started = time.monotonic()
            try:
                elements = sum(1 for _ in doc.clinical.iter())
                if elements > MAX_ELEMENTS:
                    raise ObservationError(f"{elements} elements: more than the {MAX_ELEMENTS} vigie puts through "
                                           "the schematrons (their time grows with the document)")
                xml = clinical_text(doc)
                shared = [f for r in SHARED for f in self.schematrons().validate(r, xml)]
                tried, unusable = [], []
                for relative in volet.candidates if volet else ():
                    try:
                        tried.append((relative, self.schematrons().validate(relative, xml)))
                    except ObservationError as exc:   # a version the content cannot run: the others may judge
                        unusable.append(exc)
                        continue
                    if not any(f.level == "error" for f in tried[-1][1]):
                        break
                if unusable and not tried:
                    raise unusable[0]
                met = [t for t in tried if not any(f.level == "error" for f in t[1])]
                used, own = (met or tried or [(None, [])])[0]
                self.used[doc.name] = used
                self._findings[doc.name] = own + shared
            except ObservationError as exc:
                self._findings[doc.name] = exc
            self.seconds[doc.name] = round(time.monotonic() - started, 3)
        found = self._findings[doc.name]
        if isinstance(found, ObservationError):
            raise found
        return found

    def to_json(self) -> dict:
        return {"folder": self.folder, "content": self.content.to_json() if self.content else None,
                "content_error": self.content_error,
                "documents": [{"name": d.name, "problem": d.problem, "fetched": d.fetched} for d in self.documents],
                **({"document_references": self.served, "exchanges": self.exchanges, "bound": self.bound}
                   if self.served is not None else {})}


def _content() -> tuple:
    try:
        return find_content(), None
    except ContentError as exc:
        return None, str(exc)


@observation("cda-documents", kinds=("documents", "fhir"))
def observe_documents(target, store) -> CdaSet:
    if target.kind == "fhir":
        from .served import served_documents
        docs, served, exchanges, bound = served_documents(target)
        return CdaSet(f"{target.url}/DocumentReference", docs, *_content(), served=served, exchanges=exchanges,
                      bound=bound)
    root = Path(target.url)
    docs = [read_document(p, p.relative_to(root).as_posix() if root.is_dir() else p.name)
            for p in document_files(target)]
    return CdaSet(str(root), docs, *_content())
