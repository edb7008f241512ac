"""Multi-object tracking: ByteTrack (Zhang et al., ECCV 2022), vectorised over tracks with NumPy.

Per frame: detections at or above ``high_threshold`` are matched first to confirmed and lost
tracks, then the low-score detections (``low_threshold`` to ``high_threshold``) to the confirmed
tracks still unmatched, then high-score leftovers to unconfirmed tracks; new tracks start from
high-score detections above ``new_track_threshold``. A Kalman filter on (cx, cy, aspect, height)
predicts every track each frame. Matching is class-aware (a bicycle never takes a person's track).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import numpy as np

from .detection import Detections, box_iou


def _assignment_solver():
    """SciPy's ``linear_sum_assignment``, loaded from its compiled module alone: importing
    ``scipy.optimize`` costs every tracking job about 0.3 s of start-up (its other solvers, linear
    algebra and array-API layers), for a function that needs none of them. Falls back to the
    ordinary import where SciPy's layout differs. The same function either way (tested)."""
    try:
        spec = importlib.util.find_spec("scipy")
        folder = Path(spec.origin).parent / "optimize"
        name = "scipy.optimize._lsap"
        files = [f for f in folder.glob("_lsap.*")
                 if any(f.name.endswith(sfx) for sfx in importlib.machinery.EXTENSION_SUFFIXES)]
        loader = importlib.machinery.ExtensionFileLoader(name, str(files[0]))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        loader.exec_module(module)
        return module.linear_sum_assignment
    except Exception:  # noqa: BLE001 - any surprise in SciPy's layout: the ordinary import
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment


linear_sum_assignment = _assignment_solver()

TRACKED, LOST = 0, 1
_WP, _WV = 1.0 / 20, 1.0 / 160  # ByteTrack's position / velocity noise weights


class KalmanXYAH:
    """Constant-velocity Kalman filter over (cx, cy, a, h, vcx, vcy, va, vh), batched over tracks."""

    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)

    @staticmethod
    def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = z[:, 3]
        mean = np.concatenate([z, np.zeros_like(z)], 1)
        std = np.stack([2 * _WP * h, 2 * _WP * h, np.full_like(h, 1e-2), 2 * _WP * h,
                        10 * _WV * h, 10 * _WV * h, np.full_like(h, 1e-5), 10 * _WV * h], 1)
        cov = np.zeros((len(z), 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean, cov):
        h = mean[:, 3]
        std = np.stack([_WP * h, _WP * h, np.full_like(h, 1e-2), _WP * h,
                        _WV * h, _WV * h, np.full_like(h, 1e-5), _WV * h], 1)
        q = np.zeros_like(cov)
        idx = np.arange(8)
        q[:, idx, idx] = std**2
        mean = mean @ self.F.T
        cov = self.F @ cov @ self.F.T + q
        return mean, cov

    def update(self, mean, cov, z):
        h = mean[:, 3]
        std = np.stack([_WP * h, _WP * h, np.full_like(h, 1e-1), _WP * h], 1)
        s = self.H @ cov @ self.H.T
        idx = np.arange(4)
        s[:, idx, idx] += std**2
        pht = cov @ self.H.T  # (N, 8, 4)
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
        innov = z - mean[:, :4]
        mean = mean + np.einsum("nij,nj->ni", gain, innov)
        cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        return mean, cov


def xyxy_to_xyah(b: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0], np.maximum(b[:, 3] - b[:, 1], 1e-3)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], 1)


def xyah_to_xyxy(m: np.ndarray) -> np.ndarray:
    h = m[:, 3]
    w = m[:, 2] * h
    return np.stack([m[:, 0] - w / 2, m[:, 1] - h / 2, m[:, 0] + w / 2, m[:, 1] + h / 2], 1)


