"""Frame-level evaluation protocols (docs/method.md §5 and §8) and AUC metrics.

Both protocols take raw per-frame scores per stream (NaN on frames of clips without any object)
and return one fused score per frame.

reference (the public HSC code, to compare with the paper's table):
  each video keeps only its first floor(n / T) * T frames; clips without objects score 0; each
  stream is min-max normalised over the whole test set using its positive scores (negatives -> 0);
  streams are fused with equal weights (the public code), or, given each stream's spread over its
  training samples' scores (`units`), as the mean of (score - test minimum) / spread: the same
  min-max map with each stream weighted by its test range over its training spread, so that every
  stream counts in units of its variation over normal data, as in the strict protocol; the
  concatenation of all test videos is smoothed with the reference's Gaussian (support
  1..window-1, centre at its (len // 2 - 1)-th value, edges padded by copying the first / last
  len // 2 scores), crossing video borders.

strict (no choice made on test data or labels):
  every frame is scored; each stream is standardised with the mean and standard deviation of the
  training samples' scores, and frames without objects get the lowest training score; streams are
  fused with equal weights; each video is smoothed on its own with a Gaussian of the given sigma.

calibration (both protocols, before normalisation, fusion and smoothing; ``evaluation.calibration``):
  ``tail`` maps each stream's scores to the surprise of their upper tail under that stream's
  training samples' (leave-one-video-out) scores, -ln((1 + #{training scores >= s}) / (N + 1)): 0 at
  or below the lowest training score, ln(N + 1) at and above the highest. Monotone, so a clip's
  maximum over its objects is the same object before and after; bounded, so one extreme object
  cannot carry its score, through the smoothing, over the frames around it; and every stream on the
  one scale of tail probability. ``crowd``: ``tail``, then a frame's surprise (its clip's highest)
  corrected for the number n of the clip's objects the stream scored, -ln(1 - (1 - p)^n) with p its
  tail probability: the surprise of the highest of n normal objects, so that a crowd's score level
  is that of a lone object (:func:`crowd_surprise`). ``none``: the scores as they are.
"""

from __future__ import annotations

import math

import numpy as np


