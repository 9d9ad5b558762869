"""The OMOP CDM 5.4 as vigie knows it: tables and fields with their types, requirement, keys (facts only).

`data/cdm54.csv` lists, for each field of the specification: table, schema (CDM, VOCAB, RESULTS), whether
the table is required, field, whether it is required, type, primary key, foreign key (table and field).
tests/test_warehouse_cdm.py holds it against the official specification CSVs.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"
VERSION = "5.4"
# DataQualityDashboard leaves the vocabulary tables out of its data checks by default: a vocabulary
# subset (as shipped with test warehouses) holds relationships to concepts it does not carry
VOCABULARY_TABLES = ("concept", "vocabulary", "concept_ancestor", "concept_relationship", "concept_class",
                     "concept_synonym", "relationship", "domain")


@dataclass(frozen=True)
class CdmField:
    table: str
    name: str
    required: bool
    type: str
    pk: bool
    fk_table: str | None
    fk_field: str | None


@dataclass
class CdmTable:
    name: str
    schema: str
    required: bool
    fields: list = field(default_factory=list)

    def field(self, name: str) -> CdmField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def primary_key(self) -> CdmField | None:
        return next((f for f in self.fields if f.pk), None)


@cache
def cdm54() -> dict[str, CdmTable]:
    tables: dict[str, CdmTable] = {}
    with open(DATA / "cdm54.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            table = tables.setdefault(row["table"], CdmTable(row["table"], row["schema"], row["table_required"] == "Y"))
            table.fields.append(CdmField(row["table"], row["field"], row["required"] == "Y", row["type"],
                                         row["pk"] == "Y", row["fk_table"] or None, row["fk_field"] or None))
    return tables


def data_tables(exclude=VOCABULARY_TABLES) -> list[CdmTable]:
    return [t for t in cdm54().values() if t.name not in set(exclude)]


def create_table_sql(dialect, table: CdmTable, schema: str | None = None) -> str:
    """CREATE TABLE per the specification, NOT NULL on required fields (no key constraints: checks verify them)."""
    cols = ", ".join(f"{dialect.quote(f.name)} {dialect.ddl_type(f.type)}{' NOT NULL' if f.required else ''}"
                     for f in table.fields)
    return f"CREATE TABLE {dialect.qualified(schema, table.name)} ({cols})"
