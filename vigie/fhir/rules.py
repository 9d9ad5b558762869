"""Rules that the FHIR R4 specification states in prose (element definitions) rather than as invariants,
checked on the element that holds them; keyed by element path."""
from __future__ import annotations

import re

from .bundles import check_bundle
from .measures import check_report
from .questionnaires import check_response
from .searchparams import check_capability_statement, check_search_parameter
from .xhtml import html_has_content

# '<' then a letter, '/' or '!': an HTML tag or comment, but not a markdown autolink (<https://...>)
_HTML_TAG = re.compile(r"<(?![a-zA-Z][a-zA-Z0-9+.-]*:)[a-zA-Z/!]")


def _absolute_system(run, value, path):
    system = value.get("system") if isinstance(value, dict) else None
    if isinstance(system, str) and (system.startswith("#") or ":" not in system):
        run.add("error", "invalid", path,
                f"URI values in ValueSet.compose.include.system must be absolute ('{system}' is not); to use a "
                f"contained code system, give its full canonical URL")


def _attachment_size(run, value, path):
    """Attachment.size is the number of bytes of the content: with inline data, it must match it."""
    import base64
    import binascii
    size, data = value.get("size"), value.get("data")
    if isinstance(size, int) and not isinstance(size, bool) and isinstance(data, str):
        try:
            actual = len(base64.b64decode("".join(data.split()), validate=True))
        except (binascii.Error, ValueError):
            return      # reported as an invalid base64Binary already
        if actual != size:
            run.add("error", "structure", path,
                    f"Stated Attachment size {size} does not match the size of its data ({actual} bytes)")


def _markdown_html(run, value, path):
    """Markdown is rendered by the receiver, which escapes (or should escape) embedded HTML: a tag in it is
    most likely a mistake; a warning, as the HL7 validator gives by default (an error with noHtmlInMarkdown)."""
    found = _HTML_TAG.search(value) if isinstance(value, str) else None
    if found:
        run.add("error" if run.v.options.get("noHtmlInMarkdown") else "warning", "invalid", path, f"The markdown contains content that appears to be an embedded "
                f"HTML tag starting at '{value[found.start():found.start() + 2]}'; the presentation layer "
                f"will (or should) escape it")


def _string_html(run, value, path):
    """With the HL7 validator's security checks on: a plain string is shown as text, so a tag in it can only be
    an attempt at active content (FHIR security, "Narrative": HTML is only for the narrative's xhtml)."""
    if run.v.options.get("security-checks") and isinstance(value, str) and _HTML_TAG.search(value):
        run.add("error", "security", path, "The string value contains text that looks like embedded HTML tags, "
                "which are not allowed for security reasons in this context")


def _narrative_content(run, value, path):
    """txt-2 natively (R4 Narrative.div: "The narrative SHALL have some non-whitespace content"): its FHIRPath
    in R4 is htmlChecks(), the same as txt-1's, which says nothing of this rule."""
    if html_has_content(value) is False:
        run.add("error", "invariant", path, "Constraint failed: txt-2: 'The narrative SHALL have some "
                "non-whitespace content'")


def _bundle_links(run, bundle, path):
    """Bundle.link relations name the links of the bundle itself (self, first, next...): each at most once."""
    seen = set()
    links = bundle.get("link")
    for i, link in enumerate(links if isinstance(links, list) else []):
        relation = link.get("relation") if isinstance(link, dict) else None
        if isinstance(relation, str):
            if relation in seen:
                run.add("error", "invalid", f"{path}.link[{i}]",
                        f"The link relationship type '{relation}' can only occur once")
            seen.add(relation)


