"""The import closure: the modules of a vendored package the supervisor's code can reach.

Read from the source with :mod:`ast`, never by importing it: every import of a kept
module counts, also those inside functions (they run at call time), except those of
modules that could not be imported anyway for want of a package the artefact lacks.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..errors import BuildError
from .layout import PACKAGE
from .staging import package_files, remove_empty_dirs

__all__ = ["module_imports", "prune_modules", "supervisor_imports"]


@dataclass(frozen=True)
class _Imports:
    required: frozenset[str]  # run when the module is imported, unguarded
    optional: frozenset[str]  # inside functions, or guarded by ``except ImportError``


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _guards_import_error(node: ast.Try) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    for handler in node.handlers:
        kinds = handler.type
        exprs = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
        if kinds is None or any(isinstance(e, ast.Name) and e.id in names for e in exprs):
            return True
    return False


def module_imports(source: str, module: str, is_package: bool) -> _Imports:
    """The modules a source file imports; ``if TYPE_CHECKING:`` blocks left out.

    ``from X import a`` counts as importing ``X`` and, when it is a module, ``X.a``.
    """
    required: set[str] = set()
    optional: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]

    def add(names: Iterable[str], guarded: bool) -> None:
        (optional if guarded else required).update(names)

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_one(stmt, guarded)
                continue
            visit_one(child, guarded)

    def visit_one(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            add((alias.name for alias in node.names), guarded)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                head = base[:len(base) - (node.level - 1)]
                name = ".".join(head + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            add([name] + [f"{name}.{alias.name}" for alias in node.names if alias.name != "*"],
                guarded)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(node, True)
        elif isinstance(node, ast.Try) and _guards_import_error(node):
            for stmt in node.body:
                visit_one(stmt, True)
            for handler in node.handlers:  # the fallback when the import failed
                visit(handler, True)
            for stmt in [*node.orelse, *node.finalbody]:
                visit_one(stmt, guarded)
        else:
            visit(node, guarded)

    visit(ast.parse(source), False)
    return _Imports(frozenset(n for n in required if n), frozenset(n for n in optional if n))


def _module_file(tree: Path, module: str) -> Optional[Path]:
    path = tree.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _stdlib_names() -> frozenset[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    # Python 3.9: every top-level module found outside site-packages is standard.
    import importlib.util
    import pkgutil

    found = set(sys.builtin_module_names)
    for info in pkgutil.iter_modules():
        spec = importlib.util.find_spec(info.name)
        origin = getattr(spec, "origin", None) or ""
        if "site-packages" not in origin and "dist-packages" not in origin:
            found.add(info.name)
    return frozenset(found)


def prune_modules(tree: Path, package: str, roots: Iterable[str],
                  available: Iterable[str]) -> list[str]:
    """Cut ``package`` in ``tree`` down to the import closure of ``roots``; return it.

    The closure follows every import of a kept module, also those inside functions
    (they run lazily, at call time), except imports of modules that cannot be imported
    here anyway: a module whose unguarded module-level imports need a top-level
    package that is not in ``available`` (nor the standard library), like
    powertools' pydantic helpers without pydantic. Parents of a kept module are kept
    (their ``__init__`` runs first). Everything else under ``package`` is deleted,
    data files included.
    """
    have = set(available) | _stdlib_names()
    cache: dict[str, Optional[_Imports]] = {}

    def imports_of(module: str) -> Optional[_Imports]:
        if module not in cache:
            path = _module_file(tree, module)
            cache[module] = None if path is None else module_imports(
                path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        return cache[module]

    broken: dict[str, bool] = {}

    def importable(module: str, stack: frozenset[str] = frozenset()) -> bool:
        if module in broken:
            return not broken[module]
        if module in stack:
            return True
        parts = module.split(".")
        chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        ok = True
        for name in chain:
            found = imports_of(name)
            if found is None:
                continue  # an attribute of a module (from X import name), not a module
            for dep in found.required:
                top = dep.split(".")[0]
                if top == package:
                    if imports_of(dep) is not None and not importable(dep, stack | {module}):
                        ok = False
                elif top not in have:
                    ok = False
        broken[module] = not ok
        return ok

    keep: set[str] = set()
    todo = [r for r in roots if r.split(".")[0] == package]
    while todo:
        module = todo.pop()
        if module in keep or imports_of(module) is None or not importable(module):
            continue
        keep.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        found = imports_of(module)
        assert found is not None
        todo.extend(d for d in found.required | found.optional if d.split(".")[0] == package)
    if package not in keep:
        raise BuildError(f"nothing of {package} is imported by the supervisor")
    files = set()
    for module in keep:
        path = _module_file(tree, module)
        assert path is not None
        files.add(path)
    for path in sorted((tree / package).rglob("*")):
        if path.is_file() and path not in files:
            path.unlink()
    remove_empty_dirs(tree / package)
    return sorted(keep)


def supervisor_imports(package: str, source: Path = PACKAGE) -> list[str]:
    """The modules of ``package`` the supervisor's own files import (module or lazily)."""
    found: set[str] = set()
    for path in package_files(source):
        if path.suffix != ".py":
            continue
        rel = path.relative_to(source).with_suffix("")
        parts = ["supervisor", *rel.parts]
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        imports = module_imports(path.read_text(encoding="utf-8"), name, is_pkg)
        found.update(d for d in imports.required | imports.optional
                     if d.split(".")[0] == package)
    return sorted(found)
