"""The paper's Table 3 ablations, measured with the yardstick (no test video, no test label).

    python bench/ablations.py results/ped2 [--configfile extra.yaml ...] [--variants no_scene no_object ...]
        [--threads 2] [--json out.json]

For a finished run (its features, scene labels, trained model and the yardstick's altered objects,
``validation/objects.h5``), each variant retrains every stream from the run's own training features
with the run's settings and one change, exactly as rule ``train_hsc`` trains (its code), and is
scored as rule ``validate`` scores (its code): object-level AUC of the synthetic anomalies of each
stream's kinds, against held-out normal training objects.

- ``full``: the run's own model (not retrained);
- ``retrained``: the same settings trained again in this process: how far a retraining alone moves
  the figures (its float rounding can differ from the workflow job's, and the appearance model
  amplifies rounding: ``docs/results.md``, "Across CPUs"); compare the variants with it;
- ``no_scene``: without the scene-level contrast (Eq. 3; ``hsc.ablation.loss_scene: false``);
- ``no_object``: without the object-level contrast (Eq. 5; ``loss_object: false``);
- ``no_contrast``: without both;
- ``no_memory``: without both, and scored by reconstructing each sample from its own code instead
  of reading the memory (a plain autoencoder). Its normal objects are training samples the model
  was fitted to (the memory read-outs and the 1-NN leave the sample's video out), which flatters it.

Per variant and stream the table gives the configured read-out's mean AUC over the stream's kinds,
the best HSC read-out's, and the 1-NN's on the same inputs (the same in every variant: it reads the
features alone). Training costs what ``train_hsc`` costs, per variant.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

VARIANTS = {
    "full": None,
    "retrained": {},
    "no_scene": {"loss_scene": False},
    "no_object": {"loss_object": False},
    "no_contrast": {"loss_scene": False, "loss_object": False},
    "no_memory": {"loss_scene": False, "loss_object": False},
}
FILES = {"appearance": "objects", "velocity": "velocity", "motion": "motion"}


def plain_reconstruction(model, feat: np.ndarray, scene_feat: np.ndarray) -> np.ndarray:
    """|| f - Theta(z) ||^2 with z the sample's own code: the autoencoder without its memory."""
    import torch

    model.eval()
    with torch.no_grad():
        f = torch.from_numpy(np.ascontiguousarray(feat, np.float32))
        fb = torch.from_numpy(np.ascontiguousarray(scene_feat, np.float32))
        return ((model.target(f, fb) - model.decode(model.encode(f, fb))) ** 2).sum(1).numpy()


def no_memory_aucs(model_path: str, streams: dict, synthetic: dict, normal_keys: dict) -> dict:
    """Per stream and kind, the plain autoencoder's object AUC (altered against normal objects)."""
    from hscvad.evaluation.objects import object_keys
    from hscvad.evaluation.validation import roc_auc
    from hscvad.features import STREAM_LAYOUT, load_samples
    from hscvad.hsc.train import load_checkpoint, model_input

    models, meta = load_checkpoint(model_path)
    out = {}
    for s, kinds in synthetic.items():
        t = load_samples(*streams[s], STREAM_LAYOUT[s])
        model, _ = models[s]
        keys = object_keys(t.video, t.clip, t.track)
        normal = np.flatnonzero(np.isin(keys, normal_keys[s]))
        base = plain_reconstruction(model, model_input(t.feat[normal], meta, s), t.scene_feat[normal])
        out[s] = {k: roc_auc(plain_reconstruction(model, model_input(f, meta, s), t.scene_feat[idx]), base)
                  for k, (idx, f) in kinds.items()}
    return out