def contained_referenced(run, res, path):
    """dom-3, natively (R4's FHIRPath for it applies `as` to collections, which a strict engine refuses):
    each contained resource is referred to from elsewhere in its container (`#id` in a reference, canonical
    or uri), or itself refers to its container (`#`)."""
    contained = res.get("contained")
    if not isinstance(contained, list) or not run.v.invariants or \
            run.v.options.get("validateContains") == "IGNORE":
        return
    strings = set(_strings(res))
    for i, item in enumerate(contained):
        rid = item.get("id") if isinstance(item, dict) else None
        if isinstance(rid, str) and f"#{rid}" not in strings and "#" not in set(_strings(item)):
            run.add("error", "invariant", f"{path}.contained[{i}]",
                    f"The contained resource '{rid}' is not referenced to from elsewhere in the containing "
                    f"resource nor does it refer to the containing resource (dom-3)")
        elif isinstance(item, dict) and "id" not in item and "#" not in set(_strings(item)):
            # without an id nothing can refer to it (references.html#contained: by '#' + its id)
            run.add("error", "invariant", f"{path}.contained[{i}]",
                    "The contained resource has no id, so nothing in the containing resource can refer to it, "
                    "and it does not refer to the containing resource (dom-3)")


def narrative_language(run, res, path):
    """A resource that states its language should say it in its narrative too, as XHTML does: both `lang`
    and `xml:lang` on the div (W3C, language declarations in XHTML served as XML or HTML)."""
    text = res.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    if not isinstance(res.get("language"), str) or not isinstance(div, str):
        return
    head = re.match(r"\s*<div\b[^>]*>", div)
    attrs = head.group(0) if head else ""
    if not (re.search(r"\slang\s*=", attrs) and re.search(r"\sxml:lang\s*=", attrs)):
        run.add("warning", "business-rule", path, "The resource has a language, but its narrative's XHTML does "
                "not state it with both lang and xml:lang attributes")


def _strings(tree):
    """Every string value that may hold a local reference (a JSON property's value starting with '#')."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and node.startswith("#"):
            yield node


# the properties the terminology ecosystem defines for concepts (http://hl7.org/fhir/concept-properties), with
# the type each has: a code system that uses one must give it that type, and may not rename it
CONCEPT_PROPERTIES = "http://hl7.org/fhir/concept-properties#"
STANDARD_PROPERTIES = {
    "status": "code", "inactive": "boolean", "effectiveDate": "dateTime", "deprecationDate": "dateTime",
    "retirementDate": "dateTime", "notSelectable": "boolean", "parent": "code", "child": "code",
    "partOf": "code", "synonym": "code", "comment": "string", "itemWeight": "decimal",
}


def _hl7_property_uri(run, uri, where):
    """A property URI in HL7's concept-properties space (R4 codesystem.html#defined-props: the properties "defined
    by this specification" are identified as http://hl7.org/fhir/concept-properties#[code]) names a code of that
    code system: one that neither the loaded code system nor the ecosystem's list has is no property at all;
    a code system's own properties belong in its own URL space, not HL7's."""
    if not uri.startswith(CONCEPT_PROPERTIES):
        return
    code = uri[len(CONCEPT_PROPERTIES):]
    if code not in STANDARD_PROPERTIES and run.v.tx.code_known(CONCEPT_PROPERTIES[:-1], code) is False:
        run.add("error", "business-rule", where, f"Unknown concept property '{uri}': HL7 defines no property "
                f"'{code}'; a property of your own needs a URI of your own, not one in the HL7 namespace")


def _code_system_properties(run, cs, path):
    """CodeSystem.property: each code and URI defined once, a standard property with its standard code and
    type; each concept's property values of the type their definition declares."""
    defined: dict[str, str] = {}   # code -> declared type (the first definition wins)
    uris = set()
    properties = cs.get("property")
    for i, prop in enumerate(properties if isinstance(properties, list) else []):
        if not isinstance(prop, dict) or not isinstance(prop.get("code"), str):
            continue
        where, code, uri, kind = f"{path}.property[{i}]", prop["code"], prop.get("uri"), prop.get("type")
        if code in defined:
            run.add("error", "business-rule", where, f"A property is already defined with the code '{code}'")
        else:
            defined[code] = kind
        if isinstance(uri, str):
            if uri in uris:   # the first definition was checked already
                run.add("error", "business-rule", where, f"A property is already defined with the URI '{uri}'")
                continue
            uris.add(uri)
            _hl7_property_uri(run, uri, where)
            if uri.startswith(CONCEPT_PROPERTIES) and uri[len(CONCEPT_PROPERTIES):] in STANDARD_PROPERTIES:
                standard = uri[len(CONCEPT_PROPERTIES):]
                if code != standard:
                    run.add("error", "business-rule", where,
                            f"The URI '{uri}' is normally assigned the code '{standard}'; the code '{code}' "
                            f"will confuse value set filters")
                _standard_type(run, "error", where, kind, standard, f"the URI '{uri}'")
        elif code in STANDARD_PROPERTIES:
            run.add("warning", "business-rule", where,
                    f"The property has the standard code '{code}' without its standard URI "
                    f"'{CONCEPT_PROPERTIES}{code}', so its meaning is not clearly defined")
            _standard_type(run, "warning", where, kind, code, f"the code '{code}'")
    for concept_path, concept in _concepts(cs.get("concept"), f"{path}.concept"):
        values = concept.get("property")
        for j, value in enumerate(values if isinstance(values, list) else []):
            code = value.get("code") if isinstance(value, dict) else None
            if code not in defined:
                if isinstance(code, str):
                    run.add("warning", "business-rule", f"{concept_path}.property[{j}]",
                            f"The property '{code}' has no definition in CodeSystem.property")
                continue
            # value[x]'s JSON name ends with the type's name, capitalised: valueCoding is 'Coding', valueCode 'code'
            given = next((k[5:] for k in value if k.startswith("value")), None)
            kind = defined[code]
            if given is not None and isinstance(kind, str) and kind and given != kind[:1].upper() + kind[1:]:
                given = given if given == "Coding" else given[:1].lower() + given[1:]
                run.add("error", "business-rule", f"{concept_path}.property[{j}]",
                        f"The property '{code}' has the type '{given}', when it is defined to have the type "
                        f"'{kind}'")


