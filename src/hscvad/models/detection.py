"""Object detectors behind one interface: ``detect(frame) -> Detections`` (COCO-80 classes).

Offline backends run ONNX models through onnxruntime:
- ``yolox``: YOLOX (raw head, grid decoding and class-aware NMS here), optionally on an enlarged
  frame cut into overlapping tiles, which is what finds the 15-40 px objects of UCSD Ped2, together
  with a pass over the whole frame, which sees larger objects whole (sliced inference, as SAHI).
  The graph is loaded with a free batch and input size (:func:`_batched_yolox`), so the tiles of a
  frame go through it in one call where that is faster (several threads, a GPU), or the enlarged
  frame goes through it in one pass with no tiles (``single_pass``).
- ``picodet``: PicoDet with NMS inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import OnnxGpu, Runtime, onnx_session, resolve_weights

COCO_CLASSES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
    "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl "
    "banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch potted_plant "
    "bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).split()


@dataclass
class Detections:
    """Boxes (N, 4) as x1, y1, x2, y2 in frame pixels, scores (N,), COCO class ids (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])


def class_ids(names: list[str], key: str) -> np.ndarray:
    unknown = [n for n in names if n not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"{key}: unknown COCO class name(s) {unknown}")
    return np.array([COCO_CLASSES.index(n) for n in names], dtype=np.int64)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas (N, M) of x1y1x2y2 boxes, and each side's areas (width and
    height as separate (N, M) arrays: no reduction over a length-2 axis, which costs more than the
    products themselves)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    return inter, area_a, area_b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x1y1x2y2 boxes -> (N, M)."""
    inter, area_a, area_b = _overlap(a, b)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _box_ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area."""
    inter, area_a, area_b = _overlap(a, b)
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def nms(det: Detections, iou: float, ios: float | None = None) -> Detections:
    """Class-aware greedy NMS. With ``ios``, a box mostly inside a higher-scoring box of its class
    is also dropped (the partial boxes that tile borders create)."""
    if len(det) == 0:
        return det
    order = np.argsort(-det.scores, kind="stable")
    det = det.select(order)
    inter, area, _ = _overlap(det.boxes, det.boxes)  # box_iou's and _box_ios's terms, computed once
    overlap = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9) > iou
    if ios is not None:
        overlap |= inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9) > ios
    suppress = np.triu(overlap & (det.classes[:, None] == det.classes[None, :]), k=1)
    keep = np.ones(len(det), bool)
    for i in range(len(det)):  # greedy: O(N) over boxes of one frame, rows are vectorised
        if keep[i]:
            keep[i + 1 :] &= ~suppress[i, i + 1 :]
    return det.select(keep)


class Detector:
    backend_name = "base"
    #: runs on a GPU when there is one (its rule then asks for gpu=1): the PyTorch backends, and the
    #: ONNX Runtime ones where the onnxruntime-gpu build is installed (``OnnxGpu``); the TFLite,
    #: OpenCV and NumPy backends run on the CPU and ask for none
    uses_gpu = False

    def detect(self, frame: np.ndarray) -> Detections:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        return self.backend_name


