"""Reading the real SAM-3D-Objects source by parsing it (it cannot be imported without CUDA).

`extract()` unpacks ../shared/upstream/sam-3d-objects-cf06676.tar.gz into a folder the caller
owns; the helpers answer questions about the files with `ast`, never by importing them.
"""

from __future__ import annotations

import ast
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = REPO.parent / "shared" / "upstream" / "sam-3d-objects-cf06676.tar.gz"

_MISSING = object()


def extract(into: Path) -> Path:
    """The checkout root (the folder holding notebook/inference.py)."""
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(into, filter="data")
    [root] = [p.parent.parent for p in into.glob("*/notebook/inference.py")]
    return root


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def find_def(tree: ast.AST, qualname: str) -> ast.FunctionDef | ast.ClassDef:
    """`Class.method`, `function` or `Class` at module level."""
    node: Any = tree
    for part in qualname.split("."):
        matches = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                   and n.name == part]
        if not matches:
            raise LookupError(f"{qualname}: no {part}")
        node = matches[-1]
    return node  # type: ignore[no-any-return]


def signature(tree: ast.AST, qualname: str) -> dict[str, Any]:
    """Parameter name → default (a Python value; _MISSING when required), self dropped."""
    fn = find_def(tree, qualname)
    assert isinstance(fn, ast.FunctionDef), qualname
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults = [_MISSING] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = {a.arg: d for a, d in zip(positional, defaults, strict=True)}
    params.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)})
    params.pop("self", None)
    return {k: (v if v is _MISSING or v is None else _literal(v)) for k, v in params.items()}


def _literal(node: Any) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call whose callee's last name is `name` (`f(...)`, `x.f(...)`)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if last == name:
                out.append(node)
    return out


def stored_keys(fn: ast.AST, var: str) -> set[str]:
    """String keys assigned as `var["key"] = …` inside `fn`."""
    return {t.slice.value for node in ast.walk(fn) if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Subscript)
            and isinstance(t.value, ast.Name) and t.value.id == var
            and isinstance(t.slice, ast.Constant) and isinstance(t.slice.value, str)}


def dict_keys(node: ast.Dict) -> set[str]:
    return {k.value for k in node.keys if isinstance(k, ast.Constant)}


@dataclass
class Imports:
    """Third-party top-level modules, by how they are imported: at load, under an `if`
    (a backend switch), or inside `try` (optional)."""

    top: set[str] = field(default_factory=set)
    conditional: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    files: set[Path] = field(default_factory=set)

    @property
    def all(self) -> set[str]:
        return self.top | self.conditional | self.optional


def import_closure(root: Path, start: str, package: str = "sam3d_objects") -> Imports:
    """What importing `start` (a file under root) imports at module level, following `package`."""
    found = Imports()
    todo = [root / start]
    while todo:
        path = todo.pop()
        if path in found.files:
            continue
        found.files.add(path)
        _walk(parse(path).body, path, root, package, "top", found, todo)
    return found


def _resolve(root: Path, dotted: str) -> list[Path]:
    parts = dotted.split(".")
    out = []
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                out.append(candidate)
    return out


def _walk(body: list[ast.stmt], path: Path, root: Path, package: str, how: str,
          found: Imports, todo: list[Path]) -> None:
    for node in body:
        if isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers)):
                _walk(block, path, root, package, "optional", found, todo)
            _walk(node.orelse + node.finalbody, path, root, package, how, found, todo)
        elif isinstance(node, ast.If):
            inner = "conditional" if how == "top" else how
            _walk(node.body + node.orelse, path, root, package, inner, found, todo)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for dotted in _imported(node, path, root):
                top = dotted.split(".")[0]
                if top == package:
                    todo.extend(_resolve(root, dotted))
                elif top not in sys.stdlib_module_names and top != "__future__":
                    getattr(found, how).add(top)


def _imported(node: ast.Import | ast.ImportFrom, path: Path, root: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    module = node.module or ""
    if node.level:
        base = list(path.relative_to(root).with_suffix("").parts)[:-1]  # the file's package
        base = base[:len(base) - (node.level - 1)]
        module = ".".join(base + ([module] if module else []))
    return [module] + [f"{module}.{a.name}" for a in node.names if a.name != "*"]


def requirement_names(path: Path) -> set[str]:
    """Distribution names in a requirements file, normalised (`MoGe @ git+…` → moge)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\s<>=!~@\[;]", line, maxsplit=1)[0].lower().replace("-", "_"))
    return names


def extras(root: Path) -> dict[str, Path]:
    """Extra name → its requirements file, from upstream's pyproject (hatch-requirements-txt)."""
    import tomllib

    hooks = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["metadata"][
        "hooks"]["requirements_txt"]
    return {name: root / files[0] for name, files in hooks["optional-dependencies"].items()}
