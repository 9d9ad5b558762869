"""CDA R2 documents (a `documents` target, or the DocumentReferences a `fhir` target serves): the cda-r2
profile (well-formed, CDA XML Schema with the ANS extensions, no active content, embedded files of allowed
types) and the ci-sis profile (the header rules, the volet of each document, each volet family's schematrons).
Each outcome covers every document of the target; its messages name the document and, for the schematrons,
the ANS's rule, location and message (quoted)."""
from vigie.checks import check, failed, not_applicable, passed, undetermined
from vigie.messages import quote

MAX_MESSAGES = 200


def _documents(observe, target):
    if getattr(target, "kind", None) == "fhir":   # a server that declares no DocumentReference search serves none
        from vigie.fhirrest import declared_search
        declared_search(observe("capability"), "DocumentReference")
    docs = observe("cda-documents")
    if not docs.documents and docs.served is not None:
        not_applicable(f"the server serves no CDA document: DocumentReference search returned {docs.served} "
                       "resources, 0 with a CDA attachment")
    if not docs.documents:
        undetermined(f"no CDA document (*.xml) in {docs.folder}")
    return docs


def _readable(docs):
    """The documents that could be read; a check that needs them all says which could not be."""
    unreadable = [d for d in docs.documents if not d.ok]
    if unreadable:
        undetermined(f"{len(unreadable)} of {len(docs.documents)} documents could not be read as CDA "
                     f"(e.g. {unreadable[0].name}): they were not checked")
    return docs.readable()


def _conclude(outcome, problems: dict, docs, seen: str, count: int | None = None):
    """Fails with one message per problem (document: problem), else passes on the `count` documents (all of
    the target's), saying which when a server listed more than vigie fetched."""
    count = len(docs.documents) if count is None else count
    for name, items in list(problems.items()):
        for item in items[:MAX_MESSAGES]:
            outcome.message(f"{name}: {item}")
    outcome.measure(documents=count, documents_failing=sorted(problems))
    if problems:
        first = next(iter(problems))
        failed(f"{len(problems)} of {count} documents: {first}: {problems[first][0]}")
    bound = f" ({docs.bound})" if docs.bound else ""
    passed(f"{count} documents: {seen}{bound}")


@check("cda.well-formed")
def test_documents_are_well_formed(target, observe, outcome):
    docs = _documents(observe, target)
    problems = {d.name: [d.problem] for d in docs.documents if not d.ok and d.fetched}
    unfetched = [d for d in docs.documents if not d.fetched]
    if unfetched and not problems:
        for doc in unfetched:
            outcome.message(f"{doc.name}: {doc.problem}")
        undetermined(f"{len(unfetched)} of {len(docs.documents)} documents could not be fetched (e.g. "
                     f"{unfetched[0].name}: {unfetched[0].problem})")
    _conclude(outcome, problems, docs, "well-formed XML, each with a ClinicalDocument")


@check("cda.schema")
def test_documents_follow_the_cda_schema(target, observe, outcome):
    from vigie.cda.schema import schema_errors
    docs = _documents(observe, target)
    content = docs.require_content()
    outcome.measure(content=content.to_json()["package"])
    problems = {}
    for doc in _readable(docs):
        errors = schema_errors(content.xsd, doc.clinical)
        if errors:
            problems[doc.name] = errors
    _conclude(outcome, problems, docs, "valid against CDA_extended.xsd")


@check("cda.active-content")
def test_documents_carry_no_active_content(target, observe, outcome):
    from vigie.cda.embedded import active_content
    docs = _documents(observe, target)
    problems = {d.name: found for d in _readable(docs) if (found := active_content(d.clinical))}
    _conclude(outcome, problems, docs, "no script, event handler or embedded file loaded from outside")


@check("cda.embedded-media")
def test_embedded_files_have_allowed_types(requirement, target, observe, outcome):
    from vigie.cda.embedded import embedded_files
    allowed = [t.lower() for t in requirement.params.get("allowed", [])]
    docs = _documents(observe, target)
    problems, count = {}, 0
    for doc in _readable(docs):
        for entry in embedded_files(doc.clinical):
            count += 1
            if entry["media_type"] not in allowed:
                problems.setdefault(doc.name, []).append(
                    f"{entry['where']}: media type {entry['media_type']} is not allowed ({', '.join(allowed)})")
            elif entry["problem"]:
                problems.setdefault(doc.name, []).append(f"{entry['where']}: {entry['problem']}")
    outcome.measure(embedded_files=count)
    if not count:   # a rule about embedded files is not met by documents that have none: it does not concern them
        not_applicable(f"no embedded file (nonXMLBody, observationMedia) in the {len(docs.documents)} documents")
    _conclude(outcome, problems, docs, f"{count} embedded files, each of an allowed type")


