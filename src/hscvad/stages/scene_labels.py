"""Rule ``scene_labels``: scene pseudo-labels of the training clips by DBSCAN (docs/method.md §2).

As in the reference, the clips' scene features are embedded with t-SNE (2-d, PCA init, seeded)
before DBSCAN; ``scene_labels.tsne: false`` clusters the features themselves. Noise points join
the cluster of their nearest clustered clip (in the space DBSCAN saw); if DBSCAN finds no cluster
at all, every clip is one scene. Clusters are numbered by decreasing size. Test clips are given the
scene of the nearest centroid (cosine) of the training clusters' scene features.
Output layout ``scenes`` (docs/hdf5_layout.md), plus a plot of the embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..h5store import atomic_path, read_arrays, write_store
from .common import log

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = ("seed", "scene_labels")


def cluster_scenes(feat: np.ndarray, cfg: dict, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (labels 0..K-1, 2-d embedding, info) for scene features (N, D)."""
    from sklearn.cluster import DBSCAN

    n = len(feat)
    info: dict = {"n_clips": n}
    if n < 3:
        return np.zeros(n, np.int64), np.zeros((n, 2), np.float32), {**info, "method": "single (too few clips)"}
    if np.ptp(feat, axis=0).max(initial=0.0) <= 1e-12:  # t-SNE's PCA init divides by a zero variance
        log.warning("scene_labels: all %d training clips have the same scene feature; one scene", n)
        return np.zeros(n, np.int64), np.zeros((n, 2), np.float32), {**info, "method": "single (identical features)"}
    if cfg["tsne"]:
        from sklearn.manifold import TSNE

        perplexity = float(min(cfg["perplexity"], (n - 1) / 3.0))
        space = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(feat)
        info["perplexity"] = perplexity
    else:
        space = feat
    raw = DBSCAN(eps=float(cfg["eps"]), min_samples=int(cfg["min_samples"])).fit_predict(space)
    noise = raw < 0
    info["n_noise"] = int(noise.sum())
    if noise.all():
        log.warning("scene_labels: DBSCAN found no cluster among %d clips; treating them as one scene", n)
        labels = np.zeros(n, np.int64)
    else:
        labels = raw.copy()
        if noise.any():
            d = ((space[noise][:, None, :] - space[~noise][None, :, :]) ** 2).sum(-1)
            labels[noise] = raw[~noise][d.argmin(1)]
        sizes = np.bincount(labels)
        rank = np.argsort(-sizes, kind="stable")
        remap = np.empty_like(rank)
        remap[rank] = np.arange(len(rank))
        labels = remap[labels]
        present = np.unique(labels)
        labels = np.searchsorted(present, labels)
    emb = space if space.shape[1] == 2 else np.zeros((n, 2))
    info["method"] = ("tsne+" if cfg["tsne"] else "") + "dbscan"
    return labels.astype(np.int64), emb.astype(np.float32), info


def centroids(feat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = int(labels.max()) + 1 if len(labels) else 1
    c = np.zeros((k, feat.shape[1]))
    np.add.at(c, labels, feat)
    return (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def run(scene_files: list[str], out: str, plot: str, params: dict) -> dict:
    cfg = params["scene_labels"]
    videos, feats, clips = [], [], []
    for path in scene_files:
        arr, attrs = read_arrays(path, "scene")
        videos.append(attrs["video"])
        feats.append(arr["feature"])
        clips.append(arr["clip"])
    if not feats or sum(len(f) for f in feats) == 0:
        raise ValueError("scene_labels: no training clip (no training video?)")
    feat = np.concatenate(feats)
    vidx = np.concatenate([np.full(len(f), i, np.int32) for i, f in enumerate(feats)])
    labels, emb, info = cluster_scenes(feat, cfg, int(params["seed"]))
    cents = centroids(feat, labels)
    K = len(cents)
    with write_store(out, "scenes", {"n_scenes": K, **{k: v for k, v in info.items()}}) as f:
        f["video"] = np.array(videos, dtype=object).astype("S")
        f["video_index"] = vidx
        f["clip"] = np.concatenate(clips).astype(np.int32)
        f["label"] = labels.astype(np.int32)
        f["embedding"] = emb
        f["centroid"] = cents
    _plot(emb, labels, vidx, plot, info)
    log.info("scene_labels: %d training clips -> %d scene(s) (%s)", len(feat), K, info)
    return {"n_scenes": K, **info}


def _plot(emb, labels, vidx, path, info) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=labels, cmap="tab20", s=10)
    ax.set_title(f"Training clips' scene features ({info['method']}): {labels.max() + 1} scene(s)")
    ax.set_xlabel("embedding 1")
    ax.set_ylabel("embedding 2")
    fig.colorbar(sc, ax=ax, label="scene pseudo-label")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)


def main(job) -> None:
    run(job.input.scenes, job.output.labels, job.output.plot, job.params)
