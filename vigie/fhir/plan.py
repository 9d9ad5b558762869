"""A StructureDefinition compiled once into a validation plan: a tree of element nodes keyed by the JSON
property names they accept, with their cardinality, types, fixed/pattern values, binding, invariants and
slicing, so that validating an instance is dictionary lookups rather than walks over the snapshot."""
from __future__ import annotations

from dataclasses import dataclass

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"
SYSTEM_TYPES = {"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
                "DateTime": "dateTime", "Time": "time", "Date": "date"}
# invariants that the walker enforces itself (an empty element is refused structurally; an extension
# with both or neither value and extensions is checked directly), so they never reach FHIRPath
NATIVE_INVARIANTS = frozenset({"ele-1", "ext-1", "dom-3", "txt-2"})   # checked by the walker itself
# (txt-2 shares txt-1's FHIRPath, htmlChecks(), but states its own rule: some non-whitespace content)


@dataclass(frozen=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    aggregation: tuple[str, ...] = ()     # contained / referenced / bundled, when a profile restricts them


@dataclass(frozen=True)
class Constraint:
    key: str
    severity: str
    expression: str
    human: str
    source: str
    best_practice: bool = False


def _type_code(t: dict) -> str:
    code = t.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or code
        return SYSTEM_TYPES.get(code.rsplit(".", 1)[-1], "string")
    return code


def _aggregation(t: dict) -> tuple[str, ...]:
    modes = t.get("aggregation")
    return tuple(m for m in modes if isinstance(m, str)) if isinstance(modes, list) else ()


def _fixed(element: dict, prefix: str):
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return value
    return None


class Node:
    """One element of a StructureDefinition snapshot, with its direct children and slices."""

    __slots__ = (
        "_json_keys",
        "array",
        "binding",
        "children",
        "choice",
        "constraints",
        "content_ref",
        "element",
        "fixed",
        "id",
        "keymap",
        "max",
        "max_length",
        "max_value",
        "min",
        "min_value",
        "name",
        "path",
        "pattern",
        "plan",
        "slice_name",
        "slices",
        "slicing",
        "types",
    )

    def __init__(self, element: dict, plan: Plan):
        self.element = element
        self.plan = plan
        self.id = element.get("id") or element["path"]
        self.path = element["path"]
        self.name = self.path.rsplit(".", 1)[-1]
        self.choice = self.name.endswith("[x]")   # read for every item walked: an attribute, not a property
        self.min = int(element.get("min", 0) or 0)
        mx = element.get("max", "*")
        self.max = None if mx in ("*", None) else int(mx)
        base_max = (element.get("base") or {}).get("max", mx)
        self.array = base_max not in ("1", "0") if "." in self.path else False
        self.types = tuple(TypeRef(_type_code(t), tuple(t.get("profile", ())), tuple(t.get("targetProfile", ())),
                                   _aggregation(t))
                           for t in element.get("type", ()))
        self.fixed = _fixed(element, "fixed")
        self.pattern = _fixed(element, "pattern")
        b = element.get("binding") or {}
        self.binding = (b.get("strength"), b.get("valueSet")) if b.get("valueSet") else None
        self.constraints = tuple(
            Constraint(c["key"], c.get("severity", "error"), c["expression"], c.get("human", ""),
                       c.get("source", ""), any(x.get("url") == BEST_PRACTICE and x.get("valueBoolean")
                                                for x in c.get("extension", ())))
            for c in element.get("constraint", ())
            if c.get("expression") and c.get("key") not in NATIVE_INVARIANTS)
        self.children: list[Node] = []
        self.slices: list[Node] = []
        s = element.get("slicing")
        self.slicing = s if s and s.get("discriminator") is not None else (s or None)
        self.slice_name = element.get("sliceName")
        last = self.id.rpartition(".")[2]
        if self.slice_name is None and ":" in last:
            # a slice the definition names only in its id ("path:sliceName", ElementDefinition.id): still a
            # slice, not a second occurrence of the sliced element (R4 IPS's medication statement has such ids)
            self.slice_name = last.split(":", 1)[1] or None
        ref = element.get("contentReference")
        self.content_ref = ref[1:] if ref and ref.startswith("#") else None
        self.keymap = None
        self._json_keys = None
        self.min_value = _fixed(element, "minValue")
        self.max_value = _fixed(element, "maxValue")
        self.max_length = element.get("maxLength")

    @property
    def prohibited(self) -> bool:
        return self.max == 0

    def json_keys(self):
        """(JSON property name, type) pairs this element accepts."""
        if self._json_keys is None:
            if self.choice:
                base = self.name[:-3]
                self._json_keys = [(base + t.code[0].upper() + t.code[1:], t) for t in self.types if t.code]
            else:
                self._json_keys = [(self.name, self.types[0] if len(self.types) == 1 else None)]
        return self._json_keys

    def __repr__(self):
        return f"<Node {self.id}>"


class Plan:
    """A compiled StructureDefinition: `root` is the node of its first element."""

    def __init__(self, sd: dict):
        self.sd = sd
        self.url = sd.get("url")
        self.version = sd.get("version")
        self.type = sd.get("type")
        self.kind = sd.get("kind")
        self.by_id: dict[str, Node] = {}
        self.by_path: dict[str, Node] = {}
        elements = (sd.get("snapshot") or {}).get("element") or []
        self.root = None
        for element in elements:
            if "path" not in element:
                continue
            node = Node(element, self)
            self.by_id[node.id] = node
            if node.slice_name is None and ":" not in node.id:
                self.by_path.setdefault(node.path, node)
            if self.root is None:
                self.root = node
                continue
            parent_id, _, last = node.id.rpartition(".")
            if ":" in last and node.slice_name is not None:
                sliced = self.by_id.get(parent_id + "." + last.split(":", 1)[0] if parent_id else last)
                # re-slicing (`a:b/c`) hangs the slice on the sliced element too
                if sliced is not None:
                    sliced.slices.append(node)
                    continue
            parent = self.by_id.get(parent_id)
            if parent is not None:
                parent.children.append(node)

    @property
    def label(self) -> str:
        return f"{self.url}|{self.version}" if self.version else str(self.url)
