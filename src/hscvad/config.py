"""Configuration: schema validation with defaults, model presets, and the params of each rule.

``rules/common.smk`` calls :func:`validate` once and builds every rule's ``params`` with
:func:`stage_params`, so that each rule sees exactly the settings its result depends on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from .models.registry import MOTION, SCENE

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


#: evaluation.localisation when not set (RBDC / TBDC as Ramachandra and Jones define them)
LOCALISATION_DEFAULTS = {"beta": 0.1, "alpha": 0.1, "max_fpr": 1.0, "min_region_area": 10, "overlap": 0.1}


class ConfigError(ValueError):
    """An invalid configuration; the message names the key."""


#: sections a dataset may override (``datasets.<name>.<section>``), validated merged with the section
OVERRIDABLE_SECTIONS = ("detection", "tracking")


def load_schema(path: Path | None = None) -> dict:
    return yaml.safe_load(Path(path or SCHEMA_PATH).read_text())


def _fill_defaults(node: dict, schema: dict, root: dict) -> None:
    props = schema.get("properties", {})
    for key, sub in props.items():
        if "$ref" in sub:
            sub = _resolve(sub["$ref"], root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            target = sub
            for part in sub.get("allOf", []):
                if "$ref" in part:
                    target = {**_resolve(part["$ref"], root), **{k: v for k, v in sub.items() if k != "allOf"}}
            _fill_defaults(node[key], target, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in props and isinstance(value, dict):
                _fill_defaults(value, extra, root)


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
    _fill_defaults(config, schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = [(list(e.path), e.message) for e in validator.iter_errors(config)]
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
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
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
    """Exactly the settings that determine ``stage``'s result for ``dataset``."""
    ds = dataset_cfg(config, dataset)
    T = config["clip_length"]
    if stage == "check_dataset":
        full = config["datasets"][dataset]
        return {"dataset": ds, "benchmark": full.get("benchmark"), "allow_partial": bool(full.get("allow_partial"))}
    if stage == "detect_track":
        det = section(config, dataset, "detection")
        det = {k: v for k, v in det.items() if k in ("backend", "classes", "score_threshold", det["backend"])}
        trk = section(config, dataset, "tracking")
        tracker = {"backend": trk["backend"], trk["backend"]: trk[trk["backend"]]}
        return {"dataset": ds, "detection": det, "tracking": tracker}
    if stage == "appearance":
        app = config["appearance"]
        keep = ("backend", "crops_per_sample", "context", "batch_size", app["backend"])
        return {"dataset": ds, "clip_length": T, "appearance": {k: app[k] for k in keep}}
    if stage == "scene":
        sc = config["scene"]
        keep = ("backend", "cell", "frame_stride", "foreground_classes", sc["backend"])
        return {"dataset": ds, "clip_length": T, "scene": {k: sc[k] for k in keep}}
    if stage == "pose":
        pose = config["pose"]
        keep = ("backend", "min_track_length", pose["backend"])
        return {"dataset": ds, "pose": {k: pose[k] for k in keep}}
    if stage == "motion":
        return {"clip_length": T, "motion": motion_backend_params(config)}
    if stage == "flow":
        fl = config["flow"]
        keep = ("backend", "orientation_bins", "magnitude_edges")
        return {"dataset": ds, "flow": {**{k: fl[k] for k in keep}, fl["backend"]: fl.get(fl["backend"], {})}}
    if stage == "velocity":
        return {"clip_length": T, "velocity": config["velocity"]}
    if stage == "scene_labels":
        return {"seed": config["seed"], "scene_labels": config["scene_labels"]}
    if stage in ("train_hsc", "retrain_motion"):
        streams = config["datasets"][dataset]["streams"] if stage == "train_hsc" else ["motion"]
        hsc = copy.deepcopy(config["hsc"])
        hsc.pop("readout")  # scoring's setting: changing it must not retrain
        hsc["architecture"] = {s: hsc["architecture"][s] for s in streams}
        out = {"seed": config["seed"], "streams": streams, "hsc": hsc}
        if "motion" in streams:
            out["motion_classes"] = ("action" if MOTION.get(config["motion"]["backend"], "motion.backend").has_classes
                                     else config["motion"]["n_classes"])
        return out
    if stage == "score":
        streams = config["datasets"][dataset]["streams"]
        return {"streams": streams, "seed": config["seed"],
                "hsc": {k: config["hsc"][k] for k in ("tau", "feature_norm")}, "readout": config["hsc"]["readout"],
                "motion_augmentation": motion_augmentation_mode(config, dataset)}
    if stage == "augment_motion":
        ma = config["motion_augmentation"]
        return {"seed": config["seed"], "hsc": {k: config["hsc"][k] for k in ("tau", "feature_norm")},
                "motion": motion_backend_params(config),
                "motion_augmentation": {k: ma[k] for k in ("mode", "p_spatial", "p_temporal", "t_norm", "t_abn")}}
    if stage == "train_motion_classifier":
        ma = config["motion_augmentation"]
        return {"seed": config["seed"], "hsc": {"feature_norm": config["hsc"]["feature_norm"]},
                "motion_augmentation": {k: ma[k] for k in ("fallback", "classifier")}}
    if stage == "evaluate":
        ev = section(config, dataset, "evaluation")
        ev["localisation"] = {**LOCALISATION_DEFAULTS, **ev.get("localisation", {})}
        return {"dataset": ds, "evaluation": ev}
    if stage == "explain":
        return {"dataset": ds, "explain": config["explain"]}
    raise KeyError(stage)


def motion_backend_params(config: dict) -> dict:
    """The motion feature backend and its settings (the part of ``motion`` that sets the feature)."""
    mot = config["motion"]
    out = {"backend": mot["backend"], "min_score": mot["min_score"]}
    if mot.get(mot["backend"]):
        out[mot["backend"]] = mot[mot["backend"]]
    return out


def motion_augmentation_mode(config: dict, dataset: str) -> str | None:
    """'MA-,+' or 'MA-' when the dataset uses the motion stream with augmentation, else None."""
    if "motion" in config["datasets"][dataset]["streams"] and config["motion_augmentation"]["enabled"]:
        return config["motion_augmentation"]["mode"]
    return None


def params_json(config: dict, dataset: str, stage: str) -> str:
    return json.dumps(stage_params(config, dataset, stage), sort_keys=True)
