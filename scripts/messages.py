"""The English sentences vigie writes into outcomes, as templates for vigie/locale/fr.json.

Reads the check modules and the modules they observe with, and lists every f-string and string constant that
reads as a sentence (docstrings, SQL and identifiers aside), each f-string's replacement fields becoming named
parameters ({name}). `python scripts/messages.py --check` fails when a template has no French; without
--check, it adds the missing templates to vigie/locale/fr.json with an empty translation and drops the ones
the code no longer has.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "vigie" / "locale" / "fr.json"
# where outcome summaries and messages are written: the checks, and what they observe with
SOURCES = ("conformance", "security", "load", "vigie/tls", "vigie/warehouse", "vigie/fhir/validator.py",
           "vigie/fhir/rules.py", "vigie/fhir/terminology.py", "vigie/fhir/slicing.py", "vigie/fhir/walker.py",
           "vigie/fhir/extensions.py", "vigie/fhir/primitives.py", "vigie/fhir/values.py", "vigie/fhir/bundles.py", "vigie/fhir/questionnaires.py", "vigie/fhir/frenchids.py", "vigie/fhir/measures.py",
           "vigie/fhir/fhirpath.py", "vigie/fhir/snapshot.py", "vigie/fhir/vitalsigns.py", "vigie/fhir/xhtml.py",
           "vigie/fhir/searchparams.py",
           "vigie/fhir/fastpath.py", "vigie/fhirrest.py", "vigie/http.py", "vigie/observations.py",
           "vigie/fuzz.py", "vigie/identifiers.py", "vigie/source.py", "vigie/sourcetree.py", "vigie/loadrun.py",
           "vigie/load", "vigie/fhirvalidation.py", "vigie/plugin.py",
           "vigie/limits.py", "vigie/igprofile.py", "vigie/jwt.py", "vigie/masking.py", "vigie/evidence.py",
           "vigie/checks.py", "vigie/bundle.py", "vigie/runner.py", "vigie/cda", "vigie/writes.py",
           "vigie/extras.py")
SQL = re.compile(r"^\s*(SELECT|WITH|CREATE|INSERT|UPDATE|DELETE|DROP|ALTER|FROM|WHERE|JOIN|AND|OR|CASE|COUNT)\b")
WORD = re.compile(r"[A-Za-z]{2,}")
FORMAT_FIELD = re.compile(r"(?<!\{)\{[a-z_][a-z0-9_]*\}(?!\})")


def _files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, (ast.Constant, ast.JoinedStr)):
                found.add(id(first.value))
    return found


def _name(expr: ast.AST) -> str:
    name = re.sub(r"\W+", "_", ast.unparse(expr)).strip("_")[:24].strip("_").lower()
    return name if name and not name[0].isdigit() else f"x_{name}"


def _field(expr: ast.AST, names: dict[str, str]) -> str:
    source = ast.unparse(expr)
    if source not in names:
        name, n = _name(expr), 2
        while name in names.values():
            name, n = f"{_name(expr)}_{n}", n + 1
        names[source] = name
    return "{" + names[source] + "}"


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _operands(node: ast.AST) -> list[ast.AST]:
    """The operands of a chain of `+`, in order."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*_operands(node.left), *_operands(node.right)]
    return [node]


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str)


def template_of(node: ast.AST) -> str:
    """The template of a string node, or of a sentence made by `+` (its other operands become fields):
    literal text with braces doubled, replacement fields as {name}."""
    if isinstance(node, ast.Constant):   # a str.format template keeps its fields
        return node.value if FORMAT_FIELD.search(node.value) else _literal(node.value)
    parts, names = [], {}
    for operand in _operands(node):
        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
            parts.append(_literal(operand.value))
        elif isinstance(operand, ast.JoinedStr):
            for value in operand.values:
                parts.append(_literal(str(value.value)) if isinstance(value, ast.Constant)
                             else _field(value.value, names))
        else:
            parts.append(_field(operand, names))
    return "".join(parts)


def _sentence(template: str) -> bool:
    literal = re.sub(r"\{[^{}]*\}", " ", template.replace("{{", "").replace("}}", ""))
    words = len(WORD.findall(literal))
    fields = literal != template
    return (words >= 2 and " " in literal.strip() or words >= 1 and fields) and not SQL.match(literal)


def templates() -> dict[str, list[str]]:
    """template -> the places (file:line) that write it."""
    found: dict[str, list[str]] = {}
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                skip.update(id(v) for v in node.values)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "execute", "sql", "text"):   # database statements
                skip.update(id(a) for a in node.args)
        inner = set()   # the operands of a `+` chain (each is also a template of its own)
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                inner.update(id(n) for n in (node.left, node.right) if isinstance(n, ast.BinOp))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            chain = isinstance(node, ast.BinOp) and id(node) not in inner and any(map(_is_text, _operands(node)))
            if chain or _is_text(node):
                template = template_of(node)
                if _sentence(template):
                    found.setdefault(template, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def main(argv: list[str]) -> int:
    found = templates()
    catalogue = json.loads(CATALOGUE.read_text(encoding="utf-8")) if CATALOGUE.is_file() else {}
    missing = [t for t in found if not catalogue.get(t)]
    if "--check" in argv:
        for template in missing:
            print(f"no French for {template!r} ({found[template][0]})")
        return 1 if missing else 0
    kept = {t: catalogue.get(t, "") for t in sorted(found)}
    CATALOGUE.parent.mkdir(exist_ok=True)
    CATALOGUE.write_text(json.dumps(kept, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(kept)} templates, {len(missing)} without French")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
