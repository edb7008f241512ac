"""Manifests: what a job reads from outside ``results/`` (a frame folder, a video file, a label
file, a model's weights) as one small file Snakemake can watch, which changes exactly when the
content does.

Snakemake reruns a job whose input is newer than its output. Taken as they are, a frame folder
would miss a replaced frame (a folder's modification time moves only when entries are added or
removed), and a video, label or weights file would rerun everything after a copy that kept its
bytes but not its dates (a dataset unpacked or fetched again in its place). So every video file,
frame folder, label file and mask folder reaches its rules through a manifest
(``results/<dataset>/manifests/``): one line per file (name, size in bytes, BLAKE2b digest of its
bytes); weights reach them by the sha256 of their bytes in the rules' params
(:func:`content_digest`). :func:`write_manifest` rewrites it only when that listing changed, so its modification
time moves exactly when the content did; a new manifest takes the modification time of the
newest file it lists, so adopting one on finished results reruns nothing that was up to date.

Digests are cached beside the manifest (``<manifest>.stat``: per file its size, modification time
and digest): a file whose size and modification time are those cached is not read again, so a
workflow's start costs a ``stat`` per file, and only new or touched files are hashed (about
0.5-1 GB/s).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..h5store import atomic_path

#: first line of every manifest: the format (a manifest of another format is rewritten)
HEADER = "# hscvad manifest 2: name, size, blake2b-128"


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _entries(path: Path) -> list[tuple[str, os.stat_result, str]]:
    """(name, stat, full path) of ``path``'s files: a folder's plain files (links followed, so a
    linked frame is watched at its target) in name order, or ``path`` itself."""
    if path.is_dir():
        with os.scandir(path) as it:
            return [(e.name, e.stat(), e.path) for e in sorted(it, key=lambda e: e.name) if e.is_file()]
    return [(path.name, path.stat(), str(path))]


def listing(path: str | os.PathLike, cache: dict | None = None) -> tuple[str, int, dict]:
    """(manifest text, newest modification time in ns, updated digest cache) of a folder or file.
    ``cache``: name -> [size, mtime_ns, digest] from an earlier listing; entries whose size and
    modification time match are not hashed again."""
    path = Path(path)
    cache = cache or {}
    rows, new_cache, newest = [], {}, 0
    for name, st, full in _entries(path):
        old = cache.get(name)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            digest = old[2]
        else:
            digest = _digest(full)
        new_cache[name] = [st.st_size, st.st_mtime_ns, digest]
        newest = max(newest, st.st_mtime_ns)
        rows.append(f"{name}\t{st.st_size}\t{digest}\n")
    kind = "folder" if path.is_dir() else "file"
    return f"{HEADER}\n# {kind} {path}\n" + "".join(rows), newest, new_cache


def write_manifest(path: str | os.PathLike, out: str | os.PathLike) -> str:
    """Write the manifest of ``path`` (a folder or a file) to ``out`` when it differs from what is
    there; returns ``out``. A manifest written where none was takes the newest listed file's
    modification time (not now), so a finished result made from that content stays up to date."""
    out = Path(out)
    stat_file = out.with_name(out.name + ".stat")
    try:
        cache = json.loads(stat_file.read_text())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        cache = {}
    text, newest, new_cache = listing(path, cache)
    try:
        old = out.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        old = None
    if new_cache != cache:
        with atomic_path(stat_file) as tmp:
            tmp.write_text(json.dumps(new_cache))
    if old == text:
        return str(out)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
        if old is None or not old.startswith(HEADER + "\n"):
            # first listing (or one of an earlier format): dated as its content, not as now
            os.utime(tmp, ns=(newest, newest))
    return str(out)


def content_digest(path: str | os.PathLike, cache_file: str | os.PathLike) -> str:
    """The sha256 of ``path``'s bytes (links followed), cached in ``cache_file`` (JSON: resolved path ->
    [size, mtime_ns, sha256]) so that it is read again only after its size or modification time
    changed. Weights reach their rules' params by this digest (rules/common.smk, ``WEIGHTS``): a
    copied or fetched-again file with the same bytes reruns nothing, other bytes rerun its stages."""
    from ..models.registry import sha256sum

    key = str(Path(path).resolve())
    st = os.stat(key)
    cache_file = Path(cache_file)
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        cache = {}
    old = cache.get(key)
    if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
        return old[2]
    cache[key] = [st.st_size, st.st_mtime_ns, sha256sum(key)]
    with atomic_path(cache_file) as tmp:
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
    return cache[key][2]
