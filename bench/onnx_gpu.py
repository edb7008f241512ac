"""The offline preset's ONNX Runtime backends on a GPU: same outputs as on the CPU, and how fast.

    python bench/onnx_gpu.py [--shared ../shared] [--frames 50] [--threads 2]

Needs the ``onnxruntime-gpu`` build (``bash scripts/setup.sh --gpu``) and a CUDA device; says so and
exits 2 otherwise. On real frames and crops (Ped2 test video 01, Avenue training video 16), for YOLOX
(the tiles of a frame in one call), EfficientNet-Lite0 (``engine: onnxruntime``) and the DeepLabV3
scene model: milliseconds per frame / crop on the CPU (``--threads``) and on CUDA, and the largest
difference between the two runs' outputs (boxes in pixels, features, class probabilities).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.models.appearance import crop_boxes  # noqa: E402
from hscvad.models.registry import APPEARANCE, DETECTORS, SCENE, Runtime, onnx_cuda_available  # noqa: E402


def per_item_ms(fn, items) -> tuple[float, list]:
    fn(items[0])
    t = time.perf_counter()
    out = [fn(x) for x in items]
    return 1000 * (time.perf_counter() - t) / len(items), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not onnx_cuda_available():
        import onnxruntime

        print(f"no CUDA for ONNX Runtime here (providers {onnxruntime.get_available_providers()}); install the GPU "
              "build with `bash scripts/setup.sh --gpu` on a machine with a CUDA device", file=sys.stderr)
        return 2
    import cv2

    ped2 = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in
            sorted((args.shared / "datasets" / "ped2" / "testing" / "frames" / "01").glob("*.jpg"))[: args.frames]]
    cpu, gpu = Runtime("cpu", args.threads), Runtime("cuda", args.threads)
    weights = str(args.shared / "models" / "yolox_nano_416x416.onnx")
    print(f"{'model':<28}{'cpu ms':>10}{'cuda ms':>10}{'speed-up':>10}{'max |diff|':>12}")

    def row(name, build, items, compare):
        ms_c, out_c = per_item_ms(build(cpu), items)
        ms_g, out_g = per_item_ms(build(gpu), items)
        print(f"{name:<28}{ms_c:>10.2f}{ms_g:>10.2f}{ms_c / ms_g:>9.1f}x{compare(out_c, out_g):>12.2e}", flush=True)

    def det_diff(a, b):
        worst = 0.0
        for x, y in zip(a, b):
            if len(x) != len(y):
                return float("inf")
            worst = max(worst, float(np.abs(x.boxes - y.boxes).max(initial=0)))
        return worst

    row("yolox (2x tiles) per frame", lambda rt: DETECTORS.build("yolox", {"weights": weights}, rt).detect, ped2,
        det_diff)
    det = DETECTORS.build("yolox", {"weights": weights}, cpu)
    crops = np.concatenate([crop_boxes(f, det.detect(f).boxes, (224, 224), 1.2) for f in ped2[:10]])
    batches = [crops[i : i + 64] for i in range(0, len(crops) - 63, 64)] or [crops]
    row(f"efficientnet_lite0 per {len(batches[0])} crops",
        lambda rt: APPEARANCE.build("efficientnet_lite0", {"engine": "onnxruntime"}, rt, "appearance").embed, batches,
        lambda a, b: max(float(np.abs(x - y).max()) for x, y in zip(a, b)))
    scene_w = args.shared / "models" / "deeplabv3_mobilenetv2_voc_257.onnx"
    row("deeplabv3 per frame", lambda rt: SCENE.build("deeplabv3_voc", {"weights": str(scene_w)}, rt).class_scores,
        ped2, lambda a, b: max(float(np.abs(x - y).max()) for x, y in zip(a, b)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
