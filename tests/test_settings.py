"""Stage declarations (hscvad.settings): every rule's params are exactly the settings its stage
declares. For every rule and every setting of the configuration, changing the setting changes the
rule's params if and only if the stage declares it; every declared path exists in the schema, and
every setting of the schema is declared by some stage (or is one of the few that configure the
run, not a result)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hscvad.config import load_config, load_schema, stage_params, validate
from hscvad.models.registry import BUILTIN_BACKENDS, registry_for
from hscvad.rules import RULES, declaration
from hscvad.settings import Derived, declared_keys, declared_paths

REPO = Path(__file__).resolve().parents[1]
DATASET = "ped2"
#: settings that configure the run rather than a result: the preset (applied by validate, which fills
#: the backends), where models run (its own params entry), the downloads (the fetch rules' params), and
#: the videos per job (the same files either way; tests/test_workflow.py)
RUN_SETTINGS = ("models", "device", "fetch", "shards")


def _config() -> dict:
    cfg = load_config()
    # every stream and motion augmentation on, so that every declared setting is in use
    cfg["datasets"][DATASET]["streams"] = ["appearance", "motion", "velocity"]
    cfg["motion_augmentation"]["enabled"] = True
    return validate(cfg, load_schema())


def _leaves(node, path=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield list(path)


def _backend_names(section: str) -> dict[str, str]:
    """name -> "module:Class" of a section's built-in backends."""
    return {n: m for fam in BUILTIN_BACKENDS.values() for n, m in fam.items() if n in registry_for(section).names()}


def _other_backend(section: str, current: str) -> str:
    names = {n: m for n, m in _backend_names(section).items() if n != current}
    light = [n for n, m in sorted(names.items()) if "openmmlab" not in m]  # not importing mm* here
    return (light or sorted(names))[0]


