"""FHIRPath for invariants: fhirpathpy, with the FHIR-specific functions it lacks registered, and each
expression compiled once per process."""
from __future__ import annotations

import threading

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from .fastpath import Compiler, Unsupported
from .xhtml import html_rules_met

_compiled: dict[str, object] = {}
_state = threading.local()     # the validation in progress, for resolve() and memberOf()


def _current():
    return getattr(_state, "run", None)


def _has_value(inputs):
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))]


def _html_checks(inputs):
    # txt-1 on Narrative.div: the rules of the narrative, broken by well-formed content; content that is not
    # well-formed XHTML is reported by the walker as such and left out here (held, not failed twice)
    if len(inputs) != 1:
        return []
    return [html_rules_met(inputs[0]) is not False]


def _resolve(inputs):
    run = _current()
    out = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item
        if run is not None and isinstance(ref, str):
            target = run.resolve_reference(ref, holder=item if isinstance(item, dict) else None)
            if target is not None:
                out.append(target)
    return out


def _member_of(inputs, valueset):
    run = _current()
    if run is None or len(inputs) != 1:
        return []
    verdict = run.member_of(inputs[0], valueset)
    return [] if verdict is None else [verdict]


def _conforms_to(inputs, url):
    run = _current()
    if run is None or len(inputs) != 1 or not isinstance(inputs[0], dict):
        return []
    verdict = run.conforms_to(inputs[0], url)
    return [] if verdict is None else [verdict]


def _get_value(inputs):
    return [i for i in inputs if not isinstance(i, (dict, list))]


FUNCTIONS = {
    "hasValue": {"fn": _has_value},
    "htmlChecks": {"fn": _html_checks},
    "resolve": {"fn": _resolve},
    "memberOf": {"fn": _member_of, "arity": {1: ["String"]}},
    "conformsTo": {"fn": _conforms_to, "arity": {1: ["String"]}},
    "getValue": {"fn": _get_value},
}
OPTIONS = {"userInvocationTable": FUNCTIONS, "traceFn": lambda *args: None}   # trace() must not print


class FhirPathError(Exception):
    pass


def compile_expression(expression: str):
    fn = _compiled.get(expression)
    if fn is None:
        try:
            fn = fhirpathpy.compile(expression, model=models["r4"], options=OPTIONS)
        except Exception as exc:  # noqa: BLE001 -- the parser raises bare exceptions on syntax it does not know
            fn = FhirPathError(f"cannot compile: {exc}")
        _compiled[expression] = fn
    if isinstance(fn, FhirPathError):
        raise fn
    return fn


def _fast_resolve(items):
    return _resolve(items)


def _fast_member_of(items, valueset):
    return _member_of(items, valueset[0]) if len(valueset) == 1 else []


def _fast_conforms_to(items, url):
    return _conforms_to(items, url[0]) if len(url) == 1 else []


_fast_compiler = Compiler({"resolve": _fast_resolve, "htmlChecks": _html_checks, "memberOf": _fast_member_of,
                           "conformsTo": _fast_conforms_to, "getValue": _get_value})
_fast: dict[str, object] = {}
stats = {"fast": 0, "fallback": 0}


def fast_function(expression: str):
    """The fast closure for an expression, or None when it uses FHIRPath outside the fast subset."""
    if expression not in _fast:
        try:
            _fast[expression] = _fast_compiler.compile(expression)
        except Exception:  # noqa: BLE001 -- Unsupported, or a parser error that fhirpathpy will report itself
            _fast[expression] = None
    return _fast[expression]


def evaluate(expression: str, focus, resource, root, run, base: str | None = None,
             focus_type: str | None = None) -> list:
    fast = fast_function(expression)
    if fast is not None:
        previous = getattr(_state, "run", None)
        _state.run = run
        try:
            result = fast([focus], {"resource": resource, "rootResource": root, "context": focus,
                                    "context_type": focus_type})
            stats["fast"] += 1
            return result
        except Unsupported:
            pass    # this value needs the general evaluator
        except RecursionError:
            pass
        finally:
            _state.run = previous
    stats["fallback"] += 1
    return evaluate_general(expression, focus, resource, root, run, base)


def evaluate_general(expression: str, focus, resource, root, run, base: str | None = None) -> list:
    fn = compile_expression(expression)
    previous = getattr(_state, "run", None)
    _state.run = run
    try:
        if base and isinstance(focus, dict):
            # the element's type path lets the model resolve choice elements (`value` -> valueQuantity)
            focus = ResourceNode.create_node(focus, base)
        return fn(focus, {"resource": resource, "rootResource": root})
    except FhirPathError:
        raise
    except Exception as exc:  # noqa: BLE001 -- fhirpathpy raises bare exceptions at run time too
        raise FhirPathError(f"{type(exc).__name__}: {exc}") from None
    finally:
        _state.run = previous
