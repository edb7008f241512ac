"""The yardstick: each stream's score and its weight in the fusion, chosen without test labels.

Synthetic anomalies are made from a dataset's own training objects (``validation``: appearance
``flip`` and ``recolour`` inside the object's box; velocity ``fast``, ``glide`` and ``rush``) and
scored leave-one-video-out, as the score stage scores training samples, by every candidate score
of the stream (:func:`candidates`):

- HSC's read-out (Eqs. 10-11) with the bank as training left it (``memory``) or re-encoded by the
  final encoder (``encoded``), each at the read-out temperature ``auto`` or ``paper``;
- ``knn``: the squared distance to the nearest training sample of another video, over the same
  model inputs (the plain baseline every trained model here is measured against).

The normal side is a seeded subset of held-out training objects (the same objects for every
stream). A stream ships the candidate with the highest mean object-level AUC over its own kinds;
ties go to the earlier candidate, and the configured read-out is the first. A stream whose shipped
score stays below ``min_auc`` on its own kinds (a stream at chance) gets weight 0 in the fusion.
The fused figure of each kind is the fusion the evaluate stage computes (each stream's score
calibrated by its normal scores' tail, standardised, weighted mean), with the altered stream's
score in place at the altered objects and every other stream's score of the same object as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protocols import tail_surprise
from .validation import roc_auc


@dataclass(frozen=True)
class Candidate:
    """One way to score a stream's samples: ``hsc`` (bank, tau as ``hsc.readout``) or ``knn``."""

    name: str
    score: str
    bank: str | None = None
    tau: str | float | None = None


KNN = Candidate("knn", "knn")


def candidate_name(bank: str, tau) -> str:
    return f"hsc:{bank}:{tau:g}" if isinstance(tau, (int, float)) else f"hsc:{bank}:{tau}"


def candidates(readout: dict) -> list[Candidate]:
    """The configured read-out (``bank``, ``tau`` of a stream's ``hsc.readout``) first, then the
    other banks and temperatures (``auto``, ``paper``), then the 1-NN."""
    conf = (readout["bank"], readout["tau"])
    pairs = [conf] + [(b, t) for b in ("memory", "encoded") for t in ("auto", "paper") if (b, t) != conf]
    return [Candidate(candidate_name(b, t), "hsc", b, t) for b, t in pairs] + [KNN]


def from_name(name: str) -> Candidate:
    """The candidate a name written by :func:`candidates` stands for."""
    if name == KNN.name:
        return KNN
    kind, bank, tau = name.split(":")
    if kind != "hsc" or bank not in ("memory", "encoded"):
        raise ValueError(f"unknown candidate score {name!r}")
    return Candidate(name, "hsc", bank, tau if tau in ("auto", "paper") else float(tau))


def score_candidates(model, bank, meta: dict, stream: str, train, query: np.ndarray,
                     synthetic: dict[str, tuple[np.ndarray, np.ndarray]], readout: dict, paper_tau: float,
                     seed: int, cands: list[Candidate], device: str = "cpu") -> dict[str, dict]:
    """Per candidate: ``normal``, the scores of training samples ``query`` (indices into ``train``,
    a :class:`hscvad.features.Samples`), and ``kinds``, the scores of each kind's altered samples
    (``synthetic``: kind -> (indices of the samples altered, their altered features)), all scored
    leave-one-video-out; ``tau``, the read-out temperature (None for the 1-NN)."""
    import torch

    from ..hsc.readout import choose_tau, holdout_groups, nn_distance
    from ..hsc.train import encode, model_input, score_samples

    tr_in = model_input(train.feat, meta, stream)
    groups, holdout = holdout_groups(train.video)
    syn = {k: (np.asarray(idx, np.int64), model_input(f, meta, stream)) for k, (idx, f) in synthetic.items()}
    out = {}
    z = banks = bank_groups = None
    for c in cands:
        if c.score == "knn":
            out[c.name] = {"tau": None,
                           "normal": nn_distance(tr_in[query], tr_in, groups[query], groups),
                           "kinds": {k: nn_distance(f, tr_in, groups[idx], groups) for k, (idx, f) in syn.items()}}
            continue
        if z is None:
            z = encode(model, tr_in, train.scene_feat, device)
            banks = {"memory": bank, "encoded": torch.cat([z, bank[len(z):]])}
            bank_groups = np.concatenate([groups, np.full(len(bank) - len(groups), -1, np.int64)])
        b = banks[c.bank]
        tau, _ = choose_tau(z, b, groups, bank_groups, {**readout, "bank": c.bank, "tau": c.tau}, paper_tau, seed,
                            holdout)

        def sc(feat, idx, b=b, tau=tau, bg=bank_groups):
            return score_samples(model, b, feat, train.scene_feat[idx], tau, query_group=groups[idx], bank_group=bg)

        out[c.name] = {"tau": float(tau), "normal": sc(tr_in[query], query),
                       "kinds": {k: sc(f, idx) for k, (idx, f) in syn.items()}}
    return out


def candidate_aucs(scored: dict[str, dict], normal: np.ndarray) -> dict[str, dict[str, float]]:
    """Object-level AUC of each candidate's altered samples of each kind against its scores of the
    normal samples (``normal``: a mask or indices into the candidate's ``normal`` scores)."""
    return {c: {k: roc_auc(s, r["normal"][normal]) for k, s in r["kinds"].items()} for c, r in scored.items()}


