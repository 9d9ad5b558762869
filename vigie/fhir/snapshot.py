"""Snapshot generation for StructureDefinitions that carry only a differential: start from the base
definition's snapshot, unfold a data type's elements under an element when the differential reaches below
it, add slices after their sliced element, and merge each differential element into place."""
from __future__ import annotations

import copy

from .tarball import PackageError

# properties that a differential element replaces wholesale; constraints are added, not replaced
_LIST_ADD = ("constraint", "condition", "mapping")


def _seg_base(seg: str) -> str:
    return seg.split(":", 1)[0]


class SnapshotBuilder:
    def __init__(self, resolve_sd, snapshot_of):
        self.resolve_sd = resolve_sd          # url -> StructureDefinition
        self.snapshot_of = snapshot_of        # url -> snapshot element list (generated if needed)

    def build(self, sd: dict) -> list[dict]:
        base_url = sd.get("baseDefinition")
        if not base_url:
            raise PackageError(f"{sd.get('url')}: no baseDefinition and no snapshot")
        base_elements = self.snapshot_of(base_url)
        if base_elements is None:
            raise PackageError(f"{sd.get('url')}: base definition {base_url} is not loaded")
        elements = copy.deepcopy(base_elements)
        base_type = elements[0]["path"].split(".")[0] if elements else sd.get("type")
        own_type = sd.get("type") or base_type
        if own_type != base_type:   # a constraint on a type keeps its paths; a specialisation renames
            for e in elements:
                e["path"] = own_type + e["path"][len(base_type):]
                e["id"] = own_type + e.get("id", e["path"])[len(base_type):]
        self.elements = elements
        for diff in (sd.get("differential") or {}).get("element", ()):
            eid = diff.get("id") or self._id_from_path(diff)
            index = self._ensure(eid)
            if index is None:
                continue   # a path we cannot place: the validator keeps what it has
            self._merge(self.elements[index], diff)
        return self.elements

    @staticmethod
    def _id_from_path(diff: dict) -> str:
        path = diff.get("path", "")
        return path + (":" + diff["sliceName"] if diff.get("sliceName") else "")

    def _find(self, eid: str) -> int | None:
        for i, e in enumerate(self.elements):
            if e.get("id") == eid:
                return i
        return None

    def _subtree_end(self, index: int) -> int:
        """Index just past the element at `index`, its descendants and its slices."""
        eid = self.elements[index]["id"]
        i = index + 1
        while i < len(self.elements):
            other = self.elements[i]["id"]
            if other.startswith((eid + ".", eid + ":")):
                i += 1
            else:
                break
        return i

    def _ensure(self, eid: str) -> int | None:
        found = self._find(eid)
        if found is not None:
            return found
        parent_id, _, last = eid.rpartition(".")
        if not parent_id:
            return None
        if ":" in last:
            base_index = self._ensure(parent_id + "." + _seg_base(last))
            if base_index is None:
                return None
            base = self.elements[base_index]
            slice_name = last.split(":", 1)[1]
            new = {k: copy.deepcopy(v) for k, v in base.items() if k not in ("slicing",)}
            new["id"] = eid
            new["sliceName"] = slice_name
            # a slice's children are unfolded later from its type, as for any element
            end = self._subtree_end(base_index)
            self.elements.insert(end, new)
            return end
        parent_index = self._ensure(parent_id)
        if parent_index is None:
            return None
        found = self._find(eid)
        if found is not None:
            return found
        if not any(e["id"].startswith(parent_id + ".") for e in self.elements):
            self._unfold(parent_index)
            found = self._find(eid)
            if found is not None:
                return found
        # R4 choice renaming: `valueQuantity` in a differential constrains `value[x]`
        for i, e in enumerate(self.elements):
            eid_i = e["id"]
            if eid_i.startswith(parent_id + ".") and eid_i.endswith("[x]") and eid_i.count(".") == eid.count("."):
                stem = eid_i.rsplit(".", 1)[1][:-3]
                if last.startswith(stem) and last[len(stem):][:1].isupper():
                    code = last[len(stem):]
                    types = [t for t in e.get("type", ()) if t.get("code", "").lower() == code.lower()]
                    if types:
                        e["type"] = types
                    return i
        return None

    def _unfold(self, index: int) -> None:
        parent = self.elements[index]
        head, _, last = parent["id"].rpartition(".")
        if ":" in last:
            # a slice of a backbone element: its children are those of the element it slices
            base_id = (head + "." if head else "") + last.split(":", 1)[0]
            src = [e for e in self.elements if e["id"].startswith(base_id + ".")]
            if src:
                children = copy.deepcopy(src)
                for e in children:
                    e["id"] = parent["id"] + e["id"][len(base_id):]
                self.elements[index + 1:index + 1] = children
                return
        if parent.get("contentReference"):
            # the recursion repeats the base definition of the element, not this profile's constraints on it
            ref = parent["contentReference"].lstrip("#")
            base = self.snapshot_of("http://hl7.org/fhir/StructureDefinition/" + ref.split(".")[0]) or self.elements
            src = [e for e in base if e.get("path", "").startswith(ref + ".") and ":" not in e.get("id", "")]
            children = copy.deepcopy(src)
            old = ref
        else:
            types = parent.get("type") or []
            if len(types) != 1:
                return
            url = (types[0].get("profile") or [None])[0] or \
                f"http://hl7.org/fhir/StructureDefinition/{types[0].get('code')}"
            snap = self.snapshot_of(url)
            if not snap:
                return
            children = copy.deepcopy(snap[1:])
            old = snap[0]["path"]
        for e in children:
            e["path"] = parent["path"] + e["path"][len(old):]
            e["id"] = parent["id"] + e.get("id", e["path"])[len(old):]
        self.elements[index + 1:index + 1] = children

    @staticmethod
    def _merge(target: dict, diff: dict) -> None:
        for key, value in diff.items():
            if key in ("id", "path"):
                continue
            if key in _LIST_ADD:
                have = {c.get("key") for c in target.get(key, ()) if isinstance(c, dict)}
                target[key] = list(target.get(key, ())) + [c for c in value
                                                          if not isinstance(c, dict) or c.get("key") not in have]
            elif key == "type" and target.get("type"):
                target[key] = copy.deepcopy(value)
            else:
                target[key] = copy.deepcopy(value)
