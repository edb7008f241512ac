"""Rules ``fetch_model`` / ``fetch_ped2``: download published weights or data, verify, unpack.

Each item of ``fetch`` in config.yaml names a URL, the sha256 of the download (null when no
checksum is published; the computed one is then logged so it can be pinned; for OpenMMLab
checkpoints the 8-hex prefix of the sha256 that OpenMMLab publishes in each file name) and where
it goes.
Without a network the rule fails with a message that says what to place where.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..h5store import atomic_path
from ..models.registry import sha256sum
from .common import log


class FetchError(RuntimeError):
    pass


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as out:
            shutil.copyfileobj(r, out, length=1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise FetchError(f"cannot download {url} ({e})") from e


def fetch(item: dict, output: str) -> None:
    out = Path(output)
    url, sha, key = item["url"], item.get("sha256"), item.get("config_key", "")
    hint = (f"Without a network, place the file yourself at {out}"
            + (f" (sha256 {sha})" if sha else "") + (f", or point {key} at a copy" if key else "") + ".")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as td:
        tmp = Path(td) / "download"
        try:
            download(url, tmp)
        except FetchError as e:
            raise FetchError(f"{e}. {hint}") from e
        got = sha256sum(tmp)
        if sha and not (got == sha.lower() or (len(sha) >= 8 and got.startswith(sha.lower()))):
            raise FetchError(f"{url}: sha256 {got} does not match the expected {sha}; nothing was written to {out}")
        if not sha:
            log.warning("%s has no published checksum; downloaded file's sha256 is %s", url, got)
        unpack = item.get("unpack")
        if not unpack:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as part:
                shutil.move(tmp, part)
            return
        extract = Path(td) / "extract"
        if unpack == "tar":
            with tarfile.open(tmp) as tf:
                tf.extractall(extract, filter="data")
        elif unpack == "zip":
            with zipfile.ZipFile(tmp) as zf:
                zf.extractall(extract)
        else:
            raise FetchError(f"unknown unpack method {unpack!r}")
        src = extract / item.get("member", "")
        if not src.exists():
            raise FetchError(f"{url}: archive has no {item.get('member')}")
        part = out.with_name(f".{out.name}.part")
        shutil.rmtree(part, ignore_errors=True)
        shutil.move(str(src), part)
        part.rename(out)


def main(args) -> None:
    fetch(args.params["item"], args.output)
