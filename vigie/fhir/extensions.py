"""Extensions: resolving their definitions, checking their context and their value, and the extensions of
primitive values (`_name`)."""
from __future__ import annotations

import re

from .plan import Node, Plan, TypeRef
from .packages import CORE_ID
from .primitives import PRIMITIVES

CORE_EXTENSIONS = "http://hl7.org/fhir/StructureDefinition/"
TOOLS_EXTENSIONS = "http://hl7.org/fhir/tools/StructureDefinition/"
SYSTEM_TYPE = "http://hl7.org/fhirpath/System."
CORE_SPACE = "http://hl7.org/fhir/StructureDefinition/"
EXT_CONTEXT_ANY = {"Element", "Base", "Resource", "DomainResource", "BackboneElement"}


class ExtensionChecks:
    """Mixed into walker.Run."""

    def walk_primitive_extension(self, ext, path, plan, holder=None):
        if not isinstance(ext, dict):
            self.add("error", "structure", path, "the '_' companion of a primitive must be a JSON object")
            return
        for key in ext:
            if key not in ("id", "extension"):
                self.add("error", "structure", path, f"Unrecognized property '{key}'")
        exts = ext.get("extension")
        if exts is not None:
            if not isinstance(exts, list):
                self.add("error", "structure", path + ".extension", "the property 'extension' must be a JSON array")
                return
            for i, e in enumerate(exts):
                self.walk_extension(e, None, None, f"{path}.extension[{i}]", plan, holder)

    def extensible(self, node: Node | None, path: str) -> bool:
        """Whether the element may carry a `_name` companion: not when R4's definitions type it with a FHIRPath
        system type (Resource.id, Element.id, Extension.url are http://hl7.org/fhirpath/System.String), a bare
        value rather than a FHIR data type built on Element, which is what carries `id` and `extension` (R4
        json.html, representation of primitive elements: `_name` holds the element's id and extensions)."""
        types = node.element.get("type") if node is not None else None
        if types and all(isinstance(t, dict) and str(t.get("code", "")).startswith(SYSTEM_TYPE) for t in types):
            self.add("error", "structure", path, f"The element {node.path} cannot have extensions: its type is a "
                     f"FHIRPath system type, which is not an Element")
            return False
        return True

    # --- extensions --------------------------------------------------------------------------------
    def walk_extension(self, value, node: Node | None, tref: TypeRef | None, path: str, plan: Plan,
                       holder: str | None = None):
        if not isinstance(value, dict):
            self.add("error", "structure", path, "an extension must be a JSON object")
            return
        url = value.get("url")
        # a primitive value given only by its extensions is in `_valueString` (JSON representation, 2.6.2.2):
        # value[x] exists all the same
        has_value = any(isinstance(k, str) and k.lstrip("_").startswith("value") for k in value)
        has_ext = bool(value.get("extension"))
        if has_value == has_ext:
            self.add("error", "invariant", path,
                     "ext-1: an extension must have either extensions or a value[x], not both"
                     if has_value else "ext-1: an extension must have either extensions or a value[x]")
        ext_plan = None
        profiles = tref.profiles if tref else ()
        for p in profiles:
            ext_plan = self.v.plan(p)
            if ext_plan:
                break
        absolute = isinstance(url, str) and ("://" in url or url.startswith("urn:"))
        if isinstance(url, str) and not absolute and ext_plan is None and (node is None or not node.slice_name) \
                and not (holder or "").endswith("Extension"):
            self.relative_extension_url(url, path)
        if ext_plan is None and absolute and (node is None or not node.slice_name):
            ext_plan = self.v.plan(url)
            if ext_plan is None:
                self._unknown_extension(url, path)
        elif ext_plan is None and profiles:
            # a profile's extension slice whose definition is not loaded: its value cannot be checked
            self.cannot_judge(path, profiles[0].split("|")[0], f"The extension {profiles[0]} is not loaded: the "
                              f"extension is not validated")
        if not isinstance(url, str):
            self.add("error", "required", path, "an extension must have a url")
        if ext_plan is not None and ext_plan.root is not None:
            if (node is None or not node.slice_name) and ext_plan.root.path == "Extension":
                self.check_context(ext_plan, path, holder)
            self.walk_object(value, ext_plan.root, None, path, ext_plan)
            self.check_constraints(value, ext_plan.root, path, ext_plan)
            return
        base = node or self.v.type_plan("Extension").root
        self.walk_object(value, base, tref or TypeRef("Extension"), path, plan)
        self.check_value(value, base, "Extension", path, plan)

    def _unknown_extension(self, url, path):
        # core-namespace extensions live in hl7.fhir.uv.extensions, which the HL7 validator always has and
        # vigie may not: said as information (nothing wrong is known); other HL7 IG namespaces are an error
        # when every dependency is loaded; any other unknown extension is warned. Where a dependency of the
        # loaded packages that is not loaded publishes in the extension's URL space, the extension is one
        # the validator could not judge for want of that package.
        core = url.startswith("http://hl7.org/fhir/StructureDefinition/")
        severity = "information" if core else "warning"
        if url.startswith(TOOLS_EXTENSIONS):
            # the IG publisher's own extensions (snapshot-base-version...), defined in hl7.fhir.uv.tools, which
            # the HL7 validator always has: an HL7 definition vigie has not loaded, so not judged
            self.cannot_judge(path, url, f"The extension {url} is defined by HL7 in hl7.fhir.uv.tools, which is "
                              f"not loaded: it is not validated", code="not-found")
        elif url.startswith("http://hl7.org/fhir/") and not core and not self.v.packages.missing:
            self.add("error", "structure", path,
                     f"The extension {url} could not be found so is not allowed here")
        elif self.v.packages.holder_of(url):
            self.cannot_judge(path, url, f"The extension {url} is not loaded, so it is not validated",
                              severity=severity, code="not-found")
        elif (owner := self.owner_of_space(url)) is not None:
            self.add("error", "structure", path, f"The extension {url} could not be found so is not allowed here: "
                     f"{owner.key}, which publishes the URL space {owner.canonical}, is loaded and does not "
                     f"define it")
        elif core:
            self.add("information", "not-found", path, f"The extension {url} is defined by HL7 in a package "
                     f"that is not loaded (hl7.fhir.uv.extensions): it is not validated")
        else:
            self.add("warning", "not-found", path,
                     f"The extension {url} is not loaded, so it is not validated")

    def owner_of_space(self, url: str):
        """The loaded package whose canonical URL space holds `url` when nothing else may define it there: a
        StructureDefinition's url is the package's canonical followed by its path (R4 canonical URLs:
        resource.html#canonical; packages: the manifest's `canonical`), so an extension that the package of
        that space does not define is unknown, not merely not loaded. None for the core package, whose space
        HL7 shares with its other publications, and when a version of that package that is not loaded could
        define it."""
        missing = {m.split("#")[0] for m in self.v.packages.missing}
        for package in self.v.packages.packages:
            canonical = package.canonical
            space = canonical.rstrip("/") + "/StructureDefinition/" if isinstance(canonical, str) else None
            # the guide's own definitions only (canonical/StructureDefinition/id): another guide of the same
            # publisher may live under a longer path of the same host
            if space and canonical.startswith(("http://", "https://")) and space != CORE_SPACE and \
                    url.startswith(space) and "/" not in url[len(space):] and package.id not in missing:
                return package
        return None

    def relative_extension_url(self, url: str, path: str):
        """Extension.url "SHALL be a URI for the Structure Definition defining the extension" (R4
        extensibility-definitions.html), and a StructureDefinition.url is an absolute URI: a relative url names
        no definition (the nested extensions of a complex extension aside, whose urls are their names)."""
        self.add("error", "structure", f"{path}.url", f"The extension url '{url}' is not an absolute URI, so it "
                 f"cannot identify the StructureDefinition that defines the extension")

    def check_context(self, ext_plan: Plan, path: str, holder: str | None = None):
        contexts = ext_plan.sd.get("context") or []
        if not contexts:
            return
        here = self._context_paths(path)
        if holder:
            here.add(holder)
            holder_type = self._type_at(holder)
            if holder_type:
                here.add(holder_type)
        if _in_context(contexts, here) or _in_context(contexts, self._type_paths(here)):
            return
        names = ", ".join(c.get("expression", "") for c in contexts)
        if ext_plan.url.startswith(CORE_EXTENSIONS) and self.v.packages.publishers(ext_plan.url) == [CORE_ID]:
            # HL7 maintains the core-namespace extensions in hl7.fhir.uv.extensions, whose definitions supersede
            # the R4 core package's copies (https://hl7.org/fhir/extensions/): the R4 core's own content uses
            # several outside the contexts its copy states (structuredefinition-fhir-type on
            # ElementDefinition.type), so a context from that copy alone cannot condemn a use
            url = ext_plan.url
            self.cannot_judge(path, url, f"The extension {url} is used outside the contexts "
                              f"the R4 core package states for it ({names}); its current definition is in "
                              f"hl7.fhir.uv.extensions.r4, which is not loaded", code="not-found")
            return
        self.add("error", "business-rule", path,
                 f"The extension {ext_plan.url} is not allowed to be used at this point (allowed: {names})")

    def _type_paths(self, paths: set[str]) -> set[str]:
        """The same elements named from their data types: Patient.address.line is also Address.line (an
        element context is "all elements matching a particular path", and a path can start at a data type;
        a profile's slice names the element by the resource's path, the data type's plan by the type's)."""
        out = set()
        for plain in paths:
            parts = plain.split(".")
            for i in range(1, len(parts) - 1):
                kind = self._type_at(".".join(parts[:i + 1]))
                if kind and kind[:1].isupper():
                    out.add(".".join([kind] + parts[i + 1:]))
        return out

    def _context_paths(self, path: str) -> set[str]:
        """Element paths (and data type names) of the element that holds the extension at `path`."""
        holder = path.rsplit(".", 1)[0]
        holder = holder.split("*/")[-1].lstrip(".") if "*/" in holder else holder
        plain = re.sub(r"\[\d+\]", "", holder)
        plain = re.sub(r"\.(\w+)\.ofType\((\w+)\)", lambda m: "." + m.group(1), plain)
        resource = self._resource_stack[-1].get("resourceType") if self._resource_stack else None
        if "*/" in path and resource:
            plain = resource + ("." + plain if plain else "")
        out = {plain}
        m = re.search(r"\.ofType\((\w+)\)$", holder)
        if m:
            out.add(m.group(1))
        node_type = self._type_at(plain)
        if node_type:
            out.add(node_type)
            if node_type in PRIMITIVES:
                out.add("PrimitiveType")
        return out

    def _type_at(self, plain_path: str) -> str | None:
        parts = plain_path.split(".")
        plan = self.v.type_plan(parts[0])
        if plan is None or len(parts) == 1:
            return parts[0] if plan else None
        node, tref = plan.root, None
        for part in parts[1:]:
            km = self.v.keymap(node, tref)
            hit = km.get(part)
            if hit is None:
                return None
            node, tref = hit
        if tref:
            return tref.code
        return node.types[0].code if len(node.types) == 1 else None


def _in_context(contexts, here: set[str]) -> bool:
    for ctx in contexts:
        kind, expr = ctx.get("type"), ctx.get("expression", "")
        if kind != "element" or expr in EXT_CONTEXT_ANY or expr in here:
            return True
        if any(h.endswith("." + expr) or expr.endswith("." + h) for h in here):
            return True
    return False
