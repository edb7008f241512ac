"""Plots a researcher expects: per-video score curves with abnormal frames shaded, histograms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..h5store import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shade(ax, y: np.ndarray | None) -> None:
    if y is None or not y.any():
        return
    d = np.diff(np.concatenate([[0], y.astype(np.int8), [0]]))
    for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
        ax.axvspan(a - 0.5, b - 0.5, color="tab:red", alpha=0.18, lw=0)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=100)


def score_curves(videos, strict, ref, keep, labels, pdf_path: Path, png_path: Path, title: str,
                 video_dir: Path | None = None) -> None:
    """One PDF page per video (strict score, reference score on a second axis), a PNG grid, and
    (with ``video_dir``) one PNG per video, ``<video_dir>/<video>.png``."""
    plt = _plt()
    from matplotlib.backends.backend_pdf import PdfPages

    if video_dir is not None:
        Path(video_dir).mkdir(parents=True, exist_ok=True)
    with atomic_path(pdf_path) as tmp:
        with PdfPages(tmp, metadata={"CreationDate": None}) as pdf:  # no date: the same run, the same file
            for i, v in enumerate(videos):
                fig, ax = plt.subplots(figsize=(10, 3))
                _shade(ax, labels[i] if labels is not None else None)
                ax.plot(strict[i], color="tab:blue", lw=1.2, label="strict (z-score)")
                ax.set_xlabel("frame")
                ax.set_ylabel("strict score")
                ax2 = ax.twinx()
                ax2.plot(keep[i], ref[i], color="tab:orange", lw=1, ls="--", label="reference (0-1)")
                ax2.set_ylabel("reference score")
                ax.set_title(f"{title} / {v} (shaded: abnormal frames)")
                ax.set_xlim(0, max(len(strict[i]) - 1, 1))
                fig.legend(loc="upper right", fontsize=8)
                fig.tight_layout()
                pdf.savefig(fig)
                if video_dir is not None:
                    _save(fig, Path(video_dir) / f"{v}.png")
                plt.close(fig)
    n = len(videos)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _shade(ax, labels[i] if labels is not None else None)
        ax.plot(strict[i], color="tab:blue", lw=0.8)
        ax.set_title(videos[i], fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{title}: strict-protocol scores (shaded: abnormal frames)")
    fig.tight_layout()
    _save(fig, png_path)
    plt.close(fig)


def histograms(strict, ref, keep, labels, path: Path, title: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, scores, name, y in (
        (axes[0], np.concatenate(strict), "strict", np.concatenate(labels) if labels is not None else None),
        (axes[1], np.concatenate(ref), "reference",
         np.concatenate([l[k] for l, k in zip(labels, keep)]) if labels is not None else None),
    ):
        bins = np.linspace(np.nanmin(scores), np.nanmax(scores) + 1e-9, 50) if len(scores) else 10
        if y is None:
            ax.hist(scores, bins=bins, color="tab:gray", alpha=0.8, label="all frames")
        else:
            for cls, colour, kind in ((0, "tab:blue", "normal"), (1, "tab:red", "abnormal")):
                if (y == cls).any():
                    ax.hist(scores[y == cls], bins=bins, color=colour, alpha=0.6, density=True,
                            label=f"{kind} ({(y == cls).sum()})")
        ax.set_title(f"{title}: {name} protocol")
        ax.set_xlabel("frame score")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def principal_axes(centred: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` leading principal axes (d, k) of centred samples (n, d), each signed so that its
    largest component is positive: eigenvectors of the d x d scatter matrix (Ped2's 2,237 appearance
    samples of 1,280 dimensions: a fraction of the time of an SVD of the samples)."""
    x = np.asarray(centred, np.float64)
    vals, vecs = np.linalg.eigh(x.T @ x)
    axes = vecs[:, np.argsort(vals)[::-1][:k]]
    return axes * np.sign(axes[np.abs(axes).argmax(0), np.arange(axes.shape[1])])


def object_embedding(train_feat: np.ndarray, test_feat: np.ndarray, test_score: np.ndarray, path, title: str) -> None:
    """2-d PCA (fitted on training samples) of training and test object features; test samples
    coloured by their anomaly score."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if len(train_feat) >= 2:
        mean = train_feat.mean(0)
        proj = principal_axes(train_feat - mean, 2)
        a = (train_feat - mean) @ proj
        ax.scatter(a[:, 0], a[:, 1], s=4, c="lightgray", label=f"training samples ({len(a)})")
        if len(test_feat):
            b = (test_feat - mean) @ proj
            order = np.argsort(test_score)
            sc = ax.scatter(b[order, 0], b[order, 1], s=6, c=test_score[order], cmap="viridis",
                            label=f"test samples ({len(b)})")
            fig.colorbar(sc, ax=ax, label="object score (Eq. 11)")
        ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{title}: PCA fitted on training samples")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def stage_times(stages: list[str], seconds: list[float], path: Path, title: str) -> None:
    """Horizontal bars: wall-clock seconds per stage, summed over its jobs (from the benchmarks)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(stages) + 1.2))
    ax.barh(stages[::-1], seconds[::-1], color="tab:blue")
    ax.set_xlabel("wall-clock seconds (sum over the stage's jobs)")
    ax.set_title(f"{title}: time per stage")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


#: box colour of the stream that found an object abnormal (explanations)
STREAM_COLOURS = {"appearance": "tab:orange", "velocity": "tab:red", "motion": "tab:purple"}


def explanation(path: Path, video: str, panels: list[dict], streams: list[str]) -> None:
    """One PNG per test video: its highest-scoring clips, each shown by one frame with every
    object of the clip (grey) and the top objects drawn in the colour of the stream whose
    standardised score is highest, labelled with rank, class, that stream and the z-scores.

    Each panel: ``image`` (H, W, 3), ``title``, ``others`` (k, 4) boxes, ``objects``: list of dicts
    with ``box``, ``label``, ``stream``."""
    plt = _plt()
    import matplotlib.patches as mpatches

    n = max(len(panels), 1)
    h, w = panels[0]["image"].shape[:2] if panels else (240, 360)
    fig, axes = plt.subplots(1, n, figsize=(min(6.0 * w / h, 9.0) * n, 6.0), squeeze=False)
    for ax, p in zip(axes[0], panels):
        ax.imshow(p["image"])
        for b in p["others"]:
            ax.add_patch(mpatches.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="0.85", lw=0.8))
        for o in p["objects"]:
            b, c = o["box"], STREAM_COLOURS.get(o["stream"], "tab:blue")
            ax.add_patch(mpatches.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec=c, lw=2.0))
            ax.text(b[0], max(b[1] - 2, 0), o["label"], color="white", fontsize=7, va="bottom",
                    bbox={"facecolor": c, "alpha": 0.85, "pad": 1, "lw": 0})
        ax.set_title(p["title"], fontsize=9)
        ax.set_axis_off()
    for ax in axes[0][len(panels):]:
        ax.set_axis_off()
    handles = [mpatches.Patch(color=STREAM_COLOURS.get(s, "tab:blue"), label=f"{s} stream") for s in streams]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"video {video}: highest-scoring clips and the objects responsible", fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    _save(fig, Path(path))
    plt.close(fig)
