"""Rules ``fetch_model`` / ``fetch_ped2`` / ``fetch_avenue``: download published weights or data, verify,
unpack.

A model item of ``fetch.models`` in config.yaml names a URL, the sha256 of the download (null when no
checksum is published; the computed one is then logged so it can be pinned; for OpenMMLab
checkpoints the 8-hex prefix of the sha256 that OpenMMLab publishes in each file name) and where
it goes. A dataset item (``fetch.ped2``, ``fetch.avenue``) lists ``archives``, each with its URL,
checksum (``sha256`` or ``md5``, null when none is known), ``unpack`` method and ``members``: which
folder or file of the archive goes where under the dataset root.

Downloads are written to ``<download_dir>/<file>.part`` and renamed when complete: an interrupted
download is resumed where it stopped (HTTP range request) when the server allows it and restarted
otherwise; a download whose checksum does not match is deleted, so the next run starts afresh. The
dataset folder appears only when every archive is unpacked (built under a hidden name, then renamed).
Without a network the rule fails with a message that says what to place where.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..h5store import atomic_path
from ..models.registry import sha256sum
from .common import log, progress

#: the item to download is the rule's params (from ``fetch``), not a stage setting
SETTINGS = ()


class FetchError(RuntimeError):
    pass


def download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest``.part left by an interrupted run."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status = getattr(r, "status", None)
            if have and status == 206:
                log.info("%s: resuming an interrupted download after %d bytes", url, have)
                mode = "ab"
            else:
                if have:
                    log.info("%s: the server does not resume downloads; starting again", url)
                have, mode = 0, "wb"
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            got = have
            with open(part, mode) as out, progress(total, f"download {dest.name}", unit="B") as bar:
                bar.update(have)
                while block := r.read(1 << 20):
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send for that range: the .part is stale
            part.unlink()
            return download(url, dest, timeout)
        raise FetchError(f"cannot download {url} (HTTP {e.code} {e.reason})") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        kept = f"; {part} ({part.stat().st_size} bytes) is kept and the next run resumes it" if (
            part.exists() and part.stat().st_size) else ""
        raise FetchError(f"cannot download {url} ({e}){kept}") from e
    if total is not None and got < total:
        raise FetchError(f"{url}: download interrupted after {got} of {total} bytes; {part} is kept and the "
                         "next run resumes it")
    part.replace(dest)
    return dest


def _digest(path: Path, algo: str) -> str:
    if algo == "sha256":
        return sha256sum(path)
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, item: dict, url: str) -> None:
    """Check ``path`` against the item's ``sha256`` (or its 8-hex prefix) or ``md5``; delete it on a
    mismatch so that the next run downloads it again. Logs the sha256 when no checksum is known."""
    sha = item.get("sha256")
    got = sha256sum(path)
    if sha and not (got == sha.lower() or (len(sha) >= 8 and got.startswith(sha.lower()))):
        path.unlink()
        raise FetchError(f"{url}: sha256 {got} does not match the expected {sha}; the download was deleted")
    md5 = item.get("md5")
    if md5 and _digest(path, "md5") != md5.lower():
        got_md5 = _digest(path, "md5")
        path.unlink()
        raise FetchError(f"{url}: md5 {got_md5} does not match the expected {md5}; the download was deleted")
    if not sha and not md5:
        log.warning("%s has no known checksum; the downloaded file's sha256 is %s", url, got)
    else:
        log.info("%s: checksum verified (sha256 %s)", url, got)


def fetch(item: dict, output: str) -> None:
    """One file (model weights) to ``output``, or, with ``unpack``, one archive member to ``output``."""
    if "archives" in item:
        return fetch_dataset(item, output)
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
        verify(tmp, item, url)
        unpack = item.get("unpack")
        if not unpack:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as part:
                shutil.move(tmp, part)
            return
        member = item.get("member", "")
        _build_dataset(out, [(tmp, unpack, {member: "."}, url)])


def _archive_name(url: str) -> str:
    return Path(unquote(urlparse(url).path)).name or "download"


def fetch_dataset(item: dict, output: str) -> None:
    """Download every archive of a dataset item (resumably), verify it, and unpack its members into
    ``output``; the downloads are deleted once the dataset is in place (``keep_archives`` keeps them)."""
    out = Path(output)
    downloads = Path(item.get("download_dir") or out.parent / ".downloads")
    key = item.get("config_key", "")
    unpacked = []
    for arch in item["archives"]:
        url = arch["url"]
        dest = downloads / _archive_name(url)
        if not dest.exists():
            try:
                download(url, dest)
            except FetchError as e:
                raise FetchError(
                    f"{e}. Without a network, download {url} elsewhere and place it at {dest}"
                    + (f", or place the dataset yourself and point {key} at it" if key else "") + "."
                ) from e
        verify(dest, arch, url)
        unpacked.append((dest, arch.get("unpack") or _guess_unpack(dest), arch["members"], url))
    _build_dataset(out, unpacked)
    if not item.get("keep_archives"):
        for dest, *_ in unpacked:
            dest.unlink(missing_ok=True)


def _guess_unpack(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise FetchError(f"{path}: neither a zip nor a tar archive; set 'unpack' for it")


def _build_dataset(out: Path, archives: list[tuple[Path, str, dict, str]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    shutil.rmtree(part, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.extract.") as td:
        for i, (path, unpack, members, url) in enumerate(archives):
            extract = Path(td) / str(i)
            if unpack == "tar":
                with tarfile.open(path) as tf:
                    tf.extractall(extract, filter="data")
            elif unpack == "zip":
                with zipfile.ZipFile(path) as zf:
                    zf.extractall(extract)
            else:
                raise FetchError(f"unknown unpack method {unpack!r}")
            for src_name, dest_name in members.items():
                src = extract / src_name
                if not src.exists():
                    raise FetchError(f"{url}: the archive has no {src_name!r}")
                dest = part / dest_name
                if dest_name in (".", ""):
                    if part.exists():
                        raise FetchError(f"{url}: member {src_name!r} would replace what other archives placed")
                    shutil.move(str(src), part)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), dest)
    part.rename(out)


def main(job) -> None:
    fetch(job.params["item"], job.output[0])
