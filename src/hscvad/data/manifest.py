"""Manifests: a frame folder (or a folder of mask images) as one file Snakemake can watch.

A folder's modification time changes only when entries are added or removed, not when a frame is
replaced, so per-video rules take the folder's manifest as their input instead: one line per file
(name, size in bytes, modification time in ns). :func:`write_manifest` rewrites it only when that
listing changed, so its modification time moves exactly when the folder's content did, and every
job that reads the folder reruns then and only then.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..h5store import atomic_path


def listing(folder: str | os.PathLike) -> str:
    folder = Path(folder)
    rows = []
    with os.scandir(folder) as it:
        for entry in sorted(it, key=lambda e: e.name):
            if entry.is_file():  # follows links: a linked frame is watched at its target
                st = entry.stat()
                rows.append(f"{entry.name}\t{st.st_size}\t{st.st_mtime_ns}\n")
    return f"# {folder}\n" + "".join(rows)


def write_manifest(folder: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write ``folder``'s listing to ``out`` when it differs from what is there; returns ``out``."""
    text = listing(folder)
    out = Path(out)
    try:
        if out.read_text() == text:
            return str(out)
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return str(out)
