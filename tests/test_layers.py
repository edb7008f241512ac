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


def test_every_builtin_backend_resolves_and_the_schema_lists_exactly_them():
    import yaml

    from hscvad.models import registry as R

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())["properties"]
    for section, reg in R.SECTION_REGISTRIES.items():
        enum = [b for b in schema[section]["properties"]["backend"]["enum"] if b is not None]
        builtin = sorted(R.BUILTIN_BACKENDS[reg.kind])
        assert sorted(enum) == builtin, section
        for name in builtin:
            cls = reg.get(name)  # imports the module; the OpenMMLab one imports no OpenMMLab code
            assert cls.backend_name == name and callable(cls.from_config)
            assert isinstance(getattr(cls, "uses_gpu", False), bool)
            # the paper's backends (the OpenMMLab module) run in its conda environment, no other does
            paper = R.BUILTIN_BACKENDS[reg.kind][name].startswith("hscvad.models.openmmlab.")
            assert getattr(cls, "conda_env", None) == ("openmmlab" if paper else None), name


def test_an_offline_run_imports_no_unused_stack():
    """Stages and their offline backends import neither the paper's module nor its stacks; the
    paper's module loads only when a paper backend is asked for."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hscvad.stages import appearance, detect_track, flow, motion, pose, scene, score, train_hsc\n"
        "from hscvad.models import registry as R\n"
        "for reg, name in [(R.DETECTORS, 'yolox'), (R.TRACKERS, 'bytetrack'), (R.APPEARANCE, 'reid'),\n"
        "                  (R.SCENE, 'deeplabv3_voc'), (R.FLOW, 'dis'), (R.MOTION, 'skeleton')]:\n"
        "    reg.get(name)\n"
        "bad = [m for m in ('hscvad.models.openmmlab', 'mmdet', 'mmcv', 'mmpose', 'mmaction', 'timm',\n"
        "                   'ai_edge_litert') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "R.APPEARANCE.get('timm_vit')\n"
        "assert 'hscvad.models.openmmlab' in sys.modules and 'timm' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_registered_name_cannot_shadow_a_builtin_backend():
    import pytest

    from hscvad.models.registry import APPEARANCE

    with pytest.raises(ValueError, match="registered twice"):
        APPEARANCE.register("reid")(type("Other", (), {}))
    with pytest.raises(KeyError, match="known: efficientnet_lite0"):
        APPEARANCE.get("nope", "appearance.backend")
