"""The files of a vendor's source tree that vigie analyses: real files under its root, never through a link.

A symbolic link in the tree is not followed: one leading outside the root would bring the reviewer's files (or
anything else on the machine) into the evidence, and one leading inside is read where it points. A link that
leaves the root towards code (a Python file, a folder, or nothing that exists) is listed: what it points to was
not analysed."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

EXCLUDED = (".git", ".venv", "venv", "node_modules", "__pycache__", ".tox")


@dataclass
class SourceTree:
    root: Path
    python: list[Path] = field(default_factory=list)      # real .py files, sorted
    links_out: list[str] = field(default_factory=list)    # "rel/path -> target": links leaving the root to code

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def walk(root: Path) -> SourceTree:
    """The tree's real Python files, outside the EXCLUDED folders, and the links that leave it towards code."""
    tree = SourceTree(root)
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root):   # os.walk does not descend into linked folders
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED)
        for name in [*dirs, *sorted(files)]:
            path = here / name
            if path.is_symlink():
                _link(tree, path, real_root)
            elif name in files and name.endswith(".py") and path.is_file():
                tree.python.append(path)
    tree.python.sort()
    return tree


def _link(tree: SourceTree, path: Path, real_root: Path) -> None:
    target = path.resolve()
    if target == real_root or real_root in target.parents:
        return    # inside the tree: the file is read where it really is
    if target.suffix == ".py" or target.is_dir() or not target.exists():
        tree.links_out.append(f"{tree.relative(path)} -> {os.readlink(path)}")


def real_files(root: Path, names) -> list[Path]:
    """The files of `root` itself (not below it) whose names `names` accepts, links left out."""
    return sorted(p for p in root.iterdir() if names(p.name) and p.is_file() and not p.is_symlink())