def _answer_coding(run, answer, path):
    """An answer chosen from a list is a Coding: without its system, the answer cannot be checked against
    the question's options (the HL7 validator warns at the answer)."""
    coding = answer.get("valueCoding") if isinstance(answer, dict) else None
    if isinstance(coding, dict) and "code" in coding and "system" not in coding:
        run.add("warning", "code-invalid", path, "Coding has no system. A code with no system has no defined "
                "meaning, and it cannot be validated. A system should be provided")


def _hl7_code_system(run, cs, path):
    """Code systems that HL7 publishes (its URL says so) are read by everyone: they state whether codes are
    case-sensitive, and define their concepts (warned once, at the first concept without a definition)."""
    url = cs.get("url")
    if not isinstance(url, str) or not url.startswith(("http://hl7.org/fhir", "http://terminology.hl7.org")):
        return
    if "caseSensitive" not in cs:
        run.add("warning", "business-rule", path, "HL7 Defined CodeSystems SHOULD have a stated value for the "
                "caseSensitive element so that users know the status and meaning of the code system clearly")
    undefined = next((p for p, c in _concepts(cs.get("concept"), f"{path}.concept") if not c.get("definition")),
                     None)
    if undefined:
        run.add("warning", "business-rule", undefined,
                "HL7 Defined CodeSystems should ensure that every concept has a definition")


def _code_system(run, cs, path):
    _code_system_properties(run, cs, path)
    _hl7_code_system(run, cs, path)


def _standard_type(run, severity, where, kind, standard, named_by):
    """A standard concept property declared with another type than its own."""
    if kind != STANDARD_PROPERTIES[standard]:
        run.add(severity, "business-rule", where,
                f"Wrong type '{kind}': {named_by} identifies a property of type '{STANDARD_PROPERTIES[standard]}'")


