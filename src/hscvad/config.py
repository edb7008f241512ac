"""Configuration: schema validation with defaults, model presets, and the params of each rule.

``rules/common.smk`` calls :func:`validate` once and builds every rule's ``params`` with
:func:`stage_params` from the stage's declaration (:mod:`hscvad.settings`), so that each rule sees
exactly the settings its result depends on.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .models.registry import SCENE

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

#: backends each model preset selects for the stages whose ``backend`` is null
PRESETS: dict[str, dict[str, str]] = {
    "offline": {"detection": "yolox", "tracking": "bytetrack", "appearance": "efficientnet_lite0",
                "scene": "deeplabv3_voc", "pose": "movenet", "motion": "skeleton"},
    # docs/method.md §2; FairMOT (mmtrack) has no release that installs beside mmdet 3: ByteTrack stands in
    "paper": {"detection": "mmdet_yolov3", "tracking": "mmdet_bytetrack", "appearance": "timm_vit",
              "scene": "mmseg_deeplabv3plus", "pose": "mmpose_hrnet", "motion": "mmaction_posec3d"},
}

#: the paper's per-dataset thresholds (supplement 3.1): detection score 0.8 / 0.8 / 0.5 and
#: tracking 0.7 / 0.5 / 0.3 for ShanghaiTech / Avenue / Ped2, applied with ``models: paper`` to
#: every dataset of that adapter unless the dataset sets them itself. The tracking threshold is
#: the score a detection needs to start a track (ByteTracker's init_track_thr).
PAPER_DATASET_SETTINGS: dict[str, dict[str, dict]] = {
    "shanghaitech": {"detection": {"score_threshold": 0.8}, "tracking": {"mmdet_bytetrack": {"init_track_thr": 0.7}}},
    "avenue": {"detection": {"score_threshold": 0.8}, "tracking": {"mmdet_bytetrack": {"init_track_thr": 0.5}}},
    "ucsd_ped": {"detection": {"score_threshold": 0.5}, "tracking": {"mmdet_bytetrack": {"init_track_thr": 0.3}}},
}

class ConfigError(ValueError):
    """An invalid configuration; the message names the key."""


#: sections a dataset may override (``datasets.<name>.<section>``), validated merged with the section
OVERRIDABLE_SECTIONS = ("detection", "tracking")
#: every section a dataset may override (the evaluation protocols too); read through :func:`section`
DATASET_SECTIONS = (*OVERRIDABLE_SECTIONS, "evaluation")


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml's parser where PyYAML has it (the same documents, 8x
    faster: every job reads the schema)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_schema(path: Path | None = None) -> dict:
    if path is None or Path(path).resolve() == SCHEMA_PATH:
        return copy.deepcopy(_schema())
    return load_yaml(Path(path).read_text())


@lru_cache(maxsize=1)
def _schema() -> dict:
    return load_yaml(SCHEMA_PATH.read_text())


def _filling_defaults(validator_class):
    """A jsonschema validator class that also fills in each missing property's default while it
    validates (the recipe in jsonschema's FAQ, which ``snakemake.utils.validate(set_default=True)``
    uses too), following ``$ref`` and ``allOf``; each default is copied, so no two places share one."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if key not in instance and "default" in sub:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(validator_class, {"properties": properties})


_YAML_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None), "array": list,
               "object": dict}


def _subschema(schema: dict, root: dict) -> dict:
    """``schema`` with its ``$ref`` / ``allOf`` references merged in (enough to read types and properties)."""
    if "$ref" in schema:
        schema = {**_resolve(schema["$ref"], root), **{k: v for k, v in schema.items() if k != "$ref"}}
    for part in schema.get("allOf", []):
        schema = {**_subschema(part, root), **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


#: a number as people write it: 1e-3, 1E5, .5, -2., +3.0e+2 (YAML 1.1, which Snakemake's and PyYAML's
#: loaders follow, reads a float only with a dot and a signed exponent, so 1e-3 arrives as a string)
_NUMBER = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$")


def _number(text: str, integer: bool) -> int | float | None:
    """``text`` as a number when it is written as one; with ``integer``, only a whole number (1e5 is
    100000), else None."""
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text.replace("_", ""))
    if integer:
        return int(value) if value.is_integer() else None
    return int(value) if re.fullmatch(r"[-+]?[0-9_]+", text) else value


