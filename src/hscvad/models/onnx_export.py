"""PyTorch networks exported once to ONNX and cached, so ONNX Runtime can run them.

The cache folder is ``$HSCVAD_CACHE`` (default ``~/.cache/hscvad``), under ``onnx/``. A file's name
carries a hash of what it was exported from (the weights file's sha256, the input size, the wrapper's
name and version, the torch version); beside it a ``.json`` records that provenance and the
exported file's own sha256, which is checked every time the file is loaded: a file that does not
match is exported again. Export writes to a temporary name and renames, so jobs that export the same
network at once each end with a whole file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .registry import sha256sum

log = logging.getLogger("hscvad")

CACHE_ENV = "HSCVAD_CACHE"


def cache_dir() -> Path:
    """Where exported models are kept: ``$HSCVAD_CACHE/onnx`` (default ``~/.cache/hscvad/onnx``)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hscvad"
    return Path(root) / "onnx"


def cached_onnx(name: str, provenance: dict, build: Callable[[], tuple], input_names: list[str],
                output_names: list[str], dynamic_axes: dict) -> Path:
    """The ONNX file of the network ``build()`` returns as ``(module, example_inputs)``, exported at
    the first call for this ``provenance`` (a JSON-able description of everything the exported graph
    depends on) and reused after that. Returns the file's path; its sha256 is in the ``.json`` beside it."""
    from importlib.metadata import version

    prov = {**provenance, "torch": version("torch")}
    key = hashlib.sha256(json.dumps(prov, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir()
    path = folder / f"{name}-{key}.onnx"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            recorded = json.loads(meta.read_text())["sha256"]
        except (ValueError, KeyError):
            recorded = None
        if recorded == sha256sum(path):
            return path
        log.warning("%s does not match the checksum recorded in %s; exporting it again", path, meta)
    import warnings

    import torch

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".onnx")
    except OSError as e:
        raise OSError(f"cannot write the exported {name} model into {folder} ({e}); set ${CACHE_ENV} to a "
                      "writable folder") from e
    os.close(fd)
    module, example = build()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            torch.onnx.export(module, example, tmp, dynamo=False, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, opset_version=17)
        digest = sha256sum(tmp)
        fd, tmp_meta = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({**prov, "file": path.name, "sha256": digest}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        os.replace(tmp_meta, meta)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s to %s (sha256 %s)", name, path, digest)
    return path
