"""The index of rules: which stage module runs each rule, and where its declaration of settings is.

Adding a rule changes this file only. The code version of a stage's result (:mod:`hscvad.codeversion`)
leaves this module out: it maps names to modules and changes no result, so a new rule does not rerun
the stages that exist.
"""

from __future__ import annotations

import importlib

#: rule -> "stage module" or "stage module:declaration" (default ``SETTINGS``); the rule's code is the module
RULES: dict[str, str] = {
    "check_dataset": "check_dataset",
    "detect_track": "detect_track",
    "appearance": "appearance",
    "scene": "scene",
    "pose": "pose",
    "motion": "motion",
    "flow": "flow",
    "velocity": "velocity",
    "scene_labels": "scene_labels",
    "train_hsc": "train_hsc",
    "retrain_motion": "train_hsc:RETRAIN_MOTION_SETTINGS",
    "synthetic_objects": "synthetic_objects",
    "validate": "validate",
    "score": "score",
    "augment_motion": "augment_motion",
    "train_motion_classifier": "train_motion_classifier",
    "evaluate": "evaluate",
    "explain": "explain",
    "summarise_run": "summarise_run",
    "fetch_model": "fetch",
    "fetch_ped2": "fetch",
    "fetch_avenue": "fetch",
}


def stage_module(rule: str):
    """The module that runs ``rule`` (``hscvad.stages.<name>``)."""
    if rule not in RULES:
        raise KeyError(f"no stage runs rule {rule!r} (hscvad.rules.RULES)")
    return importlib.import_module(f"hscvad.stages.{RULES[rule].split(':')[0]}")


def declaration(rule: str) -> tuple:
    """The rule's declared settings."""
    attr = RULES[rule].split(":")[1] if ":" in RULES[rule] else "SETTINGS"
    return getattr(stage_module(rule), attr)