def run(results: Path, configfiles: list[Path], variants: list[str], threads: int) -> dict:
    import h5py

    from hscvad.config import load_config, stage_params
    from hscvad.config import validate as validate_config
    from hscvad.evaluation.objects import object_keys
    from hscvad.features import STREAM_LAYOUT, load_samples
    from hscvad.models.registry import Runtime
    from hscvad.stages import train_hsc, validate

    name = results.name
    cfg = validate_config(load_config(REPO / "config.yaml", *configfiles))
    if name not in cfg["datasets"]:
        raise SystemExit(f"{results}: no dataset {name!r} in config.yaml or a --configfile")
    with h5py.File(results / "scores.h5", "r") as f:
        videos = [v.decode() for v in f["train_videos"][()]]
    stream_names = cfg["datasets"][name]["streams"]
    streams = {s: ([str(results / FILES[s] / "train" / f"{v}.h5") for v in videos],
                   [str(results / "scene" / "train" / f"{v}.h5") for v in videos]) for s in stream_names}
    vparams = stage_params(cfg, name, "validate")
    extra = {"synthetic_objects": str(results / "validation" / "objects.h5") if "appearance" in streams else None,
             "velocity_inputs": ([str(results / "tracks" / "train" / f"{v}.h5") for v in videos],
                                 [str(results / "flow" / "train" / f"{v}.h5") for v in videos])
             if "velocity" in streams else None}
    runtime = Runtime("cpu", threads)
    out = {"dataset": name, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            t0 = time.perf_counter()
            model = str(results / "hsc" / "model.pt")
            if VARIANTS[variant] is not None:
                params = stage_params(cfg, name, "train_hsc")
                params["hsc"]["ablation"] = {**params["hsc"]["ablation"], **VARIANTS[variant]}
                model = f"{tmp}/{variant}.pt"
                train_hsc.run(streams, str(results / "scenes.h5"), model, f"{tmp}/{variant}.csv", params, runtime)
            v = validate.run(model, streams, f"{tmp}/{variant}.json", vparams, runtime, **extra)
            row = {}
            for s, r in v["streams"].items():
                if not r["kinds"]:
                    continue
                c = r["candidates"]
                configured = next(iter(c))
                row[s] = {"configured": c[configured]["mean_auc"], "configured_name": configured,
                          "best_hsc": max(d["mean_auc"] for k, d in c.items() if k != "knn"),
                          "knn": c["knn"]["mean_auc"], "per_kind": {k: d["aucs"] for k, d in c.items()}}
            if variant == "no_memory":
                synthetic, normal_keys = {}, {}
                for s in row:
                    t = load_samples(*streams[s], STREAM_LAYOUT[s])
                    keys = object_keys(t.video, t.clip, t.track)
                    n, seed = int(vparams["validation"]["samples"]), int(vparams["seed"])
                    synthetic[s] = (validate.appearance_synthetic(extra["synthetic_objects"], t) if s == "appearance"
                                    else validate.velocity_synthetic(*extra["velocity_inputs"], streams[s][0], t, n,
                                                                     seed))
                    pool = np.unique(keys)
                    size = min(len(pool), int(vparams["validation"]["max_normal"]))
                    normal_keys[s] = np.random.default_rng(seed).choice(pool, size=size, replace=False)
                plain = no_memory_aucs(model, streams, synthetic, normal_keys)
                for s in row:
                    row[s] = {"plain_ae": float(np.mean(list(plain[s].values()))), "per_kind": {"plain_ae": plain[s]},
                              "knn": row[s]["knn"]}
            out["variants"][variant] = {"streams": row, "seconds": round(time.perf_counter() - t0, 1)}
            figures = {s: ", ".join(f"{k} {x:.3f}" for k, x in r.items() if isinstance(x, float))
                       for s, r in row.items()}
            print(f"{name} {variant}: " + "; ".join(f"{s} {t}" for s, t in figures.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a finished run's results/<dataset> folder")
    ap.add_argument("--configfile", type=Path, nargs="*", default=[], help="the run's extra config files")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    r = run(args.results, args.configfile, args.variants, args.threads)
    print("| variant | stream | configured read-out | best HSC read-out | plain AE | 1-NN |")
    print("|---|---|---|---|---|---|")
    for variant, v in r["variants"].items():
        for s, x in v["streams"].items():
            cells = [f"{x[k]:.3f}" if k in x else "-" for k in ("configured", "best_hsc", "plain_ae", "knn")]
            print(f"| {variant} | {s} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
