"""What vigie writes to a FHIR target, and how it leaves the system as it was.

Three checks write (README: "What vigie writes to a FHIR target"): the load phase creates Encounters, TRACE-03
creates an Observation, API-ACCESS-06 tries a create with the reader's token. Everything they create carries
two tags: vigie's origin (vigie.fhirrest.CREATED_TAG, which the checks that judge served data leave out) and
the run's id (RUN_TAG_SYSTEM), by which the run finds and deletes its own writes once its checks are done,
where the server allows DELETE. With --read-only nothing is written: the writing checks are not_tested and
the load mix leaves out its writing tasks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

RUN_TAG_SYSTEM = "http://vigie.invalid/CodeSystem/run"
READ_ONLY_REASON = "--read-only: this check writes to the system"
# environment of the load process (and of `vigie run --worker`): the run's id and its policy
RUN_ID_VARIABLE, READ_ONLY_VARIABLE = "VIGIE_RUN_ID", "VIGIE_READ_ONLY"
PAGE = 100
MAX_ROUNDS = 50            # searches per type: at most PAGE * MAX_ROUNDS deletions each
ALLOWED = (200, 202, 204)
GONE = (404, 410)


_wrote = False   # whether a writing check or the load phase ran in this run: only then is there anything to delete


def begin(run_id: str | None, read_only: bool) -> None:
    """The run's policy, for this process and the processes it starts."""
    global _wrote
    _wrote = False
    os.environ[READ_ONLY_VARIABLE] = "1" if read_only else ""
    if run_id:
        os.environ[RUN_ID_VARIABLE] = run_id
    else:
        os.environ.pop(RUN_ID_VARIABLE, None)


def may_write() -> None:
    """Says that a check that may write (a writing check, the load phase) is about to run."""
    global _wrote
    _wrote = True


def wrote() -> bool:
    return _wrote


def read_only() -> bool:
    return bool(os.environ.get(READ_ONLY_VARIABLE))


def run_tag() -> dict | None:
    run_id = os.environ.get(RUN_ID_VARIABLE)
    return {"system": RUN_TAG_SYSTEM, "code": run_id} if run_id else None


def writes(marker_writes, params: dict) -> bool:
    """Whether a check writes for a requirement's params: its @check(writes=...) is a bool or a predicate."""
    return bool(marker_writes(params) if callable(marker_writes) else marker_writes)


@dataclass
class Cleanup:
    """What became of one target's writes: how many tagged resources of this run were found and deleted,
    and why some were left (the server refuses DELETE or cannot search by tag)."""
    target: str
    found: int = 0
    deleted: int = 0
    left_because: str | None = None
    types: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"target": self.target, "found": self.found, "deleted": self.deleted,
                "left_because": self.left_because, "types": self.types}


def clean(http, types: list[str], run_id: str, target_id: str) -> Cleanup:
    """Deletes the resources of `types` tagged with this run's id, as the target's default token. Only a
    resource that the answer shows carrying the run's tag is deleted: a server that ignores `_tag` (lenient
    handling of an unknown parameter) returns its own data, which vigie never touches."""
    from .errors import ObservationError
    result = Cleanup(target_id)
    tag = f"{RUN_TAG_SYSTEM}|{run_id}"
    try:
        for rtype in types:
            deleted: set[str] = set()
            for _ in range(MAX_ROUNDS):
                response = http.get(rtype, params={"_tag": tag, "_count": PAGE})
                if response.status_code != 200:
                    result.left_because = f"GET {rtype}?_tag={tag} answered {response.status_code}"
                    return result
                ids = _tagged_ids(response, rtype, run_id)
                if not ids:
                    break
                kept = set(ids) & deleted
                if kept:
                    result.left_because = f"{rtype}/{min(kept)} is still served after its DELETE"
                    return result
                result.found += len(ids)
                result.types[rtype] = result.types.get(rtype, 0) + len(ids)
                for rid in ids:
                    status = http.request("DELETE", f"{rtype}/{rid}", may_refuse=True).status_code
                    if status not in ALLOWED and status not in GONE:
                        result.left_because = f"DELETE {rtype}/{rid} answered {status}"
                        return result
                    result.deleted += 1
                    deleted.add(rid)
    except (ObservationError, ValueError, TypeError) as exc:
        result.left_because = str(exc)[:300]
    return result


def _tagged_ids(response, rtype: str, run_id: str) -> list[str]:
    """The ids of the rtype resources of a search answer that carry this run's tag."""
    from .fhirrest import resources_of
    try:
        bundle = response.json()
    except ValueError:
        raise ValueError(f"GET {rtype}?_tag=... did not answer JSON") from None
    if not isinstance(bundle, dict):
        raise TypeError(f"GET {rtype}?_tag=... did not answer a Bundle")
    return [r["id"] for r in resources_of(bundle)
            if isinstance(r.get("id"), str) and r.get("resourceType") == rtype and _carries(r, run_id)]


def _carries(resource: dict, run_id: str) -> bool:
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    return any(isinstance(t, dict) and t.get("system") == RUN_TAG_SYSTEM and t.get("code") == run_id
               for t in (tags if isinstance(tags, list) else []))