def _perturbed(value, path):
    if path[-1] == "backend" and isinstance(value, str):
        return _other_backend(path[0], value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.1
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        return [*value, value[-1]] if value else [1]
    if value is None:
        return 1
    raise TypeError(f"{'.'.join(path)}: {value!r}")


def _set(cfg, path, value):
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _get(cfg, path):
    node = cfg
    for k in path:
        node = node[k]
    return node


def _nested(path, value):
    for k in reversed(path):
        value = {k: value}
    return value


def _has(node, path) -> bool:
    """Whether ``path`` is set in ``node`` (a dataset's override of the section setting ``path``)."""
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True


def _params(cfg, rule) -> str:
    return json.dumps(stage_params(cfg, DATASET, rule), sort_keys=True)


def _covers(declared: list[list[str]], leaf: list[str]) -> bool:
    return any(leaf[: len(d)] == d or d[: len(leaf)] == leaf for d in declared)


DECLARING = sorted(r for r in RULES if declaration(r))


@pytest.mark.parametrize("rule", DECLARING)
def test_params_change_exactly_with_the_declared_settings(rule):
    base = _config()
    declared = declared_keys(declaration(rule), base, DATASET)
    before = _params(base, rule)
    wrong_in, wrong_out = [], []
    for leaf in _leaves(base):
        cfg = copy.deepcopy(base)
        value = _get(cfg, leaf)
        if value == {}:  # an empty block: a dataset's overrides of a section; override one of its settings
            if leaf[:2] != ["datasets", DATASET]:
                continue
            section, sec = leaf[2], base[leaf[2]]
            blocks = _backend_names(section) if "backend" in sec else {}
            inner = next(p for p in _leaves(sec) if p[0] != "backend" and (p[0] == sec.get("backend")
                                                                          or p[0] not in blocks))
            _set(cfg, leaf, _nested(inner, _perturbed(_get(base[section], inner), [section, *inner])))
        else:
            _set(cfg, leaf, _perturbed(value, leaf))
        changed = _params(cfg, rule) != before
        overridden = leaf[0] in base["datasets"][DATASET] and _has(base["datasets"][DATASET], leaf)
        if _covers(declared, leaf) and not changed and not overridden:
            wrong_in.append(".".join(leaf))
        if not _covers(declared, leaf) and changed:
            wrong_out.append(".".join(leaf))
    assert not wrong_out, f"rule {rule}: params change with undeclared settings {wrong_out}"
    assert not wrong_in, f"rule {rule}: declared settings that do not reach its params {wrong_in}"


def _schema_node(schema: dict, node: dict) -> dict:
    if "$ref" in node:
        ref = node["$ref"].lstrip("#/").split("/")
        target = schema
        for part in ref:
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    for part in node.get("allOf", []):
        node = {**_schema_node(schema, part), **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _in_schema(schema: dict, path: list[str]) -> bool:
    node = schema
    for k in path:
        node = _schema_node(schema, node)
        props, extra = node.get("properties", {}), node.get("additionalProperties")
        if k in props:
            node = props[k]
        elif k != "@backend" and isinstance(extra, dict):  # a name of the user's (datasets, streams)
            node = extra
        elif k == "@backend":  # a backend's block: any of the section's backend names
            names = [n for n in props if n != "backend" and isinstance(props[n], dict)]
            if not names:
                return False
            node = props[names[0]]
        else:
            return False
    return True


def test_every_declared_path_is_in_the_schema():
    schema = load_schema()
    missing = sorted({p for r in DECLARING for p in declared_paths(declaration(r))
                      if not _in_schema(schema, p.split("."))})
    assert not missing, f"declared settings the schema does not know: {missing}"


def test_every_setting_is_declared_by_some_stage_or_configures_the_run():
    """A setting in the schema that no stage declares would change nothing a rule reruns on."""
    cfg = _config()
    declared = []
    for rule in DECLARING:
        for path in declared_paths(declaration(rule)):
            declared.append(path.format(dataset=DATASET).split("."))
    undeclared = []
    for leaf in _leaves(cfg):
        if leaf[0] in RUN_SETTINGS or (leaf[0] == "datasets" and leaf[1] != DATASET):
            continue
        backend_block = (len(leaf) > 1 and isinstance(cfg.get(leaf[0]), dict) and "backend" in cfg[leaf[0]]
                         and leaf[1] in _backend_names(leaf[0]))
        probe = [*leaf[:1], "@backend", *leaf[2:]] if backend_block else leaf
        if leaf[:2] == ["datasets", DATASET] and len(leaf) > 2 and leaf[2] in ("detection", "tracking", "evaluation"):
            continue  # a dataset's overrides of a section: covered by the section's declaration
        if not _covers(declared, probe):
            undeclared.append(".".join(leaf))
    assert not undeclared, f"settings no stage declares: {undeclared}"


def test_a_stage_changing_what_it_reads_fails_the_check():
    """The check above can fail: a declaration that leaves out a key the params read."""
    base = _config()
    decl = (Derived("x", (), lambda c, d: c["hsc"]["tau"]),)  # reads hsc.tau without declaring it
    from hscvad.settings import resolve

    cfg = copy.deepcopy(base)
    cfg["hsc"]["tau"] = base["hsc"]["tau"] * 2
    assert resolve(decl, cfg, DATASET) != resolve(decl, base, DATASET)
    assert not _covers(declared_keys(decl, base, DATASET), ["hsc", "tau"])

def test_every_rule_runs_its_stage_through_the_one_script():
    """Each rule of rules/*.smk that does work runs scripts/run_stage.py with its own declaration
    (``P("<rule>")``), and its rule name leads to its stage module (RULES)."""
    import re

    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    blocks = re.split(r"\n(?=rule |    rule:|        rule:|    checkpoint:)", text)
    seen = set()
    for block in blocks[1:]:
        if "print(params.note)" in block:  # fetch_<dataset> with its folder in place: a notice, no work
            continue
        m = re.match(r"rule (\w+):", block) or re.search(r'name:\s*\n\s*f"(fetch_)\{_name\}"', block)
        if not m:
            continue
        names = [m.group(1)] if m.group(1) != "fetch_" else ["fetch_ped2", "fetch_avenue"]
        if "script:" not in block and "shell:" not in block and "run:" not in block:  # aggregating (input only)
            continue
        # the downloads run the same job in a run: block (rules/fetch.smk says why)
        runs = "run_job(rule, input, output, params, wildcards, threads, log)" in block
        assert "shell:" not in block and ('"../scripts/run_stage.py"' in block or runs), names
        assert not runs or names[0].startswith("fetch_"), names
        for name in names:
            assert name in RULES, f"rule {name}: not in hscvad.rules.RULES"
            seen.add(name)
        p = re.search(r'p=P\("(\w+)"\)', block)
        if p:
            assert p.group(1) == names[0], f"rule {names[0]} passes the params of {p.group(1)}"
    assert seen == set(RULES), set(RULES) ^ seen