def reference_filter(window: int, sigma: float) -> np.ndarray:
    support = np.arange(1, int(window), dtype=np.float64)
    mu = support[len(support) // 2 - 1]
    return 1.0 / (sigma * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((support - mu) / sigma) ** 2)


def reference_smooth(x: np.ndarray, window: int, sigma: float) -> np.ndarray:
    filt = reference_filter(window, sigma)
    p = len(filt) // 2
    if p == 0 or len(x) == 0:
        return x.astype(np.float64)
    padded = np.concatenate([x[:p], x, x[-p:]])
    out = np.correlate(padded, filt, "valid")
    return out[: len(x)] if len(out) >= len(x) else np.pad(out, (0, len(x) - len(out)), mode="edge")


def reference_minmax(x: np.ndarray, unit: float | None = None) -> np.ndarray:
    """Min-max over the positive scores; with `unit`, (x - min) / unit instead of / (max - min)."""
    x = np.asarray(x, np.float64)
    pos = x[x > 0]
    if len(pos) == 0:
        return np.zeros_like(x)
    lo, hi = pos.min(), pos.max()
    if unit is not None and unit > 0:
        out = (x - lo) / unit
    else:
        out = (x - lo) / (hi - lo) if hi > lo else np.where(x > 0, 1.0, 0.0)
    return np.where(out < 0, 0.0, out)


def strict_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    if sigma <= 0 or len(x) == 0:
        return x.astype(np.float64)
    return gaussian_filter1d(x.astype(np.float64), sigma, mode="nearest")


def reference_protocol(raw: dict[str, list[np.ndarray]], clip_length: int, window: int, sigma: float,
                       weights: dict[str, float] | None = None, units: dict[str, float] | None = None,
                       rule: str = "mean") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Returns (fused smoothed scores per video, kept-frame index per video). ``rule``: the streams'
    weighted mean (``mean``) or, per frame, the highest of the streams with a weight (``max``).

    units: per stream, the spread of its training samples' scores; each stream then enters as
    (score - test minimum) / unit (see the module docstring). None: the public code's min-max.
    """
    streams = list(raw)
    n_videos = len(raw[streams[0]])
    keep = [np.arange((len(raw[streams[0]][v]) // clip_length) * clip_length) for v in range(n_videos)]
    lengths = [len(k) for k in keep]
    parts, ws = [], []
    for s in streams:
        cat = np.concatenate([np.nan_to_num(raw[s][v][keep[v]], nan=0.0) for v in range(n_videos)])
        unit = None if units is None else float(units[s])
        parts.append(reference_smooth(reference_minmax(cat, unit), window, sigma))
        ws.append((weights or {}).get(s, 1.0))
    fused = fuse(parts, ws, rule)
    return list(np.split(fused, np.cumsum(lengths)[:-1])), keep


def fuse(parts: list[np.ndarray], weights: list[float], rule: str = "mean") -> np.ndarray:
    """The streams' scores of the same frames in one: their weighted mean (``mean``) or the highest of
    those with a weight above 0 (``max``: a frame is as unusual as its most unusual stream)."""
    if rule == "max":
        return np.max(np.stack([p for p, w in zip(parts, weights) if w > 0]), 0).astype(np.float64)
    if rule != "mean":
        raise ValueError(f"evaluation.fusion: unknown rule {rule!r} (mean, max)")
    return np.asarray(sum(w * p for p, w in zip(parts, weights)), np.float64) / sum(weights)


def strict_protocol(raw: dict[str, list[np.ndarray]], train_stats: dict[str, dict], sigma: float,
                    weights: dict[str, float] | None = None, rule: str = "mean") -> list[np.ndarray]:
    streams = list(raw)
    n_videos = len(raw[streams[0]])
    out = []
    for v in range(n_videos):
        parts = []
        for s in streams:
            st = train_stats[s]
            std = st["std"] if st["std"] > 0 else 1.0
            parts.append((np.nan_to_num(raw[s][v], nan=st["min"]) - st["mean"]) / std)
        out.append(strict_smooth(fuse(parts, [(weights or {}).get(s, 1.0) for s in streams], rule), sigma))
    return out


def tail_surprise(scores: np.ndarray, train_scores: np.ndarray) -> np.ndarray:
    """-ln((1 + #{train_scores >= s}) / (N + 1)) for each score s (NaN stays NaN)."""
    train = np.sort(np.asarray(train_scores, np.float64))
    x = np.asarray(scores, np.float64)
    above = len(train) - np.searchsorted(train, np.nan_to_num(x, nan=-np.inf), side="left")
    out = -np.log((1.0 + above) / (len(train) + 1.0))
    return np.where(np.isnan(x), np.nan, out)


def crowd_surprise(surprise: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The surprise of the highest of ``n`` objects' tail surprises: -ln(1 - (1 - p)^n) with
    p = exp(-surprise), the chance that at least one of n normal objects is as unusual (NaN stays
    NaN; n <= 1 leaves the surprise as it is)."""
    s = np.asarray(surprise, np.float64)
    n = np.maximum(np.asarray(n, np.float64), 1.0)
    p = np.exp(-np.nan_to_num(s, nan=0.0))
    top = p >= 1.0  # at or below every normal score: no surprise however many objects
    out = -np.log(-np.expm1(n * np.log1p(-np.where(top, 0.5, p))))
    out = np.where(top, 0.0, out)
    return np.where(np.isnan(s), np.nan, out)


def calibrate(raw: dict[str, list[np.ndarray]], train_scores: dict[str, np.ndarray],
              counts: dict[str, list[np.ndarray]] | None = None
              ) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
    """Each stream's per-frame scores through :func:`tail_surprise` of its training scores (and,
    given ``counts``, each frame's number of scored objects in its clip, through
    :func:`crowd_surprise`), and the statistics (mean, std, min) of the training scores so mapped
    (as lone objects), for the protocols."""
    out, stats = {}, {}
    for s, videos in raw.items():
        tr = np.asarray(train_scores[s], np.float64)
        out[s] = [tail_surprise(v, tr) for v in videos]
        if counts is not None:
            out[s] = [crowd_surprise(v, n) for v, n in zip(out[s], counts[s])]
        c = tail_surprise(tr, tr)
        stats[s] = {"mean": float(c.mean()), "std": float(c.std()), "min": float(c.min())} if len(c) else \
            {"mean": 0.0, "std": 1.0, "min": 0.0}
    return out, stats


def micro_auc(scores: list[np.ndarray], labels: list[np.ndarray]) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.concatenate(labels)
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, np.concatenate(scores)))


def macro_auc(scores: list[np.ndarray], labels: list[np.ndarray]) -> tuple[float | None, int]:
    """Mean of per-video AUCs over the videos holding both classes; also returns their number."""
    from sklearn.metrics import roc_auc_score

    aucs = [roc_auc_score(y, s) for s, y in zip(scores, labels) if len(np.unique(y)) == 2]
    return (float(np.mean(aucs)) if aucs else None), len(aucs)
