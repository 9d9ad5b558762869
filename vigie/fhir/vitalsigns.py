"""The R4 vital signs profiles an Observation must meet because of its code.

FHIR R4 (observation-vitalsigns.html) makes the vital signs profiles mandatory for Observations that use
their codes, whatever the Observation claims in meta.profile. The HL7 Java validator applies the profile
of the first family whose code an Observation carries, and says so in an information issue; vigie does
the same, from the same code families (LOINC first, then SNOMED CT; one profile per Observation).
"""
from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
SD = "http://hl7.org/fhir/StructureDefinition/"

# (code system, profile id, profile name, codes), in the order they are looked for
FAMILIES = (
    (LOINC, "vitalspanel", "Vital Signs Panel", {"85353-1"}),
    (LOINC, "resprate", "Respiratory Rate",
     {"9279-1", "76170-0", "76172-6", "76171-8", "19840-8", "33438-3", "76270-8", "11291-2"}),
    (LOINC, "heartrate", "Heart rate",
     {"60978-4", "73795-7", "73799-9", "76476-1", "76477-9", "8867-4", "8889-8", "8890-6", "8891-4", "8892-2",
      "8893-0", "40443-4", "55425-3", "68999-2", "11328-2", "69000-8", "8886-4"}),
    (LOINC, "oxygensat", "Oxygen saturation",
     {"2708-6", "19224-5", "20564-1", "2709-4", "2710-2", "2711-0", "2713-6", "51733-4", "59408-5", "59417-6",
      "89276-0", "97549-0"}),
    (LOINC, "bodytemp", "Body temperature",
     {"8310-5", "60834-9", "60835-6", "60836-4", "60838-0", "60955-2", "61009-7", "75539-7", "75987-8",
      "76010-8", "76011-6", "76278-1", "8309-7", "8328-7", "8329-5", "8330-3", "8331-1", "8332-9", "8333-7",
      "8334-5", "91371-5", "98657-0", "98663-8"}),
    (LOINC, "bodyheight", "Body height", {"8302-2", "3137-7", "3138-5", "8306-3", "8308-9"}),
    (LOINC, "headcircum", "Head circumference", {"9843-4", "8287-5"}),
    (LOINC, "bodyweight", "Body weight",
     {"29463-7", "3141-9", "3142-7", "75292-3", "79348-9", "8350-1", "8351-9"}),
    (LOINC, "bmi", "Body mass index", {"39156-5", "59574-4", "89270-3"}),
    (LOINC, "bp", "Blood pressure systolic and diastolic",
     {"85354-9", "35094-2", "8459-0", "76534-7", "55284-4", "8480-6"}),
    (SNOMED, "vitalspanel", "Vital Signs Panel", {"46680005"}),
    (SNOMED, "heartrate", "Heart rate",
     {"271306003", "249043002", "444981005", "399017001", "251670001", "429525003", "429614003"}),
    (SNOMED, "oxygensat", "Oxygen saturation",
     {"103228002", "442349007", "442476006", "442440005", "431314004", "442734002", "713194001"}),
    (SNOMED, "bodytemp", "Body temperature",
     {"386725007", "276885007", "300076005", "1222808002", "364246006", "307047009", "708499008", "431598003",
      "698831002", "698832009", "415882003", "415974002", "415929009", "415945006"}),
    (SNOMED, "bodyheight", "Body height",
     {"1153637007", "1162419008", "50373000", "1162418000", "1230278008", "1162392001", "1162417005"}),
    (SNOMED, "headcircum", "Head circumference", {"363812007", "169876006", "1269262007", "363811000"}),
    (SNOMED, "bodyweight", "Body weight",
     {"363811000", "60621009", "735395000", "425024002", "424927000", "784399000", "1162416001", "1162415002"}),
    (SNOMED, "bmi", "Body mass index", {"60621009"}),
    (SNOMED, "bp", "Blood pressure systolic and diastolic",
     {"75367002", "251076008", "163033001", "163035008", "386534000", "386536003", "271649006", "271650006",
      "407556006", "407554009", "716579001", "399304008"}),
)
SYSTEM_NAMES = {LOINC: "LOINC", SNOMED: "SNOMED CT"}


def required_profile(observation: dict) -> tuple[str, str] | None:
    """(profile URL, the reason to say) for an Observation whose code belongs to a vital sign family."""
    code = observation.get("code")
    codings = [c for c in code.get("coding", ()) if isinstance(c, dict)] \
        if isinstance(code, dict) and isinstance(code.get("coding"), list) else []
    for system, profile, name, codes in FAMILIES:
        found = next((c["code"] for c in codings
                      if c.get("system") == system and isinstance(c.get("code"), str) and c["code"] in codes), None)
        if found is not None:
            return SD + profile, (f"Validate Observation against the {name} profile ({SD + profile}) which is "
                                  f"required by the FHIR specification because the {SYSTEM_NAMES[system]} code "
                                  f"{found} was found")
    return None


UNITS = "http://hl7.org/fhir/ValueSet/ucum-vitals-common"


def relax_component_units(sd: dict, elements: list[dict]) -> list[dict]:
    """R4's vital signs profiles bind a component's value to the vital signs units as required, which
    leaves out units of their own components (mm[Hg] is not in it); the HL7 validator reads that binding as
    extensible, in the profile and in the profiles made directly from it, and so does vigie."""
    if sd.get("url") != SD + "vitalsigns" and sd.get("baseDefinition") != SD + "vitalsigns":
        return elements
    return [dict(e, binding={**e["binding"], "strength": "extensible"})
            if e.get("path") == "Observation.component.value[x]" and isinstance(e.get("binding"), dict)
            and str(e["binding"].get("valueSet", "")).split("|")[0] == UNITS else e
            for e in elements]
