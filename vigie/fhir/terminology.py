"""ValueSets expanded locally from the loaded packages. Membership answers True, False, or None when the
ValueSet cannot be expanded here (unknown system, filter we do not implement, missing package): None is never
an error; for a required binding it is an issue the validator could not judge (see values.py)."""
from __future__ import annotations

import re

from .packages import PackageSet, split_canonical

# code systems defined by a grammar rather than a list, that no package enumerates: a code is judged by its form
# (urn:ietf:bcp:13, MIME types: RFC 6838 type/subtype, optional parameters; and FHIR's shorthands xml, json and
# ttl, which CapabilityStatement.format allows)
GRAMMARS = {"urn:ietf:bcp:13": re.compile(r"xml|json|ttl|[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*"
                                          r"(\s*;.*)?")}


class Expansion:
    def __init__(self, codes: set[tuple[str, str]], open_systems: set[str], complete: bool):
        self.codes = codes
        self.open_systems = open_systems   # systems included whole, whose codes we cannot enumerate
        self.complete = complete

    def contains(self, system: str | None, code: str) -> bool | None:
        if not isinstance(code, str) or not isinstance(system, (str, type(None))):
            return None     # a malformed coding: reported by the structure checks
        if (system, code) in self.codes:
            return True
        if system is None and any(c == code for _, c in self.codes):
            return True
        grammar = GRAMMARS.get(system) if system else \
            (GRAMMARS.get(next(iter(self.open_systems))) if len(self.open_systems) == 1 else None)
        if grammar is not None and (system or not self.codes):
            return bool(grammar.fullmatch(code))
        if system is None and self.open_systems:
            return None     # a bare code, and systems whose codes we cannot list
        if system in self.open_systems or not self.complete:
            return None
        return False


class Terminology:
    def __init__(self, packages: PackageSet):
        self.packages = packages
        self._expansions: dict[str, Expansion | None] = {}
        self._codes: dict[str, dict | None] = {}

    def code_system(self, url: str) -> dict | None:
        return self.packages.resolve(url, "CodeSystem")

    def concepts(self, url: str) -> dict | None:
        """code -> (concept, parent code) for a complete CodeSystem loaded here, else None."""
        if not isinstance(url, str):
            return None
        if url not in self._codes:
            cs = self.code_system(url)
            if cs is None or cs.get("content") not in ("complete", None) or not cs.get("concept"):
                self._codes[url] = None
            else:
                table: dict = {}

                def walk(concepts, parent):
                    for c in concepts:
                        if isinstance(c, dict) and "code" in c:
                            table[c["code"]] = (c, parent)
                            walk(c.get("concept", ()), c["code"])
                walk(cs["concept"], None)
                self._codes[url] = table
        return self._codes[url]

    def code_known(self, system: str, code: str) -> bool | None:
        table = self.concepts(system)
        if table is None or not isinstance(code, str):
            return None
        if code in table:
            return True
        cs = self.code_system(system) or {}
        return None if cs.get("caseSensitive") is False and code.lower() in {c.lower() for c in table} else False

    def expand(self, url: str) -> Expansion | None:
        if not isinstance(url, str):
            return None
        base, _ = split_canonical(url)
        if base not in self._expansions:
            self._expansions[base] = None       # guards against ValueSets that include themselves
            vs = self.packages.resolve(url, "ValueSet")
            self._expansions[base] = self._expand(vs) if vs else None
        return self._expansions[base]

    def unexpandable_part(self, url: str, depth: int = 0) -> str:
        """What keeps a value set from being expanded here: itself, a value set it includes, or the code
        system of a filter (the first found)."""
        vs = self.packages.resolve(url, "ValueSet") if isinstance(url, str) else None
        if vs is None or depth > 8:
            return str(url)
        for inc in (vs.get("compose") or {}).get("include", ()):
            for sub in inc.get("valueSet", ()):
                if self.expand(sub) is None:
                    return self.unexpandable_part(sub, depth + 1)
            if inc.get("filter") and inc.get("system") and self.concepts(inc["system"]) is None:
                return inc["system"]
        return str(url)

    def _expand(self, vs: dict) -> Expansion | None:
        expansion = vs.get("expansion") or {}
        if expansion.get("contains") and not vs.get("compose"):
            codes = set()
            self._collect_contains(expansion["contains"], codes)
            return Expansion(codes, set(), True)
        compose = vs.get("compose")
        if not compose:
            return None
        codes: set = set()
        open_systems: set = set()
        complete = True
        for inc in compose.get("include", ()):
            part = self._include(inc)
            if part is None:
                complete = False
                continue
            codes |= part.codes
            open_systems |= part.open_systems
            complete = complete and part.complete
        for exc in compose.get("exclude", ()):
            part = self._include(exc)
            if part is None or part.open_systems:
                complete = False    # we cannot tell exactly what is excluded
                continue
            codes -= part.codes
        return Expansion(codes, open_systems, complete)

    def _collect_contains(self, contains, codes):
        for c in contains:
            if c.get("code") and c.get("system"):
                codes.add((c["system"], c["code"]))
            self._collect_contains(c.get("contains", ()), codes)

    def _include(self, inc: dict) -> Expansion | None:
        system = inc.get("system")
        parts: list[Expansion] = []
        for vs_url in inc.get("valueSet", ()):
            sub = self.expand(vs_url)
            if sub is None:
                return None
            parts.append(sub)
        if system:
            if inc.get("concept"):
                mine = Expansion({(system, c["code"]) for c in inc["concept"] if "code" in c}, set(), True)
            elif inc.get("filter"):
                mine = self._filter(system, inc["filter"])
                if mine is None:
                    return None
            else:
                table = self.concepts(system)
                if table is None:
                    mine = Expansion(set(), {system}, True)
                else:
                    mine = Expansion({(system, c) for c in table}, set(), True)
            parts.append(mine)
        if not parts:
            return None
        result = parts[0]
        for other in parts[1:]:   # several sources in one include intersect
            result = Expansion({c for c in result.codes if other.contains(*c) is not False}
                               | {c for c in other.codes if result.contains(*c) is not False and
                                  c[0] in result.open_systems},
                               result.open_systems & other.open_systems, result.complete and other.complete)
        return result

    def _filter(self, system: str, filters: list) -> Expansion | None:
        table = self.concepts(system)
        if table is None:
            return None
        selected = set(table)
        for f in filters:
            op, prop, value = f.get("op"), f.get("property"), f.get("value")
            if prop == "concept" and op in ("is-a", "descendent-of", "is-not-a"):
                below = self._descendants(table, value)
                if op == "is-a":
                    below = below | ({value} if value in table else set())
                selected = selected - below - {value} if op == "is-not-a" else selected & below
            elif op == "=" and prop:
                selected = {c for c in selected if _property(table[c][0], prop) == value}
            else:
                return None
        return Expansion({(system, c) for c in selected}, set(), True)

    def _descendants(self, table: dict, code: str) -> set[str]:
        children: dict[str, list[str]] = {}
        for c, (concept, parent) in table.items():
            if parent is not None:
                children.setdefault(parent, []).append(c)
            for p in concept.get("property", ()):
                if p.get("code") in ("parent", "subsumedBy") and p.get("valueCode"):
                    children.setdefault(p["valueCode"], []).append(c)
        out, stack = set(), [code]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in out:
                    out.add(child)
                    stack.append(child)
        return out


def _property(concept: dict, prop: str):
    for p in concept.get("property", ()):
        if p.get("code") == prop:
            for k, v in p.items():
                if k.startswith("value"):
                    return str(v).lower() if isinstance(v, bool) else v
    return None
