"""Stage declarations: which settings a stage's result depends on, said once, in the stage's module.

Each stage module (``hscvad.stages.<rule>``) has ``SETTINGS``, a tuple of entries:

- ``"section.key"``: a config value, placed in the params at the same path (``"hsc.tau"`` gives
  ``{"hsc": {"tau": ...}}``); a dict value is taken whole (``"velocity"``);
- ``"name=path"``: the value at ``path`` placed under ``name`` (``"streams=datasets.{dataset}.streams"``);
- in a path, ``{dataset}`` is the dataset the job is for and ``@backend`` the key named by the
  section's configured backend (``"appearance.@backend"``: that backend's own block);
- :class:`Derived`: a value computed from the config by a function, with the keys it reads (an
  ``optional`` one is left out of the params when the function returns None: not applicable).

The sections a dataset may override (``datasets.<name>.detection`` etc.) are read with the
dataset's overrides applied. :func:`hscvad.config.stage_params` turns a declaration into a rule's
``params``; ``tests/test_settings.py`` checks, for every rule, that changing each declared key
changes that rule's params and that changing any other key of the schema does not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import DATASET_SECTIONS, section


@dataclass(frozen=True)
class Derived:
    """A params entry (at ``name``, dotted for a nested place) computed by ``fn(config, dataset)``
    from the config keys in ``reads``."""

    name: str
    reads: tuple[str, ...]
    fn: Callable[[dict, str], Any]
    optional: bool = False


def _section(config: dict, dataset: str, name: str) -> Any:
    return section(config, dataset, name) if name in DATASET_SECTIONS else config[name]


def expand(path: str, config: dict, dataset: str) -> list[str]:
    """The config path ``path`` with ``{dataset}`` and ``@backend`` filled in (as a list of keys)."""
    parts = path.format(dataset=dataset).split(".")
    out: list[str] = []
    for part in parts:
        out.append(lookup(config, dataset, [*out, "backend"]) if part == "@backend" else part)
    return out


def lookup(config: dict, dataset: str, keys: list[str]) -> Any:
    """The config value at ``keys``; a backend without a block of its own gives ``{}``."""
    node = _section(config, dataset, keys[0])
    for k in keys[1:]:
        if not isinstance(node, dict) or (k not in node and node.get("backend") != k):
            raise KeyError(f"{'.'.join(keys)}: no such setting")
        node = node.get(k, {})
    return node


def resolve(decl: tuple, config: dict, dataset: str) -> dict[str, Any]:
    """The params of a declaration: a nested dict of exactly the declared settings."""
    out: dict[str, Any] = {}
    for entry in decl:
        if isinstance(entry, Derived):
            name, keys, value = entry.name, [], entry.fn(config, dataset)
            if value is None and entry.optional:  # not applicable (motion classes without a motion stream)
                continue
        else:
            name, _, path = entry.rpartition("=")
            keys = expand(path, config, dataset)
            value = copy.deepcopy(lookup(config, dataset, keys))
        target, where = out, (name.split(".") if name else keys)
        for k in where[:-1]:
            target = target.setdefault(k, {})
        target[where[-1]] = value
    return out


def declared_paths(decl: tuple) -> list[str]:
    """The config paths a declaration reads, as written (with ``{dataset}`` and ``@backend``)."""
    return [p for e in decl for p in (e.reads if isinstance(e, Derived) else (e.rpartition("=")[2],))]


def declared_keys(decl: tuple, config: dict, dataset: str) -> list[list[str]]:
    """Every config path a declaration reads for ``dataset``: ``@backend`` expanded (and the backend
    key it names), and a dataset's overrides of a section it reads."""
    paths = []
    for path in declared_paths(decl):
        keys = expand(path, config, dataset)
        if "@backend" in path.split("."):
            paths.append([*keys[:path.split(".").index("@backend")], "backend"])
        paths.append(keys)
        if keys[0] in DATASET_SECTIONS:
            paths.append(["datasets", dataset, *keys])
    return paths


def _dataset(config: dict, dataset: str) -> dict:
    from .config import dataset_cfg

    return dataset_cfg(config, dataset)


#: the dataset a job reads (its adapter, folder and layout settings)
DATASET = Derived("dataset", tuple(f"datasets.{{dataset}}.{k}" for k in ("adapter", "root", "fps", "mixture",
                                                                          "mixtures_dir")), _dataset)
