"""The CDA R2 XML Schema with the ANS extensions (CDA_extended.xsd of the test content), loaded once per run
without the network."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

from ..errors import ObservationError


@cache
def cda_schema(xsd: Path) -> etree.XMLSchema:
    if not xsd.is_file():
        raise ObservationError(f"the CDA schema {xsd.name} is not in the CI-SIS content ({xsd.parent})")
    try:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        return etree.XMLSchema(etree.parse(str(xsd), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ObservationError(f"the CDA schema {xsd} cannot be loaded: {exc}") from None


def schema_errors(xsd: Path, clinical) -> list[str]:
    """The schema's complaints about the ClinicalDocument element, each with its line."""
    schema = cda_schema(xsd)
    tree = etree.ElementTree(clinical) if clinical.getparent() is None else \
        etree.ElementTree(etree.fromstring(etree.tostring(clinical)))
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
