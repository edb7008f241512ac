"""The memory read-out of Eq. 10 as the score stage runs it, and the plain nearest neighbour beside
it: each stream's read-out settings, the groups a training sample is held out from, the read-out
temperature chosen without labels, and the 1-NN distance over the same model inputs.

The read-out itself (Eqs. 10-11) is :func:`hscvad.hsc.train.score_samples`.
"""

from __future__ import annotations

import numpy as np


def stream_readout(readout: dict, stream: str) -> dict:
    """The read-out settings of one stream: ``hsc.readout`` with its ``streams.<stream>`` entries."""
    return {**{k: v for k, v in readout.items() if k != "streams"}, **(readout.get("streams") or {}).get(stream, {})}


def holdout_groups(train_video: np.ndarray) -> tuple[np.ndarray, str]:
    """Groups a training sample must not read when it is scored as if unseen: its own video, or
    itself alone when all training samples come from one video."""
    if len(np.unique(train_video)) > 1:
        return train_video.astype(np.int64), "video"
    return np.arange(len(train_video), dtype=np.int64), "sample"


def choose_tau(z_train, bank, groups: np.ndarray, bank_groups: np.ndarray, readout: dict, paper_tau: float,
               seed: int, holdout: str = "video") -> tuple[float, str]:
    """Eq. 10's read-out temperature: a number, ``paper`` (hsc.tau, the training temperature), or
    ``auto``: the temperature at which the median training query (codes ``z_train``), read
    leave-one-group-out, spreads its weight over ``effective_entries`` bank entries. No label is used."""
    import torch

    from .train import readout_temperature

    tau = readout["tau"]
    if tau == "paper":
        return float(paper_tau), f"hsc.tau = {paper_tau} (the training temperature)"
    if tau != "auto":
        return float(tau), "hsc.readout.tau (set in the configuration)"
    n = len(z_train)
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(n, size=min(n, int(readout["max_queries"])), replace=False))
    dev = z_train.device
    qg = torch.from_numpy(groups[q]).to(dev)
    target = float(readout["effective_entries"])
    bg = torch.from_numpy(bank_groups).to(dev)
    t = readout_temperature(z_train[torch.from_numpy(q).to(dev)], bank, target, qg, bg)
    return t, (f"auto: median effective number of bank entries per training query (leave-one-{holdout}-out) "
               f"= {target:g}, over {len(q)} training queries")


def nn_distance(query: np.ndarray, ref: np.ndarray, query_group: np.ndarray | None = None,
                ref_group: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """Squared Euclidean distance to the nearest reference sample (of another group when given):
    the plain 1-nearest-neighbour baseline over the same model inputs, kept as a diagnostic."""
    import torch

    r = torch.from_numpy(np.ascontiguousarray(ref, np.float32))
    rg = torch.from_numpy(ref_group) if ref_group is not None else None
    out = []
    for i in range(0, len(query), chunk):
        qq = torch.from_numpy(np.ascontiguousarray(query[i : i + chunk], np.float32))
        d = torch.cdist(qq, r).pow(2)
        if rg is not None:
            d = d.masked_fill(torch.from_numpy(query_group[i : i + chunk])[:, None] == rg[None, :], float("inf"))
        out.append(d.min(1).values.numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)