def _tiles(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = int(np.ceil((length - overlap) / (tile - overlap)))
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


class YOLOX(Detector):
    """YOLOX with a raw head (``images`` 1x3xSxS BGR 0..255, top-left letterbox with 114)."""
    uses_gpu = OnnxGpu()

    def __init__(self, weights, runtime: Runtime, input_size: int, upscale: float, tile_overlap: int,
                 min_score: float, nms_iou: float, merge_ios: float, full_frame: bool, cut_margin: int,
                 cut_ios: float, single_pass: bool):
        # the tiles of a frame in one call where that is faster: several threads or a GPU (with
        # one thread a batch of four tiles is no faster than four calls; bench/detection_tiling.py)
        self.single_pass = bool(single_pass) and float(upscale) != 1.0
        model, self.batched = _batched_yolox(weights) \
            if self.single_pass or runtime.threads > 1 or runtime.device == "cuda" else (weights, False)
        if self.single_pass and not self.batched:
            raise ValueError(f"detection.yolox.single_pass: {weights} is not a YOLOX graph whose input size can change")
        self.session = onnx_session(model, runtime)
        self.input_name = self.session.get_inputs()[0].name
        self.size = int(input_size)
        self.upscale = float(upscale)
        self.overlap = int(tile_overlap)
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)
        self.merge_ios = float(merge_ios)
        self.full_frame = bool(full_frame)
        self.cut_margin = int(cut_margin)
        self.cut_ios = float(cut_ios)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_config(cls, cfg, runtime, key):
        w = resolve_weights(cfg["weights"], f"{key}.weights", cfg["sha256"])
        return cls(w, runtime, cfg["input_size"], cfg["upscale"], cfg["tile_overlap"], cfg["min_score"],
                   cfg["nms_iou"], cfg["merge_ios"], cfg["full_frame"], cfg["cut_margin"], cfg["cut_ios"],
                   cfg["single_pass"])

    def describe(self) -> str:
        return (f"yolox(input={self.size}, upscale={self.upscale}, full_frame={self.full_frame}, "
                f"single_pass={self.single_pass})")

    def _letterbox(self, img_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """The model's input (3, S, S) float32 of an image (top-left letterbox), and its scale."""
        import cv2

        h, w = img_bgr.shape[:2]
        if h == w == self.size:  # a whole tile: nothing to scale or pad
            return img_bgr.transpose(2, 0, 1).astype(np.float32), 1.0
        r = min(self.size / h, self.size / w)
        canvas = np.full((self.size, self.size, 3), 114, np.uint8)
        if r != 1.0:
            img_bgr = cv2.resize(img_bgr, (int(round(w * r)), int(round(h * r))), interpolation=cv2.INTER_LINEAR)
        canvas[: img_bgr.shape[0], : img_bgr.shape[1]] = img_bgr
        return canvas.transpose(2, 0, 1).astype(np.float32), r

    def _grid(self, ih: int, iw: int) -> tuple[np.ndarray, np.ndarray]:
        """The anchor points (A, 2) and strides (A, 1) of the raw head for an input of ih x iw."""
        if (ih, iw) not in self._grids:
            grids, strides = [], []
            for s in (8, 16, 32):
                yy, xx = np.meshgrid(np.arange(ih // s), np.arange(iw // s), indexing="ij")
                grids.append(np.stack([xx, yy], -1).reshape(-1, 2))
                strides.append(np.full((grids[-1].shape[0], 1), s))
            self._grids[ih, iw] = (np.concatenate(grids).astype(np.float32),
                                   np.concatenate(strides).astype(np.float32))
        return self._grids[ih, iw]

    def _decode(self, out: np.ndarray, r: float, h: int, w: int, input_hw: tuple[int, int] | None = None) -> Detections:
        """Detections of one image from the raw head's rows (A, 85) at letterbox scale ``r``."""
        grid, stride = self._grid(*(input_hw or (self.size, self.size)))
        # a score is objectness x class probability (both sigmoids, so at most the objectness):
        # only the rows whose objectness reaches min_score can keep a box, and only they are decoded
        rows = np.flatnonzero(out[:, 4] >= self.min_score)
        out, grid, stride = out[rows], grid[rows], stride[rows]
        xy = (out[:, :2] + grid) * stride
        wh = np.exp(np.clip(out[:, 2:4], -10, 10)) * stride
        cls = out[:, 5:].argmax(1)
        score = out[:, 4] * out[np.arange(len(out)), 5 + cls]
        keep = score >= self.min_score
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / r
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return nms(Detections(boxes.astype(np.float32), score[keep].astype(np.float32), cls[keep]), self.nms_iou)

    def _run_many(self, images: list[np.ndarray]) -> list[Detections]:
        """Detections of each image; the images go through the network in one call (one batch)
        when the model takes a batch, else one call each. Equal either way (tested)."""
        inputs = [self._letterbox(img) for img in images]
        if self.batched:
            outs = self.session.run(None, {self.input_name: np.stack([i[0] for i in inputs])})[0]
        else:
            outs = [self.session.run(None, {self.input_name: x[None]})[0][0] for x, _ in inputs]
        return [self._decode(o, r, *img.shape[:2]) for o, (_, r), img in zip(outs, inputs, images)]

    def _run(self, img_bgr: np.ndarray) -> Detections:
        return self._run_many([img_bgr])[0]

    def _run_whole(self, img_bgr: np.ndarray) -> Detections:
        """One pass over an image of any size at its own scale: padded (bottom, right, 114) to
        multiples of the largest stride, 32."""
        h, w = img_bgr.shape[:2]
        ih, iw = -(-h // 32) * 32, -(-w // 32) * 32
        canvas = np.full((ih, iw, 3), 114, np.uint8)
        canvas[:h, :w] = img_bgr
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.session.run(None, {self.input_name: x})[0][0]
        return self._decode(out, 1.0, h, w, (ih, iw))

    def detect(self, frame: np.ndarray) -> Detections:
        """Sliced inference: the frame enlarged by ``upscale`` and cut into overlapping tiles (small
        objects). With ``full_frame``, also one pass over the whole frame (objects larger than a
        tile, or standing across a tile border): a tile's box that touches an inner tile border is
        cut; it is dropped where a whole-frame box of its class holds it (intersection over the cut
        box at least ``cut_ios``), and cut pieces of one object in neighbouring tiles are joined.
        Then class-aware NMS, which also drops a box mostly inside a higher-scoring one
        (``merge_ios``)."""
        import cv2

        bgr = frame[:, :, ::-1]
        if self.upscale == 1.0:
            return self._run(np.ascontiguousarray(bgr))
        H, W = frame.shape[:2]
        size = (int(round(W * self.upscale)), int(round(H * self.upscale)))
        big = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
        BH, BW = big.shape[:2]
        if self.single_pass:  # the enlarged frame in one pass: no tile borders to cut anyone
            found = self._run_whole(big)
            found.boxes /= self.upscale
            if self.full_frame:
                whole = self._run(np.ascontiguousarray(bgr))
                found = Detections(*(np.concatenate([getattr(p, a) for p in (whole, found)])
                                     for a in ("boxes", "scores", "classes")))
            return nms(found, self.nms_iou, self.merge_ios)
        parts, cuts = [], []
        m = self.cut_margin
        origins = [(y0, x0) for y0 in _tiles(BH, self.size, self.overlap) for x0 in _tiles(BW, self.size, self.overlap)]
        images = [big[y0 : y0 + self.size, x0 : x0 + self.size] for y0, x0 in origins]
        if self.full_frame:  # the whole frame goes through the network in the tiles' call
            images.append(np.ascontiguousarray(bgr))
        found = self._run_many(images)
        for (y0, x0), d in zip(origins, found):
            if self.full_frame:
                b, th, tw = d.boxes, min(self.size, BH - y0), min(self.size, BW - x0)  # b: in tile pixels
                # which sides of each box lie on an inner border of its tile: left, top, right, bottom
                cuts.append(np.stack([(x0 > 0) & (b[:, 0] <= m), (y0 > 0) & (b[:, 1] <= m),
                                      (x0 + tw < BW) & (b[:, 2] >= tw - m), (y0 + th < BH) & (b[:, 3] >= th - m)],
                                     1))
            d.boxes = (d.boxes + np.array([x0, y0, x0, y0], np.float32)) / self.upscale
            parts.append(d)
        tiles = Detections(*(np.concatenate([getattr(p, a) for p in parts]) for a in ("boxes", "scores", "classes")))
        if not self.full_frame:  # the tiles alone: a person across a border stays two boxes
            return nms(tiles, self.nms_iou, self.merge_ios)
        cut = np.concatenate(cuts)
        whole = found[-1]
        keep = np.ones(len(tiles), bool)
        if len(whole) and len(tiles):
            holds = (_box_ios(tiles.boxes, whole.boxes) >= self.cut_ios) & (tiles.classes[:, None] == whole.classes)
            keep &= ~(cut.any(1) & holds.any(1))
        joined = _join_cut(tiles.select(keep), cut[keep])
        merged = Detections(*(np.concatenate([getattr(p, a) for p in (whole, joined)]) for a in ("boxes", "scores",
                                                                                                 "classes")))
        return nms(merged, self.nms_iou, self.merge_ios)


def _batched_yolox(path) -> tuple[bytes | str, bool]:
    """The YOLOX graph with a free batch dimension and input size, so the tiles of a frame go
    through it in one call, or a whole enlarged frame in one pass: its input's batch, height and width
    made symbolic and the head's three reshapes to (1, 85, -1) made (0, 85, -1) (0: the input's
    batch). Returns the serialised graph and True, or the file and False for a graph of another
    shape (then one call per tile)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    heads = [n for n in g.node if n.op_type == "Reshape" and n.input[1] in inits
             and numpy_helper.to_array(inits[n.input[1]]).tolist()[:2] == [1, 85]]
    dims = g.input[0].type.tensor_type.shape.dim
    if len(heads) != 3 or len(g.input) != 1 or len(dims) != 4:
        return str(path), False
    for n in heads:
        shape = numpy_helper.to_array(inits[n.input[1]]).copy()
        shape[0] = 0
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(shape, n.input[1]))
    out_dims = g.output[0].type.tensor_type.shape.dim
    for d, name in ((dims[0], "batch"), (dims[2], "height"), (dims[3], "width"), (out_dims[0], "batch"),
                    (out_dims[1], "anchors")):
        d.ClearField("dim_value")
        d.dim_param = name
    del g.value_info[:]  # shapes inferred for batch 1
    return model.SerializeToString(), True


def _join_cut(det: Detections, cut: np.ndarray) -> Detections:
    """Join the pieces of one object cut by a tile border: a box cut at its bottom (right) and a box
    of the same class cut at its top (left) that overlap, and whose extents across the border agree
    (IoU of the x (y) ranges at least 0.5), become their union with the higher score."""
    if len(det) < 2 or not cut.any():
        return det
    boxes, scores = det.boxes.copy(), det.scores.copy()
    alive = np.ones(len(det), bool)
    for lo, hi, a, b in ((3, 1, 0, 2), (2, 0, 1, 3)):  # bottom/top pieces (x extents), right/left pieces (y extents)
        for i in np.flatnonzero(cut[:, lo]):
            for j in np.flatnonzero(cut[:, hi]):
                if i == j or not (alive[i] and alive[j]) or det.classes[i] != det.classes[j]:
                    continue
                bi, bj = boxes[i], boxes[j]
                inter = min(bi[b], bj[b]) - max(bi[a], bj[a])
                union = max(bi[b], bj[b]) - min(bi[a], bj[a])
                if union <= 0 or inter / union < 0.5 or bj[hi] > bi[lo]:  # extents disagree, or no overlap
                    continue
                boxes[i] = [min(bi[0], bj[0]), min(bi[1], bj[1]), max(bi[2], bj[2]), max(bi[3], bj[3])]
                scores[i] = max(scores[i], scores[j])
                alive[j] = False
    return Detections(boxes[alive], scores[alive], det.classes[alive])


class PicoDet(Detector):
    """PicoDet with in-graph NMS (``image`` 1x3xSxS RGB, ImageNet mean/std; ``scale_factor``)."""
    uses_gpu = OnnxGpu()

    MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
    STD = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def __init__(self, weights, runtime: Runtime, input_size: int, min_score: float):
        self.session = onnx_session(weights, runtime)
        self.size = int(input_size)
        self.min_score = float(min_score)

    @classmethod
    def from_config(cls, cfg, runtime, key):
        w = resolve_weights(cfg["weights"], f"{key}.weights", cfg["sha256"])
        return cls(w, runtime, cfg["input_size"], cfg["min_score"])

    def detect(self, frame: np.ndarray) -> Detections:
        import cv2

        h, w = frame.shape[:2]
        img = cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = ((img - self.MEAN) / self.STD).transpose(2, 0, 1)[None]
        scale = np.array([[self.size / h, self.size / w]], np.float32)
        rows, count = self.session.run(None, {"image": x, "scale_factor": scale})
        rows = rows[: int(count[0])]
        rows = rows[rows[:, 1] >= self.min_score]
        boxes = rows[:, 2:6].copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections(boxes.astype(np.float32), rows[:, 1].astype(np.float32), rows[:, 0].astype(np.int64))