def _discriminator_paths(run, sd, path):
    """In a profile's differential, each slicing discriminator's path starts with an element of the sliced
    element (its type's elements, or its own children for a backbone element): a path that names none can
    never tell the slices apart. Judged only where the base definition tells the sliced element."""
    diff = (sd.get("differential") or {}).get("element") if isinstance(sd.get("differential"), dict) else None
    base = run.v.packages.resolve(sd.get("baseDefinition"), "StructureDefinition") \
        if isinstance(sd.get("baseDefinition"), str) else None
    base_elements = [e for e in ((base or {}).get("snapshot") or {}).get("element", ()) if isinstance(e, dict)]
    if not isinstance(diff, list) or not base_elements:
        return
    for i, element in enumerate(diff):
        slicing = element.get("slicing") if isinstance(element, dict) else None
        if not isinstance(slicing, dict) or not isinstance(element.get("path"), str):
            continue
        sliced = re.sub(r":[^.]*", "", element["id"]) if isinstance(element.get("id"), str) else element["path"]
        names = _child_names(run, sliced, element, base_elements)
        for j, disc in enumerate(slicing.get("discriminator") or ()):
            first = re.match(r"[A-Za-z][A-Za-z0-9]*(?=$|\.)", disc.get("path", "")) if isinstance(disc, dict) \
                else None
            if names and first and first.group() not in names:
                run.add("error", "invalid", f"{path}.differential.element[{i}].slicing.discriminator[{j}]",
                        f"The discriminator path '{disc['path']}' does not appear to be valid for the element "
                        f"that is being sliced '{sliced}'")


def _child_names(run, sliced, element, base_elements) -> set[str]:
    """The names of the sliced element's children ('value' for value[x]), or an empty set if unknown."""
    own = {e["path"][len(sliced) + 1:] for e in base_elements
           if isinstance(e.get("path"), str) and e["path"].startswith(sliced + ".")
           and "." not in e["path"][len(sliced) + 1:]}
    if own:
        return {n.removesuffix("[x]") for n in own}
    definition = next((e for e in base_elements if e.get("path") == sliced), None)
    types = {t.get("code") for t in (element.get("type") or (definition or {}).get("type") or ())
             if isinstance(t, dict)}
    if len(types) != 1:
        return set()
    type_sd = run.v.packages.resolve(f"http://hl7.org/fhir/StructureDefinition/{types.pop()}", "StructureDefinition")
    root = (type_sd or {}).get("type")
    names = {e["path"][len(root) + 1:] for e in ((type_sd or {}).get("snapshot") or {}).get("element", ())
             if isinstance(e, dict) and isinstance(e.get("path"), str) and root
             and e["path"].count(".") == 1 and e["path"].startswith(root + ".")}
    return {n.removesuffix("[x]") for n in names}


def _concepts(concepts, path):
    """(path, concept) of every concept, nested ones included."""
    for i, concept in enumerate(concepts if isinstance(concepts, list) else []):
        if isinstance(concept, dict):
            yield f"{path}[{i}]", concept
            yield from _concepts(concept.get("concept"), f"{path}[{i}].concept")


def _concept_map_codes(run, cm, path):
    """ConceptMap.group: the codes mapped from are in the map's source value set ("the source value set that
    contains the concepts that are being mapped", R4 ConceptMap.source[x]), or in the group's source code
    system when the map names no value set. The codes mapped to are not judged: the target value set only
    "provides context for the mappings" (ConceptMap.target[x]), and the HL7 validator does not check them
    either. Only what the loaded packages can tell is judged."""
    groups = cm.get("group")
    vs_url = cm.get("sourceCanonical") or cm.get("sourceUri")
    expansion = run.v.tx.expand(vs_url) if isinstance(vs_url, str) else None
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        system = group.get("source") if isinstance(group, dict) else None
        elements = group.get("element") if isinstance(system, str) else None
        for j, element in enumerate(elements if isinstance(elements, list) else []):
            code = element.get("code") if isinstance(element, dict) else None
            if not isinstance(code, str):
                continue
            where = f"{path}.group[{i}].element[{j}].code"
            if expansion is not None:
                if expansion.contains(system, code) is False:
                    run.add("error", "code-invalid", where,
                            f"The source code '{code}' is not valid in the value set {vs_url}")
            elif vs_url is None and run.v.tx.code_known(system, code) is False:
                run.add("error", "code-invalid", where, f"The source code '{code}' is not in the code system {system}")