def coerce_strings(node: Any, schema: dict, root: dict) -> Any:
    """Typed values for strings where the schema wants another type.

    - A number as people write it (``1e-3``, ``1E5``, ``.5``) is a number wherever the schema wants
      one, in a config file and on the command line alike.
    - Snakemake reads the inside of a nested ``--config`` value as strings (``--config hsc='{epochs:
      201}'`` gives ``"201"``); such a string is read as YAML and kept when the result has one of
      the types the schema allows, so any nested setting can be given on the command line.

    Anything else stays a string, and validation then names the key.
    """
    schema = _subschema(schema, root)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(node, str) and types and "string" not in types:
        number = _number(node, integer="number" not in types)
        if number is not None and ({"number", "integer"} & set(types)):
            return number
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        wanted = [_YAML_TYPES[t] for t in types if t in _YAML_TYPES]
        is_bool = isinstance(value, bool)  # a bool is an int to isinstance; only "boolean" takes it
        if any(isinstance(value, w) for w in wanted) and (not is_bool or "boolean" in types):
            node = value
    if isinstance(node, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in list(node.items()):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                node[key] = coerce_strings(value, sub, root)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        node[:] = [coerce_strings(v, schema["items"], root) for v in node]
    return node


def _resolve(ref: str, root: dict) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """``config`` (in place) with every missing setting set to its schema default, numbers written
    as strings read as numbers; raises :class:`ConfigError` naming each invalid key. The model
    preset is not applied (see :func:`validate`)."""
    schema = schema or load_schema()
    coerce_strings(config, schema, schema)
    errors = _errors(config, schema)
    if errors:
        raise ConfigError(_error_text(errors))
    return config


def load_config(*paths: str | Path) -> dict:
    """The config files ``paths`` (later ones updating earlier ones, as Snakemake's --configfile;
    default: this checkout's config.yaml) with every default filled in, the model preset not
    applied: a complete config to edit and hand to Snakemake, or to :func:`validate`."""
    config: dict = {}
    for path in paths or (SCHEMA_PATH.parents[1] / "config.yaml",):
        config = deep_merge(config, load_yaml(Path(path).read_text()) or {})
    return with_defaults(config)


@lru_cache(maxsize=1)
def _defaults_tree() -> dict:
    return with_defaults({})


def defaults(path: str = "") -> Any:
    """The schema's default of the setting at dotted ``path`` (a section: all its defaults), a copy.
    The one place defaults are written is ``schemas/config.schema.yaml``."""
    node: Any = _defaults_tree()
    for key in filter(None, path.split(".")):
        node = node[key]
    return copy.deepcopy(node)


def backend_settings(section: str, backend: str, settings: dict | None = None,
                     section_keys: tuple[str, ...] = ()) -> dict:
    """A backend's complete settings: its block's schema defaults (``<section>.<backend>``, plus the
    section-level keys in ``section_keys`` that the backend reads) updated by ``settings``,
    validated; a backend the schema does not know (a plug-in) gets ``settings`` as given."""
    import jsonschema

    settings = copy.deepcopy(settings or {})
    block = load_schema()["properties"].get(section, {}).get("properties", {}).get(backend)
    if block is None:
        return settings
    extra = {k: settings.pop(k) for k in section_keys if k in settings}
    out = deep_merge(defaults(f"{section}.{backend}"), settings)
    coerce_strings(out, block, block)
    errors = [([section, backend, *e.path], e.message) for e in jsonschema.Draft202012Validator(block).iter_errors(out)]
    if errors:
        raise ConfigError(_error_text(errors))
    return {**{k: defaults(f"{section}.{k}") for k in section_keys}, **extra, **out}


def _with_plugins(schema: dict) -> dict:
    """``schema`` with the backends that plug-ins register (``$HSCVAD_PLUGINS``) added to each
    section's ``backend`` choices."""
    from .models.registry import SECTION_REGISTRIES

    extra = {sec: reg.plugin_names() for sec, reg in SECTION_REGISTRIES.items()}
    if not any(extra.values()):
        return schema
    schema = copy.deepcopy(schema)
    for sec, names in extra.items():
        backend = schema["properties"][sec]["properties"]["backend"]
        if "enum" in backend:
            backend["enum"] = [*backend["enum"], *names]
    return schema


def _errors(config: dict, schema: dict) -> list[tuple[list, str]]:
    import jsonschema

    schema = _with_plugins(schema)

    validator = _filling_defaults(jsonschema.Draft202012Validator)(schema)
    errors = [(list(e.path), e.message) for e in validator.iter_errors(config)]  # fills defaults as it goes
    # a dataset's overrides of a section must make a valid section: checked merged with the section
    for name, ds in (config.get("datasets") or {}).items():
        for sec in OVERRIDABLE_SECTIONS:
            if not (isinstance(ds, dict) and isinstance(ds.get(sec), dict) and ds[sec]
                    and isinstance(config.get(sec), dict)):
                continue
            sub = jsonschema.Draft202012Validator({**schema["properties"][sec], "definitions": schema["definitions"]})
            errors += [(["datasets", name, sec, *e.path], e.message) for e in
                       sub.iter_errors(deep_merge(config[sec], ds[sec]))]
    return errors


def _error_text(errors: list[tuple[list, str]]) -> str:
    lines = []
    for path, message in sorted(errors, key=lambda e: [str(p) for p in e[0]])[:10]:
        where = ".".join(str(p) for p in path) or "(top level)"
        lines.append(f"  {where}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` (in place) against the schema, fill defaults, apply the model preset."""
    with_defaults(config, schema)
    preset = PRESETS[config["models"]]
    for stage, backend in preset.items():
        if config[stage].get("backend") is None:
            config[stage]["backend"] = backend
    if config["scene"].get("foreground_classes") is None:
        fg = SCENE.get(config["scene"]["backend"], "scene.backend").foreground  # the backend's people and vehicles
        if not fg:
            raise ConfigError(f"scene.foreground_classes: set it for backend {config['scene']['backend']!r}")
        config["scene"]["foreground_classes"] = list(fg)
    if config["models"] == "paper":
        for ds in config["datasets"].values():
            for sec, values in PAPER_DATASET_SETTINGS.get(ds["adapter"], {}).items():
                ds[sec] = deep_merge(values, ds.get(sec) or {})
    for name, ds in config["datasets"].items():
        if ds["adapter"] == "shanghaitech" and ds.get("mixture") and ds["mixture"] not in ("01+02", "04+08", "10+12"):
            raise ConfigError(f"datasets.{name}.mixture: {ds['mixture']!r} is not one of 01+02, 04+08, 10+12")
    return config


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` updated recursively by ``override`` (Snakemake's ``update_config``), both left unchanged."""
    from snakemake.utils import update_config

    out = copy.deepcopy(base)
    update_config(out, copy.deepcopy(override or {}))
    return out


def dataset_cfg(config: dict, dataset: str) -> dict:
    if dataset not in config["datasets"]:
        raise ConfigError(f"datasets.{dataset}: no such dataset in the configuration "
                          f"(known: {', '.join(sorted(config['datasets']))})")
    ds = config["datasets"][dataset]
    return {k: ds[k] for k in ("adapter", "root", "fps", "mixture", "mixtures_dir") if k in ds}


def section(config: dict, dataset: str, name: str) -> dict:
    """A config section with the dataset's overrides applied."""
    return deep_merge(config[name], config["datasets"][dataset].get(name, {}))


def stage_params(config: dict, dataset: str, stage: str) -> dict[str, Any]:
    """Exactly the settings that determine rule ``stage``'s result for ``dataset``: its stage module's
    declaration (``SETTINGS``, see :mod:`hscvad.settings`) resolved against the validated config."""
    from .rules import declaration
    from .settings import resolve

    return resolve(declaration(stage), config, dataset)


def motion_augmentation_mode(config: dict, dataset: str) -> str | None:
    """'MA-,+' or 'MA-' when the dataset uses the motion stream with augmentation, else None."""
    if "motion" in config["datasets"][dataset]["streams"] and config["motion_augmentation"]["enabled"]:
        return config["motion_augmentation"]["mode"]
    return None


def params_json(config: dict, dataset: str, stage: str) -> str:
    return json.dumps(stage_params(config, dataset, stage), sort_keys=True)
