"""The fast FHIRPath subset agrees with fhirpathpy on every invariant evaluated over the official examples
and the HL7 validator's R4 cases: same verdict (holds, fails, or empty) for each evaluation."""
import json

import pytest
from test_fhir_data import ANNUAIRE_TGZ, CASES, FRCORE_TGZ, SAS_TGZ, needs_packages

from vigie.fhir import Validator, fhirpath, load_packages
from vigie.fhir.fastpath import Compiler, Unsupported


def verdict(result):
    return "fails" if result == [False] else ("empty" if result == [] else "holds")


@pytest.fixture
def cross_check(monkeypatch):
    seen = {"compared": 0, "differences": []}
    fast_eval = fhirpath.evaluate

    def both(expression, focus, resource, root, run, base=None, focus_type=None):
        fast = fhirpath.fast_function(expression)
        try:
            general = fhirpath.evaluate_general(expression, focus, resource, root, run, base)
        except fhirpath.FhirPathError:
            general = None
        mine = fast_eval(expression, focus, resource, root, run, base, focus_type)
        if fast is not None and general is not None:
            seen["compared"] += 1
            if verdict(mine) != verdict(general):
                seen["differences"].append((expression, json.dumps(focus)[:200], mine, general))
        return mine

    monkeypatch.setattr(fhirpath, "evaluate", both)
    return seen


@needs_packages
def test_fast_subset_agrees_with_fhirpathpy(cross_check):
    for tgz in (FRCORE_TGZ, SAS_TGZ, ANNUAIRE_TGZ):
        packages = load_packages(tgz)
        validator = Validator(packages)
        for _, res in packages.packages[0].examples():
            validator.validate(res)
    core = load_packages(FRCORE_TGZ.parent / "hl7.fhir.r4.core-4.0.1.tgz")
    validator = Validator(core)
    for path in sorted((CASES / "inputs").glob("*.json")):
        try:
            validator.validate(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue
    assert cross_check["compared"] > 1000
    assert cross_check["differences"] == []


@pytest.mark.parametrize("expression, data, expected", [
    ("name.where(use = 'official').count() = 1", {"name": [{"use": "official"}, {"use": "usual"}]}, [True]),
    ("a implies b", {"a": False}, [True]),
    ("a implies b", {"a": True}, []),
    ("a or b", {"b": True}, [True]),
    ("a and b", {"a": True}, []),
    ("value.exists()", {"valueQuantity": {"value": 1}}, [True]),
    ("x.all(startsWith('ab'))", {"x": ["abc", "abd"]}, [True]),
    ("(x | y).count()", {"x": ["a"], "y": ["a", "b"]}, [2]),
    ("x.matches('^[0-9]+$')", {"x": "12a"}, [False]),
    ("extension('u').value = 'v'", {"extension": [{"url": "u", "valueString": "v"}]}, [True]),
    ("iif(a, 'y', 'n')", {"a": False}, ["n"]),
])
def test_fast_subset_semantics(expression, data, expected):
    assert Compiler({}).compile(expression)([data], {}) == expected


@pytest.mark.parametrize("expression", ["a ~ b", "children().count()", "a.ofType(Quantity)", "-a"])
def test_outside_the_subset_is_refused_at_compile_time(expression):
    with pytest.raises(Unsupported):
        Compiler({}).compile(expression)
