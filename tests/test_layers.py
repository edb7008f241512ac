"""Layering: stage modules (one per rule) use the library modules, never each other."""

import ast
from pathlib import Path

from conftest import REPO

STAGES = REPO / "src" / "hscvad" / "stages"


def stage_imports(path: Path) -> set[str]:
    """The hscvad.stages modules that a module imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("hscvad.stages.")}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1:  # from .x import y / from . import x
                out |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
            elif node.level == 0 and mod.startswith("hscvad.stages."):
                out.add(mod.split(".")[2])
            elif node.level == 0 and mod == "hscvad.stages":
                out |= {a.name for a in node.names}
    return out


def test_no_stage_module_imports_another_stage():
    names = {p.stem for p in STAGES.glob("*.py")} - {"__init__", "common"}
    offenders = {p.name: sorted((stage_imports(p) & names) - {p.stem}) for p in STAGES.glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_check_sees_stage_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from .appearance import x\nfrom . import score\nfrom hscvad.stages.flow import run\n"
                 "import hscvad.stages.velocity\nfrom .common import log\nfrom ..features import y\n")
    assert stage_imports(f) == {"appearance", "score", "flow", "velocity", "common"}
