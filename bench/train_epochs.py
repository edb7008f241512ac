"""Seconds per epoch over a whole HSC training on a finished run's features: does training slow down?

    python bench/train_epochs.py [--results results/ped2] [--stream appearance] [--epochs 200]
                                 [--config config.yaml] [--threads 2] [--count-subnormals] [--no-flush]
                                 [--optimizer adam adam_fused] [--precision highest medium]

Trains the stream exactly as ``train_hsc`` does (same samples, input normalisation, scene labels,
settings from the config) and prints every epoch's wall time, their min / median / max, and the
ratio of the last 20 epochs' mean to the first 20's (the first epoch, which fills the memory bank
and has no contrast terms, left out). Subnormal floats (Adam moments, then weights, decaying
towards 0) cost some CPUs two orders of magnitude per operation and show as a ratio far above 1;
training flushes them to zero (``torch.set_flush_denormal``), and this prints whether the CPU
supports that, and in how many of torch's threads it holds (:mod:`hscvad.denormals`). Also the CPU
model, since the effect depends on it.

``--count-subnormals`` counts, at the end of every epoch, the subnormal values in the parameters,
their gradients, the optimiser's state, the memory bank and (over the epoch) the layers' outputs:
where training produces them, whatever the CPU (its timings include the counting). ``--no-flush``
trains without flushing them, as the code issue 12 measured did. ``--optimizer adam adam_fused``
trains once with each, side by side in this process, and prints the ratio of their median epoch times;
``--precision highest medium`` does the same for ``hsc.matmul_precision``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from train_scale import EpochClock  # noqa: E402

import hscvad.hsc.train as hsc_train  # noqa: E402
from hscvad.config import load_schema, validate  # noqa: E402
from hscvad.denormals import flush_denormals  # noqa: E402
from hscvad.features import STREAM_LAYOUT, load_samples, scene_labels_for  # noqa: E402
from hscvad.h5store import read_arrays  # noqa: E402
from hscvad.hsc.train import StreamData, input_norm, prepare_features, standard_stats, train_stream  # noqa: E402
from hscvad.stages.train_hsc import column_groups  # noqa: E402

STREAM_DIR = {"appearance": "objects", "velocity": "velocity", "motion": "motion"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def n_subnormal(tensors) -> int:
    total = 0
    for t in tensors:
        if t is not None and t.is_floating_point():
            total += int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum())
    return total


class SubnormalCounter(EpochClock):
    """An epoch clock that also counts subnormal values at the end of every epoch: in the
    parameters, gradients, optimiser state and memory bank (captured by wrapping the functions
    train_stream calls), and in the outputs of every layer over the epoch (forward hooks)."""

    GROUPS = ("parameters", "gradients", "optimiser state", "memory bank", "layer outputs")

    def __init__(self):
        super().__init__()
        self.rows: list[dict[str, int]] = []
        self.opt = self.bank = None
        self.outputs = 0
        make_model, make_optimizer, update = hsc_train.build_model, hsc_train._optimizer, hsc_train.L.memory_update

        def capture_model(*a, **k):
            model = make_model(*a, **k)
            self.hook(model)
            return model

        def capture_optimizer(cfg, params):
            self.params = list(params)
            self.opt = make_optimizer(cfg, self.params)
            return self.opt

        def capture_bank(bank, idx, z, momentum):
            self.bank = bank
            return update(bank, idx, z, momentum)

        hsc_train.build_model = capture_model
        hsc_train._optimizer = capture_optimizer
        hsc_train.L.memory_update = capture_bank

        def restore():
            hsc_train.build_model, hsc_train._optimizer = make_model, make_optimizer
            hsc_train.L.memory_update = update

        self.restore = restore

    def hook(self, model):
        def count(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                self.outputs += n_subnormal([output.detach()])

        for m in model.modules():
            if not list(m.children()):
                m.register_forward_hook(count)

    def update(self, n):
        now = time.perf_counter()
        self.times.append(now - self.t)
        state = [v for s in self.opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
        self.rows.append({"parameters": n_subnormal(p.detach() for p in self.params),
                          "gradients": n_subnormal(p.grad for p in self.params),
                          "optimiser state": n_subnormal(state), "memory bank": n_subnormal([self.bank]),
                          "layer outputs": self.outputs})
        self.outputs = 0
        self.t = time.perf_counter()

    def report(self) -> None:
        print("subnormal values at the end of each epoch (layer outputs: summed over the epoch's batches):")
        print(f"{'epoch':>6}" + "".join(f"{g:>17}" for g in self.GROUPS))
        for i, r in enumerate(self.rows, 1):
            if i in (1, 2, 5) or i % 10 == 0 or i == len(self.rows):
                print(f"{i:>6}" + "".join(f"{r[g]:>17}" for g in self.GROUPS))
        for g in self.GROUPS:
            first = next((i for i, r in enumerate(self.rows, 1) if r[g]), None)
            print(f"{g}: {'none in any epoch' if first is None else f'first at epoch {first}'}, "
                  f"largest count {max(r[g] for r in self.rows)}")


class StepTimer:
    """Seconds spent in the optimiser's step over a training (wraps the optimiser train_stream builds)."""

    def __init__(self):
        self.seconds = 0.0
        make_optimizer = hsc_train._optimizer

        def timed(cfg, params):
            opt = make_optimizer(cfg, params)
            step = opt.step

            def timed_step(*a, **k):
                t0 = time.perf_counter()
                out = step(*a, **k)
                self.seconds += time.perf_counter() - t0
                return out

            opt.step = timed_step
            return opt

        hsc_train._optimizer = timed
        self.restore = lambda: setattr(hsc_train, "_optimizer", make_optimizer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/ped2")
    ap.add_argument("--stream", default="appearance", choices=sorted(STREAM_DIR))
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count-subnormals", action="store_true", help="count subnormal values every epoch")
    ap.add_argument("--no-flush", action="store_true", help="train without flushing subnormals to zero")
    ap.add_argument("--optimizer", nargs="+", choices=("adam", "adam_fused", "adagrad", "sgd"),
                    help="train with each of these hsc.optimizer values in turn, in this process "
                         "(default: the config's)")
    ap.add_argument("--precision", nargs="+", choices=("highest", "medium"),
                    help="train with each of these hsc.matmul_precision values in turn (with the config's "
                         "optimiser), in this process")
    args = ap.parse_args()
    if args.optimizer and args.precision and len(args.optimizer) > 1 and len(args.precision) > 1:
        sys.exit("compare optimisers or precisions, not both at once")
    if args.no_flush:
        torch.set_flush_denormal(False)
        hsc_train.flush_denormals = lambda: "off (--no-flush)"
        flush = "off (--no-flush)"
    else:
        flush = flush_denormals()  # before torch's threads start
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    validate(cfg, load_schema(REPO / "schemas" / "config.schema.yaml"))
    res = Path(args.results)
    files = sorted((res / STREAM_DIR[args.stream] / "train").glob("*.h5"))
    scene_files = [res / "scene" / "train" / f.name for f in files]
    if not files:
        sys.exit(f"no {args.stream} training features under {res / STREAM_DIR[args.stream] / 'train'}: run the "
                 "pipeline first (snakemake results/ped2/auc.json --cores 2)")
    s = load_samples([str(f) for f in files], [str(f) for f in scene_files], STREAM_LAYOUT[args.stream])
    hsc = copy.deepcopy(cfg["hsc"])
    stream_cfg = {**hsc, "architecture": hsc["architecture"][args.stream], "epochs": args.epochs}
    norm = input_norm(stream_cfg)
    stats = (standard_stats(s.feat, column_groups([str(f) for f in files], args.stream) if norm == "group" else None)
             if norm in ("standard", "group") else None)
    data = StreamData(prepare_features(s.feat, norm, stats), s.scene_feat, scene_labels_for(s, str(res / "scenes.h5")),
                      s.cls)
    _, sattrs = read_arrays(res / "scenes.h5", "scenes")
    print(f"{cpu_model()}; subnormals flushed to zero: {flush}; {len(data)} {args.stream} samples, "
          f"{args.epochs} epochs, {args.threads} threads")
    medians = {}
    runs = ([("optimizer", o) for o in args.optimizer or [stream_cfg["optimizer"]]] if not args.precision or
            len(args.optimizer or []) > 1 else [("matmul_precision", p) for p in args.precision])
    fixed = {"optimizer": (args.optimizer or [stream_cfg["optimizer"]])[0],
             "matmul_precision": (args.precision or [stream_cfg["matmul_precision"]])[0]}
    for key, name in runs:
        if len(runs) > 1:
            print(f"-- hsc.{key} {name}")
        clock = SubnormalCounter() if args.count_subnormals else EpochClock()
        steps = StepTimer()
        result = train_stream(data, {**stream_cfg, **fixed, key: name}, int(sattrs["n_scenes"]), int(cfg["seed"]),
                              progress=clock)
        t = np.asarray(clock.times)
        print("s/epoch: " + " ".join(f"{x:.2f}" for x in t))
        body = t[1:]
        k = min(20, len(body) // 2)
        first, last = body[:k].mean(), body[-k:].mean()
        print(f"min {body.min():.2f} / median {np.median(body):.2f} / max {body.max():.2f} s per epoch "
              f"(epochs 2..{len(t)})")
        print(f"last {k} epochs {last:.2f} s, first {k} {first:.2f} s: ratio {last / first:.2f}")
        steps.restore()
        if args.count_subnormals:
            clock.restore()  # the next optimiser's run wraps the originals again
        print(f"optimiser step: {steps.seconds / len(t):.2f} s per epoch, {100 * steps.seconds / t.sum():.0f} % "
              "of the training's time")
        print("final losses: " + ", ".join(f"{key} {v:.5f}" for key, v in result.history[-1].items() if key != "epoch"))
        medians[name] = float(np.median(body))
        if args.count_subnormals:
            clock.report()
    if len(medians) > 1:
        base = next(iter(medians))
        print("median s/epoch against " + base + ": "
              + ", ".join(f"{n} {m:.2f} ({medians[base] / m:.2f}x faster)" for n, m in medians.items()))

if __name__ == "__main__":
    main()
