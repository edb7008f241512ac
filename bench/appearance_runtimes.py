"""EfficientNet-Lite on each runtime, side by side in one process: time per crop and agreement.

    python bench/appearance_runtimes.py [--variant 0] [--threads 1 2] [--batch 64] [--shared ../shared]
                                        [--passes 64 16 8 4 2 1]

Crops of real objects (YOLOX boxes on Ped2 test frames, the appearance stage's crop windows at the
variant's training size), embedded by:

- ``torch``: PyTorch eager, the reference (``appearance.efficientnet_lite<n>.engine: torch``);
- ``torch channels_last``: the same with channels-last memory layout;
- ``onnxruntime``: the network exported once to ONNX (the cached file the pipeline uses) run by ONNX
  Runtime (``engine: onnxruntime``, the default);
- ``openvino``: the same ONNX file compiled by OpenVINO, when the ``openvino`` package is installed
  (it is not a dependency).

Prints milliseconds per crop at each thread count and the largest absolute difference of each
runtime's features from the reference's (with the features' scale). Timings are best of three
passes over the crops, after one warm-up pass.

Then ONNX Runtime alone with each of ``--passes`` crops per forward pass (a batch of 64, 16, ...
down to one crop per call), at each thread count, side by side: milliseconds per crop, and whether
the features are identical, bit for bit, to those of the largest batch.
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
from hscvad.models.registry import APPEARANCE, DETECTORS, Runtime  # noqa: E402


def real_crops(shared: Path, size: int, n: int) -> np.ndarray:
    import cv2

    det = DETECTORS.build("yolox", {"weights": str(shared / "models" / "yolox_nano_416x416.onnx")})
    out = []
    for path in sorted((shared / "datasets" / "ped2" / "testing" / "frames" / "01").glob("*.jpg"))[::10]:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        d = det.detect(img)
        out.append(crop_boxes(img, d.boxes, (size, size), 1.2))
        if sum(map(len, out)) >= n:
            break
    return np.concatenate(out)[:n]


def timed(fn, crops: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    def run():
        return np.concatenate([fn(crops[i : i + batch]) for i in range(0, len(crops), batch)])

    feats = run()
    best = min(_seconds(run) for _ in range(3))
    return 1000 * best / len(crops), feats


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", type=int, default=0, choices=(0, 1, 2))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--crops", type=int, default=128)
    ap.add_argument("--passes", type=int, nargs="+", default=[64, 16, 8, 4, 2, 1],
                    help="crops per forward pass compared for ONNX Runtime")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args()
    import torch

    name = f"efficientnet_lite{args.variant}"
    ref_model = APPEARANCE.build(name, {"engine": "torch"}, Runtime("cpu", 1), "appearance")
    crops = real_crops(args.shared, ref_model.input_hw[0], args.crops)
    print(f"{name}, {len(crops)} crops of Ped2 test video 01 at {ref_model.input_hw[0]} px, batch {args.batch}; "
          f"torch {torch.__version__}")
    try:
        import openvino
    except ImportError:
        openvino = None
    print(f"{'runtime':<22}" + "".join(f"{f'ms/crop t{t}':>13}" for t in args.threads) + f"{'max |diff|':>12}")
    results: dict[str, list] = {}
    ref = None
    for threads in args.threads:
        torch.set_num_threads(threads)
        rt = Runtime("cpu", threads)
        eager = APPEARANCE.build(name, {"engine": "torch"}, rt, "appearance")
        # a second model: .to(memory_format=...) converts a module in place
        cl = APPEARANCE.build(name, {"engine": "torch"}, rt, "appearance").net.to(memory_format=torch.channels_last)

        def channels_last(x, cl=cl):
            with torch.inference_mode():
                return cl(torch.from_numpy(x)).numpy()  # NHWC crops: the permuted input is channels-last

        engines = {"torch": eager.embed, "torch channels_last": channels_last}
        ort = APPEARANCE.build(name, {"engine": "onnxruntime"}, rt, "appearance")
        engines["onnxruntime"] = ort.embed
        if openvino is not None:
            compiled = openvino.Core().compile_model(str(ort.onnx_path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                                  "INFERENCE_PRECISION_HINT": "f32"})
            engines["openvino"] = lambda x, c=compiled: c(x)[0]
        for engine, fn in engines.items():
            ms, feats = timed(fn, crops, args.batch)
            if ref is None:
                ref = feats
            results.setdefault(engine, []).append((ms, float(np.abs(feats - ref).max())))
    for engine, rows in results.items():
        print(f"{engine:<22}" + "".join(f"{ms:>13.2f}" for ms, _ in rows) + f"{max(d for _, d in rows):>12.2e}")
    print(f"feature scale (largest |value|): {float(np.abs(ref).max()):.2f}")
    for t_i, threads in enumerate(args.threads):
        base = results["torch"][t_i][0]
        faster = [f"{e} {base / rows[t_i][0]:.1f}x" for e, rows in results.items() if e != "torch"]
        print(f"t{threads}: " + ", ".join(faster) + " faster than torch eager")
    crops_per_pass(name, crops, args.threads, args.passes)
    return 0


def crops_per_pass(name: str, crops: np.ndarray, thread_counts: list[int], passes: list[int]) -> None:
    """ONNX Runtime with each number of crops per forward pass, side by side (the order of the
    batch sizes alternates between two rounds; the better round counts)."""
    print(f"\nonnxruntime, crops per forward pass (features against those of {max(passes)} per pass)")
    print(f"{'crops per pass':<16}" + "".join(f"{f'ms/crop t{t}':>13}" for t in thread_counts) + f"{'identical':>11}")
    rows: dict[int, list[float]] = {b: [] for b in passes}
    same: dict[int, bool] = {b: True for b in passes}
    for threads in thread_counts:
        session = APPEARANCE.build(name, {"engine": "onnxruntime"}, Runtime("cpu", threads), "appearance").session
        inp = session.get_inputs()[0].name

        def forward(x, session=session, inp=inp):  # one forward pass, whatever the backend's own choice
            return session.run(None, {inp: np.ascontiguousarray(x)})[0]

        ref = timed(forward, crops, max(passes))[1]
        best: dict[int, float] = {}
        for order in (passes, passes[::-1]):
            for b in order:
                ms, feats = timed(forward, crops, b)
                best[b] = min(best.get(b, ms), ms)
                same[b] &= bool(np.array_equal(feats, ref))
        for b in passes:
            rows[b].append(best[b])
    for b in passes:
        print(f"{b:<16}" + "".join(f"{ms:>13.2f}" for ms in rows[b]) + f"{'yes' if same[b] else 'no':>11}")


if __name__ == "__main__":
    sys.exit(main())