def mean_auc(aucs: dict[str, float]) -> float:
    v = [a for a in aucs.values() if np.isfinite(a)]
    return float(np.mean(v)) if v else float("nan")


def choose(aucs: dict[str, dict[str, float]], order: list[str]) -> tuple[str, float]:
    """The candidate with the highest mean AUC over the kinds (the earliest of ``order`` on a tie,
    and ``order[0]`` when no AUC could be measured), and that mean."""
    means = {c: mean_auc(aucs[c]) for c in order}
    measured = [c for c in order if np.isfinite(means[c])]
    if not measured:
        return order[0], float("nan")
    best = max(measured, key=lambda c: (means[c], -order.index(c)))
    return best, means[best]


def weights(best_auc: dict[str, float], min_auc: float) -> tuple[dict[str, float], str]:
    """Fusion weights: 1 for a stream whose shipped score reaches ``min_auc`` on its own kinds (or
    that has no kinds to measure: NaN), 0 below; all 1 when every measured stream is below (the
    yardstick then tells nothing apart), with the reason."""
    w = {s: 0.0 if np.isfinite(a) and a < min_auc else 1.0 for s, a in best_auc.items()}
    measured = [s for s, a in best_auc.items() if np.isfinite(a)]
    if measured and all(w[s] == 0.0 for s in measured) and all(np.isfinite(a) for a in best_auc.values()):
        return {s: 1.0 for s in best_auc}, f"every stream below validation.min_auc = {min_auc:g}: all kept"
    zero = [s for s in w if w[s] == 0.0]
    return w, (f"{', '.join(zero)} below validation.min_auc = {min_auc:g} on its own kinds: weight 0"
               if zero else f"every measured stream reaches validation.min_auc = {min_auc:g}")


def _standardiser(reference: np.ndarray):
    """Scores -> the evaluate stage's tail calibration and standardisation against ``reference``."""
    ref = np.asarray(reference, np.float64)
    ref = ref[np.isfinite(ref)]
    c = tail_surprise(ref, ref)
    mu, sd = (float(c.mean()), float(c.std()) or 1.0) if len(c) else (0.0, 1.0)
    return lambda x: (tail_surprise(np.asarray(x, np.float64), ref) - mu) / sd


def fused_aucs(streams: dict[str, dict], normal_keys: np.ndarray, w: dict[str, float], fusion: str = "mean"
               ) -> dict[str, float]:
    """Object-level AUC of the fused score for every stream's kinds. ``streams``: per stream
    ``keys`` and ``scores`` of its scored normal samples (object keys, :func:`hscvad.evaluation.
    objects.object_keys`), ``kinds``: kind -> (keys of the altered samples, their scores).
    ``normal_keys``: the normal side. A stream without a sample of an object leaves it out of that
    object's weighted mean (weights ``w``; all 1 when every weight is 0)."""
    if not any(w.get(s, 1.0) for s in streams):
        w = {s: 1.0 for s in streams}
    normal_keys = np.asarray(normal_keys, np.int64)
    tables = {}
    for s, d in streams.items():
        order = np.argsort(d["keys"], kind="stable")
        keys, scores = np.asarray(d["keys"], np.int64)[order], np.asarray(d["scores"], np.float64)[order]
        pos = np.clip(np.searchsorted(keys, normal_keys), 0, max(len(keys) - 1, 0))
        hit = keys[pos] == normal_keys if len(keys) else np.zeros(len(normal_keys), bool)
        ref = scores[pos][hit]
        tables[s] = (keys, scores, _standardiser(ref))

    def z_at(s, at_keys):
        keys, scores, std = tables[s]
        pos = np.clip(np.searchsorted(keys, at_keys), 0, max(len(keys) - 1, 0))
        hit = keys[pos] == at_keys if len(keys) else np.zeros(len(at_keys), bool)
        return np.where(hit, std(np.where(hit, scores[pos] if len(keys) else 0.0, 0.0)), np.nan)

    def fuse(parts):
        if fusion == "max":  # the most unusual of the weighted streams
            kept = [p for s, p in parts.items() if w.get(s, 1.0) > 0]
            stacked = np.stack([np.where(np.isfinite(p), p, -np.inf) for p in kept])
            top = stacked.max(0)
            return np.where(np.isfinite(top), top, np.nan)
        num = sum(w.get(s, 1.0) * np.nan_to_num(p) for s, p in parts.items())
        den = sum(w.get(s, 1.0) * np.isfinite(p) for s, p in parts.items())
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)

    normal = fuse({s: z_at(s, normal_keys) for s in streams})
    out = {}
    for s, d in streams.items():
        for kind, (keys, scores) in d["kinds"].items():
            keys = np.asarray(keys, np.int64)
            parts = {o: z_at(o, keys) for o in streams if o != s}
            parts[s] = tables[s][2](scores)
            f = fuse(parts)
            out[kind] = roc_auc(f[np.isfinite(f)], normal[np.isfinite(normal)])
    return out


def degenerate(scores: np.ndarray) -> str | None:
    """Why a stream's training scores cannot rank objects (None when they can): no spread, or
    half of them or more equal to one value (a score collapsed to a constant)."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    if float(x.std()) == 0.0:
        return "every training score is the same"
    _, counts = np.unique(x, return_counts=True)
    if counts.max() >= len(x) / 2:
        return f"{counts.max()} of {len(x)} training scores share one value"
    return None