@check("cisis.header")
def test_document_headers(requirement, target, observe, outcome):
    from vigie.cda import header
    rule = requirement.params["rule"]
    docs = _documents(observe, target)
    readable = _readable(docs)
    problems = {}
    if rule == "document-id":
        seen = {}
        for doc in readable:
            key, found = header.document_id(doc.clinical)
            if key is not None and key in seen:
                found = [*found, f"document id {key} is also the id of {seen[key]}"]
            if key is not None:
                seen.setdefault(key, doc.name)
            if found:
                problems[doc.name] = found
        _conclude(outcome, problems, docs, "each with its own document id under an OID")
    rules = {"ins": header.ins_problems, "rpps": header.rpps_problems,
             "confidentiality": header.confidentiality_problems, "custodian": header.custodian_problems}
    problems = {d.name: found for d in readable if (found := rules[rule](d.clinical))}
    seen = {"ins": "an INS with a valid key in recordTarget", "rpps": "every author identified nationally",
            "confidentiality": "a confidentiality code N, R or V", "custodian": "an identified custodian"}[rule]
    _conclude(outcome, problems, docs, seen)


@check("cisis.volet")
def test_documents_are_of_a_known_volet(target, observe, outcome):
    docs = _documents(observe, target)
    docs.require_content()
    problems, families = {}, {}
    for doc in _readable(docs):
        volet = docs.volet(doc)
        if volet is None:
            problems[doc.name] = ["its templateIds name no CI-SIS volet that the content holds"]
        else:
            families.setdefault(volet.family, []).append(doc.name)
    outcome.measure(families={k: len(v) for k, v in sorted(families.items())})
    _conclude(outcome, problems, docs, f"each of a known volet ({', '.join(sorted(families))})")


@check("cisis.schematron")
def test_volet_schematrons(requirement, target, observe, outcome):
    family = requirement.params["family"]
    docs = _documents(observe, target)
    docs.require_content()
    mine = [d for d in docs.readable() if (v := docs.volet(d)) is not None and v.family == family]
    # a document that could not be read has no known volet: it may be of this family, so it is named, and
    # the family is neither passed nor set aside while it is there (its violations, if any, still fail it)
    unread = [d.name for d in docs.documents if not d.ok]
    for name in unread:
        outcome.message(f"{name}: could not be read as CDA, its volet is unknown")
    if not mine and unread:
        undetermined(f"no readable document of the volet family {family}, but {len(unread)} of the "
                     f"{len(docs.documents)} documents could not be read (e.g. {unread[0]}): their volet is unknown")
    if not mine:
        not_applicable(f"no document of the volet family {family} among the {len(docs.documents)} documents")
    problems, warnings, stopped = {}, 0, []
    schematrons, evidence = set(), {}
    for doc in mine:
        try:
            findings = docs.findings(doc)
        except Exception as exc:   # noqa: BLE001 - ObservationError: the rules could not run on this document
            stopped.append(f"{doc.name}: {exc}")
            evidence[doc.name] = {"error": str(exc)}
            continue
        schematrons.add(docs.used.get(doc.name) or "(shared profiles only)")
        # every finding, warnings and information included, for the reader of the evidence
        evidence[doc.name] = {"schematron": docs.used.get(doc.name), "findings": [f.to_json() for f in findings]}
        errors = [f for f in findings if f.level == "error"]
        warnings += len(findings) - len(errors)
        if errors:
            problems[doc.name] = [f"[{f.rule}] {f.location}: {quote(f.message)}" for f in errors]
    outcome.measure(schematrons=sorted(schematrons), warnings=warnings, documents_unread=unread,
                    documents_unchecked=sorted(line.split(": ", 1)[0] for line in stopped),
                    seconds={d.name: docs.seconds.get(d.name) for d in mine})
    outcome.evidence(f"cda/{requirement.id}@{target.id}.json", evidence)
    for line in stopped:
        outcome.message(line)
    if problems:
        _conclude(outcome, problems, docs, "", count=len(mine))
    if stopped:
        undetermined(f"the schematrons could not run on {len(stopped)} of {len(mine)} documents: {stopped[0]}")
    if unread:
        undetermined(f"{len(mine)} documents of {family} meet their schematrons, but {len(unread)} of the "
                     f"{len(docs.documents)} documents could not be read (e.g. {unread[0]}): their volet is unknown")
    bound = f"; {docs.bound}" if docs.bound else ""
    passed(f"{len(mine)} documents of {family} meet {', '.join(sorted(schematrons))} and the shared profiles "
           f"(no failed assertion of level error; {warnings} warnings){bound}")