def _match(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching; pairs whose cost exceeds ``thresh`` are left unmatched."""
    if cost.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= thresh
    return rows[ok], cols[ok]


class ByteTrack:
    def __init__(self, high_threshold: float, low_threshold: float, new_track_threshold: float,
                 match_threshold: float, second_match_threshold: float, unconfirmed_match_threshold: float,
                 track_buffer: int, fuse_score: bool, frame_rate: float = 25.0):
        # detection score thresholds: high, low (second association) and new (to start a track)
        self.high, self.low, self.new = float(high_threshold), float(low_threshold), float(new_track_threshold)
        # IoU-cost thresholds of the three associations: confirmed, low-score, unconfirmed tracks
        self.t1, self.t2, self.t3 = (float(t) for t in (match_threshold, second_match_threshold,
                                                         unconfirmed_match_threshold))
        self.max_lost = max(1, int(round(frame_rate / 30.0 * track_buffer)))
        self.fuse_score = bool(fuse_score)
        self.kf = KalmanXYAH()
        self.reset()

    @classmethod
    def from_config(cls, cfg, runtime=None, key="tracking", frame_rate=25.0):
        keys = ("high_threshold", "low_threshold", "new_track_threshold", "match_threshold",
                "second_match_threshold", "unconfirmed_match_threshold", "track_buffer", "fuse_score")
        return cls(**{k: cfg[k] for k in keys}, frame_rate=frame_rate)

    def describe(self) -> str:
        return f"bytetrack(high={self.high}, low={self.low}, new={self.new})"

    def reset(self) -> None:
        self.frame = -1
        self.next_id = 1
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.ids = np.zeros(0, np.int64)
        self.cls = np.zeros(0, np.int64)
        self.state = np.zeros(0, np.int64)
        self.confirmed = np.zeros(0, bool)
        self.last = np.zeros(0, np.int64)

    def _cost(self, tracks: np.ndarray, det: Detections, dets: np.ndarray, fuse: bool) -> np.ndarray:
        iou = box_iou(xyah_to_xyxy(self.mean[tracks]), det.boxes[dets])
        if fuse:
            iou = iou * det.scores[dets][None, :]
        iou = np.where(self.cls[tracks][:, None] == det.classes[dets][None, :], iou, 0.0)
        return 1.0 - iou

    def update(self, det: Detections) -> tuple[np.ndarray, np.ndarray]:
        """Feed one frame's detections; returns (track ids, detection indices) of the tracks
        confirmed and matched in this frame."""
        self.frame += 1
        n = len(self.ids)
        if n:
            lost = self.state == LOST
            self.mean[lost, 7] = 0.0  # ByteTrack freezes the height velocity of lost tracks
            self.mean, self.cov = self.kf.predict(self.mean, self.cov)
        high = np.flatnonzero(det.scores >= self.high)
        low = np.flatnonzero((det.scores >= self.low) & (det.scores < self.high))
        matched_t, matched_d = [], []

        # 1) confirmed tracked + lost tracks vs high-score detections
        pool = np.flatnonzero(self.confirmed)
        r, c = _match(self._cost(pool, det, high, self.fuse_score), self.t1)
        matched_t.append(pool[r])
        matched_d.append(high[c])
        rest_high = np.setdiff1d(high, high[c], assume_unique=True)
        rest_tracks = np.setdiff1d(pool, pool[r], assume_unique=True)

        # 2) still-unmatched tracked (not lost) tracks vs low-score detections
        pool2 = rest_tracks[self.state[rest_tracks] == TRACKED]
        r2, c2 = _match(self._cost(pool2, det, low, False), self.t2)
        matched_t.append(pool2[r2])
        matched_d.append(low[c2])
        newly_lost = np.setdiff1d(pool2, pool2[r2], assume_unique=True)

        # 3) unconfirmed tracks vs the remaining high-score detections
        unconf = np.flatnonzero(~self.confirmed)
        r3, c3 = _match(self._cost(unconf, det, rest_high, self.fuse_score), self.t3)
        matched_t.append(unconf[r3])
        matched_d.append(rest_high[c3])
        drop = np.setdiff1d(unconf, unconf[r3], assume_unique=True)
        rest_high = np.setdiff1d(rest_high, rest_high[c3], assume_unique=True)

        mt = np.concatenate(matched_t).astype(int)
        md = np.concatenate(matched_d).astype(int)
        if len(mt):
            z = xyxy_to_xyah(det.boxes[md].astype(np.float64))
            self.mean[mt], self.cov[mt] = self.kf.update(self.mean[mt], self.cov[mt], z)
            self.state[mt] = TRACKED
            self.confirmed[mt] = True
            self.last[mt] = self.frame
            self.cls[mt] = det.classes[md]
        self.state[newly_lost] = LOST

        keep = np.ones(n, bool)
        keep[drop] = False
        keep &= ~((self.state == LOST) & (self.frame - self.last > self.max_lost))
        out_ids = self.ids[mt].copy()

        # new tracks from unmatched confident detections
        starts = rest_high[det.scores[rest_high] >= self.new]
        self._keep(keep)
        if len(starts):
            m, cv = self.kf.initiate(xyxy_to_xyah(det.boxes[starts].astype(np.float64)))
            k = len(starts)
            new_ids = np.arange(self.next_id, self.next_id + k)
            self.next_id += k
            first = self.frame == 0
            self.mean = np.concatenate([self.mean, m])
            self.cov = np.concatenate([self.cov, cv])
            self.ids = np.concatenate([self.ids, new_ids])
            self.cls = np.concatenate([self.cls, det.classes[starts]])
            self.state = np.concatenate([self.state, np.full(k, TRACKED)])
            self.confirmed = np.concatenate([self.confirmed, np.full(k, first)])
            self.last = np.concatenate([self.last, np.full(k, self.frame)])
            if first:  # ByteTrack confirms tracks born in the first frame at once
                out_ids = np.concatenate([out_ids, new_ids])
                md = np.concatenate([md, starts])
        # only confirmed tracks are reported (a track is confirmed at its second detection)
        order = np.argsort(out_ids)
        return out_ids[order], md[order]

    def _keep(self, keep: np.ndarray) -> None:
        for a in ("mean", "cov", "ids", "cls", "state", "confirmed", "last"):
            setattr(self, a, getattr(self, a)[keep])