_FILTER_VALUE = {"boolean": re.compile(r"true|false"), "integer": re.compile(r"-?[0-9]+"),
                 "decimal": re.compile(r"-?[0-9]+(\.[0-9]+)?")}


def _filter_values(run, include, path):
    """ValueSet.compose.include.filter on a property of a loaded code system: an `=` value has that
    property's type; a Coding is written system(|version)#code, and its code exists where it is known."""
    system, filters = include.get("system"), include.get("filter")
    cs = run.v.tx.code_system(system) if isinstance(system, str) and isinstance(filters, list) else None
    if cs is None:
        return
    types = {p.get("code"): p.get("type") for p in cs.get("property", ()) if isinstance(p, dict)}
    # R4 ValueSet.compose.include.filter.value: "either a code defined by the system, or a string value ... of
    # the system filter value (if the filter represents a filter defined in CodeSystem)": a filter the code
    # system defines takes the values its CodeSystem.filter.value describes, and a code of the system is a value
    declared = {f.get("code") for f in cs.get("filter", ()) if isinstance(f, dict)}
    for i, flt in enumerate(filters):
        if not isinstance(flt, dict) or flt.get("op") != "=" or not isinstance(flt.get("value"), str):
            continue
        prop, value, where = flt.get("property"), flt["value"], f"{path}.filter[{i}]"
        kind = types.get(prop)
        if prop in declared or (kind in _FILTER_VALUE and run.v.tx.code_known(system, value)):
            continue
        if kind == "Coding":
            coding = re.fullmatch(r"([^|#\s]+)(\|[^#\s]*)?#(\S+)", value)
            if coding is None:
                run.add("error", "invalid", where, f"The value for a filter based on property '{prop}' must be "
                        f"in the format system(|version)#code, not '{value}'")
            elif run.v.tx.code_known(coding.group(1), coding.group(3)) is False:
                run.add("error", "invalid", where, f"The value for a filter based on property '{prop}' is "
                        f"'{value}', which is not a valid code: unknown code '{coding.group(3)}' in the "
                        f"code system '{coding.group(1)}'")
        elif kind in _FILTER_VALUE and not _FILTER_VALUE[kind].fullmatch(value):
            run.add("error", "invalid", where,
                    f"The value for a filter based on property '{prop}' must be a {kind}, not '{value}'")


def _include(run, include, path):
    _absolute_system(run, include, path)
    if isinstance(include, dict):
        _filter_values(run, include, path)


PRIMITIVE_RULES = {
    "markdown": _markdown_html,
    "string": _string_html,
    "xhtml": _narrative_content,
}

EVERY_RESOURCE_RULES = (contained_referenced, narrative_language)

def _bundle(run, bundle, path):
    _bundle_links(run, bundle, path)
    check_bundle(run, bundle, path)


RESOURCE_RULES = {
    "Bundle": _bundle,
    "CodeSystem": _code_system,
    "StructureDefinition": _discriminator_paths,
    "ConceptMap": _concept_map_codes,
    "QuestionnaireResponse": check_response,
    "MeasureReport": check_report,
    "CapabilityStatement": check_capability_statement,
    "SearchParameter": check_search_parameter,
}

TYPE_RULES = {
    "Attachment": _attachment_size,
}

RULES = {
    "QuestionnaireResponse.item.answer": _answer_coding,   # nested items reuse item's definition
    "ValueSet.compose.include": _include,   # "An absolute URI which is the code system..."; filters
    "ValueSet.compose.exclude": _include,
}
