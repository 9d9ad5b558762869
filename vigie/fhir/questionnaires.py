"""A QuestionnaireResponse against its Questionnaire, when the Questionnaire is at hand (contained, or among the
loaded packages and resources): R4 questionnaireresponse.html ("the items of the response follow the
Questionnaire's structure") and the element definitions of Questionnaire.item (type, required, repeats,
maxLength, answerOption, answerValueSet, enableWhen) and of the core extension maxDecimalPlaces.
What cannot be told here (a value set that cannot be expanded, an enableWhen it cannot evaluate) is not judged."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .canonical import as_list, at_hand

MAX_DECIMAL_PLACES = "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces"
# Questionnaire.item.type (R4 item-type value set) -> the answer value[x] types it takes
ANSWER_TYPES = {
    "boolean": ("Boolean",), "decimal": ("Decimal",), "integer": ("Integer",), "date": ("Date",),
    "dateTime": ("DateTime",), "time": ("Time",), "string": ("String",), "text": ("String",), "url": ("Uri",),
    "choice": ("Coding",), "open-choice": ("Coding", "String"), "attachment": ("Attachment",),
    "reference": ("Reference",), "quantity": ("Quantity",),
}
NO_ANSWER = ("group", "display")
OPTION_TYPES = ("Integer", "Date", "Time", "String", "Coding", "Reference")


def check_response(run, qr, path):
    url = qr.get("questionnaire")
    if not isinstance(url, str):
        return
    questionnaire = at_hand(run, qr, url, "Questionnaire")
    if questionnaire is None:
        run.cannot_judge(f"{path}.questionnaire", url.split("|")[0], f"The questionnaire {url} is not loaded: "
                         f"the answers are not checked against it")
        return
    answers = _answers_by_link(qr.get("item"))
    completed = qr.get("status") == "completed"
    _items(run, as_list(qr.get("item")), as_list(questionnaire.get("item")), path, answers, completed)


def _items(run, given, defined, path, answers, completed):
    """The response's items at one level against the Questionnaire's items at the same level."""
    by_link = {d["linkId"]: (k, d) for k, d in enumerate(defined) if isinstance(d, dict)
               and isinstance(d.get("linkId"), str)}
    seen: dict[str, int] = {}
    last = -1
    for i, item in enumerate(given):
        if not isinstance(item, dict) or not isinstance(item.get("linkId"), str):
            continue
        where, link = f"{path}.item[{i}]", item["linkId"]
        hit = by_link.get(link)
        if hit is None:
            run.add("error", "structure", where, f"The linkId '{link}' is not an item of the questionnaire at "
                    f"this level")
            continue
        order, definition = hit
        if order < last:
            # "the items ... in the same order as the Questionnaire" (QuestionnaireResponse.item)
            run.add("error", "structure", where, f"The item '{link}' is out of order: the questionnaire defines "
                    f"it before the item that precedes it here")
        last = max(last, order)
        if link in seen and not (definition.get("type") == "group" and definition.get("repeats") is True):
            run.add("error", "structure", where, f"The item '{link}' appears more than once: only a repeating "
                    f"group can (the answers of a question go in its answer list)")
        seen.setdefault(link, i)
        _item(run, item, definition, where, answers, completed)
    if completed:
        for definition in defined:
            if isinstance(definition, dict) and definition.get("required") is True and \
                    definition.get("linkId") not in seen and definition.get("type") != "display" and \
                    _enabled(definition, answers) is True:
                run.add("error", "required", path, f"The required item '{definition.get('linkId')}' is missing "
                        f"from the completed response")


def _item(run, item, definition, where, answers, completed):
    kind = definition.get("type")
    values = as_list(item.get("answer"))
    if kind in NO_ANSWER and values:
        run.add("error", "structure", where, f"The item '{item['linkId']}' is a {kind} item, which takes no answer")
        values = []
    if len(values) > 1 and definition.get("repeats") is not True:
        run.add("error", "structure", f"{where}.answer[1]", f"The item '{item['linkId']}' does not repeat: it "
                f"takes one answer, not {len(values)}")
    if completed and kind not in NO_ANSWER and definition.get("required") is True and not values and \
            _enabled(definition, answers) is True:
        run.add("error", "required", where, f"The required item '{item['linkId']}' has no answer in the "
                f"completed response")
    children = as_list(definition.get("item"))
    for j, answer in enumerate(values):
        if not isinstance(answer, dict):
            continue
        _answer(run, answer, definition, f"{where}.answer[{j}]")
        if answer.get("item") is not None:
            _items(run, as_list(answer.get("item")), children, f"{where}.answer[{j}]", answers, completed)
    if item.get("item") is not None:
        _items(run, as_list(item.get("item")), children, where, answers, completed)
    elif kind == "group" and completed:
        _items(run, [], children, where, answers, completed)   # required items of a group that is present


def _answer(run, answer, definition, where):
    kind = definition.get("type")
    value_key = next((k for k in answer if isinstance(k, str) and k.startswith("value")), None)
    if value_key is None or kind not in ANSWER_TYPES:
        return
    vtype, value = value_key[5:], answer[value_key]
    if vtype not in ANSWER_TYPES[kind]:
        allowed = ", ".join("value" + t for t in ANSWER_TYPES[kind])
        run.add("error", "structure", f"{where}.value.ofType({vtype[:1].lower() + vtype[1:]})",
                f"The answer to the {kind} item '{definition.get('linkId')}' must be of type {allowed}, not "
                f"{value_key}")
        return
    limit = definition.get("maxLength")
    if isinstance(value, str) and isinstance(limit, int) and len(value) > limit:
        run.add("error", "too-long", where, f"The answer is {len(value)} characters long, more than the "
                f"{limit} that the item '{definition.get('linkId')}' allows (maxLength)")
    places = _extension(definition, MAX_DECIMAL_PLACES, "valueInteger")
    if vtype == "Decimal" and isinstance(places, int) and _decimal_places(value) > places:
        run.add("error", "business-rule", where, f"The answer {value} has {_decimal_places(value)} decimal "
                f"places, more than the {places} that the item '{definition.get('linkId')}' allows "
                f"(maxDecimalPlaces)")
    if kind in ("choice", "open-choice"):
        _option(run, vtype, value, definition, where)


def _option(run, vtype, value, definition, where):
    """A choice answer is one of the item's answerOption values, or a member of its answerValueSet; an
    open-choice item also takes a free string, and codings beyond its options (R4 item-type: "open-choice").
    """
    link = definition.get("linkId")
    options = [o for o in as_list(definition.get("answerOption")) if isinstance(o, dict)]
    if vtype == "String" and definition.get("type") == "open-choice":
        return
    if options:
        chosen = [next((o[k] for k in o if k.startswith("value")), None) for o in options]
        matches = any(_same_option(vtype, value, c) for c in chosen)
        if not matches and definition.get("type") == "choice":
            run.add("error", "code-invalid", where, f"The answer is not one of the options of the item '{link}'")
        return
    vs = definition.get("answerValueSet")
    if vtype == "Coding" and isinstance(value, dict) and isinstance(vs, str) and not vs.startswith("#") \
            and definition.get("type") == "choice":
        expansion = run.v.tx.expand(vs)
        if expansion is not None and expansion.contains(value.get("system"), value.get("code")) is False:
            run.add("error", "code-invalid", where, f"The answer {value.get('system')}#{value.get('code')} is not "
                    f"in the value set {vs} of the item '{link}'")


def _same_option(vtype, value, option) -> bool:
    if vtype == "Coding":
        return isinstance(option, dict) and isinstance(value, dict) and option.get("code") == value.get("code") \
            and (option.get("system") == value.get("system") or None in (option.get("system"), value.get("system")))
    if vtype == "Reference":
        return isinstance(option, dict) and isinstance(value, dict) and option.get("reference") == value.get(
            "reference")
    return option == value


def _enabled(definition, answers) -> bool | None:
    """Whether an item is enabled (R4 Questionnaire.item.enableWhen, enableBehavior): True, False, or None
    when a condition cannot be evaluated here (then a required item is not judged missing)."""
    conditions = [c for c in as_list(definition.get("enableWhen")) if isinstance(c, dict)]
    if not conditions:
        return True
    results = [_condition(c, answers) for c in conditions]
    if definition.get("enableBehavior") == "any":
        return True if True in results else (None if None in results else False)
    return False if False in results else (None if None in results else True)


def _condition(condition, answers) -> bool | None:
    given = answers.get(condition.get("question"))
    op = condition.get("operator")
    wanted_key = next((k for k in condition if isinstance(k, str) and k.startswith("answer")), None)
    if wanted_key is None:
        return None
    wanted = condition[wanted_key]
    if condition.get("question") not in answers:
        # not answered: `exists false` holds, every comparison fails (nothing to compare)
        return wanted is False if op == "exists" else False
    if given is None:
        return None     # answered in several places (a repeating group): which answer counts is not known
    if op == "exists":
        return bool(given) == wanted if isinstance(wanted, bool) else None
    values = [a[k] for a in given for k in a if k.startswith("value")]
    if op in ("=", "!="):
        equal = any(_equal(v, wanted) for v in values)
        return equal if op == "=" else not equal
    if op in ("<", ">", "<=", ">=") and all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                            for v in values + [wanted]):
        try:
            return any({"<": v < wanted, ">": v > wanted, "<=": v <= wanted, ">=": v >= wanted}[op] for v in values)
        except TypeError:
            return None
    return None


def _equal(value, wanted) -> bool:
    if isinstance(value, dict) and isinstance(wanted, dict):   # Coding, Quantity, Reference: what the condition gives
        keys = [k for k in ("value", "code", "system", "reference") if k in wanted]
        return bool(keys) and all(value.get(k) == wanted[k] for k in keys)
    return value == wanted and type(value) is type(wanted)


def _answers_by_link(items, found=None) -> dict:
    """linkId -> the answers given to it anywhere in the response (enableWhen names a question by linkId);
    a linkId answered in several places maps to None, as which answer a condition reads is not known."""
    found = {} if found is None else found
    for item in as_list(items):
        if not isinstance(item, dict):
            continue
        link = item.get("linkId")
        if isinstance(link, str):
            found[link] = None if link in found else [a for a in as_list(item.get("answer")) if isinstance(a, dict)]
        _answers_by_link(item.get("item"), found)
        for answer in as_list(item.get("answer")):
            if isinstance(answer, dict):
                _answers_by_link(answer.get("item"), found)
    return found


def _decimal_places(value) -> int:
    try:
        exponent = Decimal(repr(value) if isinstance(value, float) else str(value)).as_tuple().exponent
    except (InvalidOperation, ValueError):
        return 0
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _extension(element, url, key):
    for ext in as_list(element.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext.get(key)
    return None
