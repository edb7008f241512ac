"""Configuration: one place for every default (the schema), backends built from it, numbers as
people write them."""

import ast
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import MODELS, PED2, REPO, need_shared

from hscvad.config import ConfigError, backend_settings, defaults, load_config, load_schema, validate
from hscvad.models import registry as R

BUILTINS = [(section, name) for section, reg in R.SECTION_REGISTRIES.items()
            for name in sorted(R.BUILTIN_BACKENDS[reg.kind])]


@pytest.mark.parametrize("section,name", BUILTINS, ids=[f"{s}.{n}" for s, n in BUILTINS])
def test_a_backend_built_with_no_settings_gets_exactly_the_pipelines(section, name, monkeypatch):
    """``build(name)`` hands the backend the same settings as the pipeline's validated config."""
    reg = R.SECTION_REGISTRIES[section]
    cls = reg.get(name)
    seen = {}
    monkeypatch.setattr(cls, "from_config", classmethod(lambda c, cfg, runtime, key: seen.update(cfg=cfg, key=key)))
    reg.build(name)
    pipeline = validate(load_config())
    expected = dict(pipeline[section].get(name, {}))
    expected.update({k: pipeline[section][k] for k in getattr(cls, "section_settings", ())})
    assert seen == {"cfg": expected, "key": f"{section}.{name}"}


@need_shared(MODELS / "yolox_nano_416x416.onnx", PED2 / "testing" / "frames" / "01" / "100.jpg")
def test_yolox_and_bytetrack_built_alone_behave_as_in_the_pipeline():
    import cv2

    img = cv2.cvtColor(cv2.imread(str(PED2 / "testing" / "frames" / "01" / "100.jpg")), cv2.COLOR_BGR2RGB)
    weights = str(MODELS / "yolox_nano_416x416.onnx")
    pipeline = validate(load_config())
    alone = R.DETECTORS.build("yolox", {"weights": weights}).detect(img)
    piped = R.DETECTORS.build("yolox", {**pipeline["detection"]["yolox"], "weights": weights}, R.Runtime(),
                              "detection").detect(img)
    assert len(alone) > 5
    np.testing.assert_array_equal(alone.boxes, piped.boxes)
    a, b = R.TRACKERS.build("bytetrack"), R.TRACKERS.build("bytetrack", pipeline["tracking"]["bytetrack"])
    assert (a.high, a.low, a.new, a.t1, a.t2, a.t3, a.max_lost) == (b.high, b.low, b.new, b.t1, b.t2, b.t3, b.max_lost)


def _leaves(node, path=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, node


def test_config_yaml_restates_no_default():
    """The shipped config.yaml names the datasets and the fetch URLs, nothing else: every other
    setting's value is its schema default, written there once."""
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    assert set(shipped) == {"datasets", "fetch"}


def test_the_schema_writes_each_default_on_its_leaf():
    """An object's default is {}: its keys' defaults are on the keys (no second copy one level up)."""
    bad = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "default" in node and node["default"] != {} and path[-1] != "streams":
                bad.append(".".join(path))
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, str(i)))

    walk(load_schema(), ("schema",))
    assert not bad, bad


def _setting_names() -> set[str]:
    return {path[-1] for path, _ in _leaves(defaults()) if path and path[0] != "datasets"}


def _literal(node) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is not None
    return isinstance(node, ast.List | ast.Dict | ast.Tuple)


def _settings_dict(node) -> bool:
    """An expression named like a config section or block (cfg, det_cfg, params, config, settings)."""
    import re

    name = ast.unparse(node).split(".")[-1].split("[")[0]
    return re.search(r"cfg|config|param|setting|section", name) is not None


def second_defaults(path) -> list[str]:
    """Places in ``path`` that give a setting of the schema a default of their own: a literal
    default of a parameter named like a setting, or ``x.get("<setting>", <literal>)``."""
    names = _setting_names()
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.args + node.args.kwonlyargs
            positional = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            defaults_ = positional + node.args.kw_defaults
            for arg, default in zip(args, defaults_):
                if default is not None and arg.arg in names and _literal(default):
                    found.append(f"{path.name}:{node.lineno} {node.name}({arg.arg}=...)")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and _settings_dict(node.func.value) and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
              and node.args[0].value in names and _literal(node.args[1])):
            found.append(f"{path.name}:{node.lineno} .get({node.args[0].value!r}, ...)")
    return found


def test_no_backend_or_stage_writes_a_default_of_its_own():
    files = sorted((REPO / "src" / "hscvad" / "models").rglob("*.py")) + sorted(
        (REPO / "src" / "hscvad" / "stages").glob("*.py"))
    found = [f for path in files for f in second_defaults(path)]
    assert not found, found


def test_the_check_sees_a_second_default(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("class A:\n    def __init__(self, upscale=1.0, other=2):\n        pass\n"
                 "def g(cfg):\n    return cfg.get('nms_iou', 0.5), cfg.get('unrelated', 1), cfg.get('nms_iou')\n")
    assert [s.split(" ", 1)[1] for s in second_defaults(f)] == ["__init__(upscale=...)", ".get('nms_iou', ...)"]


def test_a_backend_setting_is_validated_and_named():
    with pytest.raises(ConfigError, match=r"detection.yolox: Additional properties are not allowed \('upscal'"):
        backend_settings("detection", "yolox", {"upscal": 2})
    with pytest.raises(ConfigError, match="tracking.bytetrack.high_threshold: 'high' is not of type 'number'"):
        backend_settings("tracking", "bytetrack", {"high_threshold": "high"})


@pytest.mark.parametrize("text,value", [("1e-3", 0.001), ("1E5", 100000.0), (".5", 0.5), ("-2.5e+1", -25.0),
                                         ("3", 3), ("1_000", 1000)])
def test_numbers_written_as_people_write_them_are_numbers(text, value, tmp_path):
    """Snakemake's own loaders: a config file (YAML 1.1 reads 1e-3 as a string) and --config."""
    from snakemake.common.configfile import load_configfile

    path = tmp_path / "c.yaml"
    path.write_text(f"hsc:\n  lr: {text}\n  epochs: 2\n")
    loaded = load_configfile(str(path))
    cfg = validate({**loaded, "datasets": {}})
    assert cfg["hsc"]["lr"] == value and type(cfg["hsc"]["lr"]) is type(value)


def test_an_integer_setting_takes_a_whole_number_in_any_notation():
    assert validate({"hsc": {"epochs": "1e2"}})["hsc"]["epochs"] == 100
    with pytest.raises(ConfigError, match="hsc.epochs: '2.5' is not of type 'integer'"):
        validate({"hsc": {"epochs": "2.5"}})
    with pytest.raises(ConfigError, match="hsc.lr: 'fast' is not of type 'number'"):
        validate({"hsc": {"lr": "fast"}})


def test_hscvad_config_prints_the_effective_configuration_with_descriptions(tmp_path):
    (tmp_path / "mine.yaml").write_text("hsc: {lr: 2e-3}\n")
    r = subprocess.run([sys.executable, "-m", "hscvad.cli", "config", str(REPO / "config.yaml"),
                        str(tmp_path / "mine.yaml"), "--set", "hsc.epochs=7"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["hsc"]["lr"] == 0.002 and shown["hsc"]["epochs"] == 7
    assert shown["detection"]["yolox"]["upscale"] == defaults("detection.yolox.upscale")
    assert shown["detection"]["backend"] == "yolox"  # the preset applied
    assert "  # learning rate\n  lr: 0.002" in r.stdout
