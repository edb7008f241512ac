"""The version of the code a stage's result depends on: a hash of the source of every ``hscvad``
module the stage can run.

Each rule's params carry it (``code=CODE("<rule>")`` in ``rules/``), and the workflow's rerun
triggers leave out Snakemake's own ``code`` trigger, which for ``script:`` rules compares the
script file's modification time (every rule runs the one ``scripts/run_stage.py``). So:

- editing a stage's module, or a module it imports (directly, inside a function, or through a
  relative import), changes the hash of exactly the stages that import it, and Snakemake reruns
  those jobs and what depends on their outputs;
- the module of each configured backend of the stage's sections (``detection.@backend`` in its
  declaration: :mod:`hscvad.settings`) counts too, since backends are imported by name at run time
  (:data:`hscvad.models.registry.BUILTIN_BACKENDS`); another backend's module does not;
- the hash is of file contents, not times: a fresh clone of the same commit has the same hashes
  and reruns nothing.

Comments and docstrings count as code (a comment-only edit reruns the stage): the hash is of the
bytes, which is simple to reason about and cannot miss a change.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "hscvad"
#: the index of rules (rule name -> stage module): it changes no result, so it is not hashed, and a
#: new rule does not rerun the stages that exist
NOT_HASHED = frozenset({"hscvad.rules"})
ROOT = Path(__file__).resolve().parent  # src/hscvad


def _module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``hscvad.x.y``) inside this package, if it is one."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@cache
def _imports(name: str) -> tuple[str, ...]:
    """The ``hscvad`` modules that module ``name`` imports anywhere in its source (top level or
    inside functions), each with the packages above it (whose ``__init__`` runs on import)."""
    path = _module_file(name)
    if path is None:
        return ()
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = _package_of(name, path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x`: x may be a module
    out: set[str] = set()
    for mod in found:
        if _module_file(mod) is None or mod in NOT_HASHED:
            continue
        parts = mod.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(out))


def closure(roots: tuple[str, ...] | list[str]) -> list[str]:
    """Every ``hscvad`` module reachable from ``roots`` through imports (roots included)."""
    seen: set[str] = set()
    todo = [r for r in roots if _module_file(r) is not None]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(m for m in _imports(mod) if m not in seen)
    return sorted(seen)


@cache
def source_hash(modules: tuple[str, ...]) -> str:
    """sha256 over the names and bytes of ``modules`` and everything they import, in a fixed order."""
    h = hashlib.sha256()
    for mod in closure(modules):
        path = _module_file(mod)
        h.update(mod.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def backend_modules(rule: str, config: dict, dataset: str) -> list[str]:
    """The modules of the backends that ``rule`` builds for ``dataset``: one per section whose
    backend its declaration reads (``<section>.@backend`` or ``<section>.backend``)."""
    from .config import section
    from .models.registry import BUILTIN_BACKENDS, SECTION_REGISTRIES
    from .rules import declaration
    from .settings import DATASET_SECTIONS, declared_paths

    mods = []
    for path in declared_paths(declaration(rule)):
        keys = path.split(".")
        sec = keys[0]
        if sec not in SECTION_REGISTRIES or not ({"@backend", "backend"} & set(keys[1:2])):
            continue
        cfg = section(config, dataset, sec) if sec in DATASET_SECTIONS else config[sec]
        target = BUILTIN_BACKENDS.get(SECTION_REGISTRIES[sec].kind, {}).get(cfg.get("backend"))
        if target:  # a plug-in backend (registered at run time) is not part of this package
            mods.append(target.split(":")[0])
    return sorted(set(mods))


def stage_code(rule: str, config: dict, dataset: str) -> str:
    """The code version of ``rule``'s result for ``dataset``: the job entry point, the rule's stage
    module and its configured backends, with everything they import."""
    from .rules import RULES

    stage = "hscvad.stages." + RULES[rule].split(":")[0]
    return source_hash(tuple(sorted({"hscvad.jobs", stage, *backend_modules(rule, config, dataset)})))
