"""Configuration: schema validation with defaults, model presets, and the params of each rule.

``rules/common.smk`` calls :func:`validate` once and builds every rule's ``params`` with
:func:`stage_params` from the stage's declaration (:mod:`hscvad.settings`), so that each rule sees
exactly the settings its result depends on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from .models.registry import SCENE

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

#: backends each model preset selects for the stages whose ``backend`` is null
PRESETS: dict[str, dict[str, str]] = {
    "offline": {"detection": "yolox", "tracking": "bytetrack", "appearance": "efficientnet_lite0",
                "scene": "deeplabv3_voc", "pose": "movenet", "motion": "skeleton"},
    # METHOD.md §2; FairMOT (mmtrack) has no release that installs beside mmdet 3: ByteTrack stands in
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

DEFAULT_ARCHITECTURE = {
    # supplement 3.2: appearance encoder [2048, 1280], decoder [1152, 1024 = feature size]
    "appearance": {"encoder_hidden": [2048], "latent": 1280, "decoder_hidden": [1152]},
    # motion encoder [1792, 1280], decoder [1024, feature size] (the paper's 512-d PoseConv3D feature)
    "motion": {"encoder_hidden": [1792], "latent": 1280, "decoder_hidden": [1024]},
    # the velocity stream (not in the paper): a 32-d descriptor, so a far smaller autoencoder; its
    # columns mix px/frame, shares and ratios, so they are standardised with training statistics, one
    # spread per group of columns in one unit (per-column spreads blow up directions never seen in training)
    "velocity": {"encoder_hidden": [256], "latent": 128, "decoder_hidden": [256], "input_norm": "group"},
}


class ConfigError(ValueError):
    """An invalid configuration; the message names the key."""


#: sections a dataset may override (``datasets.<name>.<section>``), validated merged with the section
OVERRIDABLE_SECTIONS = ("detection", "tracking")
#: every section a dataset may override (the evaluation protocols too); read through :func:`section`
DATASET_SECTIONS = (*OVERRIDABLE_SECTIONS, "evaluation")


def load_schema(path: Path | None = None) -> dict:
    return yaml.safe_load(Path(path or SCHEMA_PATH).read_text())


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


def coerce_strings(node: Any, schema: dict, root: dict) -> Any:
    """Typed values for strings where the schema wants another type.

    Snakemake reads the inside of a nested ``--config`` value as strings (``--config hsc='{epochs:
    201}'`` gives ``"201"``); such a string is read as YAML and kept when the result has one of the
    types the schema allows, so any nested setting can be given on the command line.
    """
    schema = _subschema(schema, root)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(node, str) and types and "string" not in types:
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


def validate(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` (in place) against the schema, fill defaults, apply the model preset."""
    import jsonschema

    schema = schema or load_schema()
    coerce_strings(config, schema, schema)
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
    if errors:
        lines = []
        for path, message in sorted(errors, key=lambda e: [str(p) for p in e[0]])[:10]:
            where = ".".join(str(p) for p in path) or "(top level)"
            lines.append(f"  {where}: {message}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
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
    arch = config["hsc"].setdefault("architecture", {})
    for stream, default in DEFAULT_ARCHITECTURE.items():
        arch[stream] = {**default, **arch.get(stream, {})}
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
    from .settings import declaration, resolve

    return resolve(declaration(stage), config, dataset)


def motion_augmentation_mode(config: dict, dataset: str) -> str | None:
    """'MA-,+' or 'MA-' when the dataset uses the motion stream with augmentation, else None."""
    if "motion" in config["datasets"][dataset]["streams"] and config["motion_augmentation"]["enabled"]:
        return config["motion_augmentation"]["mode"]
    return None


def params_json(config: dict, dataset: str, stage: str) -> str:
    return json.dumps(stage_params(config, dataset, stage), sort_keys=True)
