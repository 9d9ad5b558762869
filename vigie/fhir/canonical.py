"""A definition a resource points to by canonical URL (a QuestionnaireResponse's questionnaire, a
MeasureReport's measure): contained in the resource (`#id`) or loaded from the packages; None when not at hand."""
from __future__ import annotations


def at_hand(run, owner: dict, url: str, resource_type: str) -> dict | None:
    if url.startswith("#"):
        return next((r for r in as_list(owner.get("contained")) if isinstance(r, dict)
                     and r.get("resourceType") == resource_type and r.get("id") == url[1:]), None)
    found = run.v.packages.resolve(url, resource_type)
    return found if isinstance(found, dict) and found.get("resourceType") == resource_type else None


def as_list(value) -> list:
    return value if isinstance(value, list) else []
