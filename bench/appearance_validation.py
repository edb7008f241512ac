"""Label-free validation of the appearance stream: synthetic appearance anomalies made from the run's
own training objects, scored by the trained model and by a 1-nearest-neighbour on the same inputs.
No test video and no test label is read.

    python bench/appearance_validation.py results/ped2 [--samples 300] [--seed 0] [--threads 2]
        [--configfile extra.yaml ...]

A seeded subset of training samples is altered inside its boxes in every frame its crops come from
(``hscvad.evaluation.validation.alter_box``: ``flip``, the object upside down; ``recolour``,
tinted red) and embedded by the run's appearance backend with the appearance stage's
own code (``hscvad.appearance.sample_features``). Each altered sample is scored as the score stage
scores training samples, leave-one-video-out (it reads no memory entry and no neighbour of its own
video); the normal side is every training sample's own leave-one-video-out score. Printed per kind,
object-level AUC of:

- HSC with the bank as trained (``memory``) and with the bank re-encoded by the final encoder
  (``encoded``), each with the read-out temperature the run's setting gives that bank;
- the 1-NN: the distance to the nearest training sample of another video, over the same model
  inputs (as the score stage's ``test_knn_score``).

Check on the way: the subset's features rebuilt without alteration equal the run's stored ones (the
backend and settings of this checkout's configuration are the run's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def validate(results: Path, n_samples: int, seed: int, threads: int, configfiles: list[Path] = ()) -> dict:
    import h5py
    import torch

    from hscvad.appearance import sample_features
    from hscvad.config import dataset_cfg, load_config
    from hscvad.config import validate as validate_config
    from hscvad.data import build_dataset
    from hscvad.evaluation.validation import APPEARANCE_KINDS, alter_box, roc_auc
    from hscvad.features import load_samples, object_samples
    from hscvad.h5store import read_arrays
    from hscvad.hsc.train import encode, load_checkpoint, model_input, score_samples
    from hscvad.models.registry import APPEARANCE, Runtime
    from hscvad.stages.score import choose_tau, holdout_groups, nn_distance, stream_readout

    name = results.name
    cfg = validate_config(load_config(REPO / "config.yaml", *configfiles))
    if name not in cfg["datasets"]:
        raise SystemExit(f"{results}: no dataset {name!r} in config.yaml or a --configfile")
    with h5py.File(results / "scores.h5", "r") as f:
        streams = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["streams"]]
        if "appearance" not in streams:
            raise SystemExit(f"{results}: the run has no appearance stream")
        videos = [v.decode() if isinstance(v, bytes) else v for v in f["train_videos"][()]]
        run_bank = json.loads(f["appearance"].attrs["readout"]).get("bank", "memory")
        train_score = f["appearance"]["train_score"][()]
    train = load_samples([str(results / "objects" / "train" / f"{v}.h5") for v in videos],
                         [str(results / "scene" / "train" / f"{v}.h5") for v in videos], "objects")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(train.video, minlength=len(videos)))])
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(train.feat), size=min(n_samples, len(train.feat)), replace=False))

    acfg = cfg["appearance"]
    model = APPEARANCE.build(acfg["backend"], acfg.get(acfg["backend"], {}), Runtime("cpu", threads), "appearance")
    dcfg = dataset_cfg(cfg, name)
    # a relative dataset root is the run's working folder's (results/<dataset> lies in it)
    dcfg["root"] = str(results.resolve().parents[1] / dcfg["root"])
    ds = build_dataset(name, dcfg)
    feats = {k: np.zeros((len(chosen), train.feat.shape[1]), np.float32) for k in ("orig", *APPEARANCE_KINDS)}
    t0 = time.perf_counter()
    n_crops = 0
    for v, video in enumerate(videos):
        here = chosen[(chosen >= offsets[v]) & (chosen < offsets[v + 1])]
        if not len(here):
            continue
        tr, ta = read_arrays(str(results / "tracks" / "train" / f"{video}.h5"), "tracks")
        sample, uniq = object_samples(tr["frame"], tr["track_id"], train.clip_length)
        mask = np.zeros(len(uniq), bool)
        mask[here - offsets[v]] = True
        at = np.searchsorted(chosen, here)
        for kind in feats:
            alter = None if kind == "orig" else (lambda img, box, k=kind: alter_box(k, img, box))
            f, n = sample_features(ds.source("train", video).frames, tr["frame"], sample, tr["box"], len(uniq),
                                   int(ta["n_frames"]), model, crops_per_sample=int(acfg["crops_per_sample"]),
                                   context=float(acfg["context"]), batch_size=int(acfg["batch_size"]),
                                   embed=mask, alter=alter)
            feats[kind][at] = f[mask]
            n_crops += int(n[mask].sum())
    embed_s = time.perf_counter() - t0
    scale = float(np.abs(train.feat[chosen]).max())
    diff = float(np.abs(feats["orig"] - train.feat[chosen]).max())
    if diff > 1e-4 * scale:
        raise SystemExit(f"{results}: appearance features rebuilt without alteration differ from the stored ones "
                         f"by {diff:.3g} (scale {scale:.3g}): the run's backend or settings are not this "
                         "checkout's configuration's")

    models, meta = load_checkpoint(str(results / "hsc" / "model.pt"))
    hsc, bank = models["appearance"]
    groups, holdout = holdout_groups(train.video)
    bank_groups = np.concatenate([groups, np.full(len(bank) - len(groups), -1, np.int64)])
    z = encode(hsc, model_input(train.feat, meta, "appearance"), train.scene_feat, "cpu")
    banks = {"memory": bank, "encoded": torch.cat([z, bank[len(z):]])}
    readout = stream_readout(cfg["hsc"]["readout"], "appearance")
    out = {"dataset": name, "n_train_samples": int(len(train.feat)), "n_altered": int(len(chosen)),
           "crops_embedded": n_crops, "embed_seconds": round(embed_s, 1), "run_bank": run_bank,
           "rebuilt_max_diff": diff, "kinds": {k: {} for k in APPEARANCE_KINDS}}
    for which, b in banks.items():
        tau, _ = choose_tau(z, b, groups, bank_groups, readout, float(cfg["hsc"]["tau"]), int(cfg["seed"]), holdout)

        def score(feat, idx, b=b, tau=tau):
            return score_samples(hsc, b, model_input(feat, meta, "appearance"), train.scene_feat[idx], tau,
                                 query_group=groups[idx], bank_group=bank_groups)

        normal = score(train.feat, np.arange(len(train.feat)))
        if which == run_bank and not np.allclose(normal, train_score, rtol=1e-4, atol=1e-6):
            raise SystemExit(f"{results}: rescoring the training samples does not reproduce train_score "
                             f"(max diff {np.abs(normal - train_score).max():.3g})")
        if not np.allclose(score(feats["orig"], chosen), normal[chosen], rtol=1e-4, atol=1e-6):
            raise SystemExit(f"{results}: the rebuilt unaltered subset does not score as its stored samples")
        out[f"tau_{which}"] = tau
        for kind in APPEARANCE_KINDS:
            out["kinds"][kind][f"hsc_{which}"] = roc_auc(score(feats[kind], chosen), normal)
    ref = model_input(train.feat, meta, "appearance")  # the model's inputs, as the score stage's 1-NN
    nn_normal = nn_distance(ref, ref, groups, groups)
    for kind in APPEARANCE_KINDS:
        q = model_input(feats[kind], meta, "appearance")
        out["kinds"][kind]["knn_1"] = roc_auc(nn_distance(q, ref, groups[chosen], groups), nn_normal)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a finished run's results/<dataset> folder")
    ap.add_argument("--samples", type=int, default=300, help="training samples altered (a seeded subset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configfile", type=Path, nargs="*", default=[],
                    help="the run's extra config files (as given to snakemake), after config.yaml")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    r = validate(args.results, args.samples, args.seed, args.threads, args.configfile)
    print(f"dataset {r['dataset']}: {r['n_altered']} of {r['n_train_samples']} training samples altered, "
          f"{r['crops_embedded']} crops embedded in {r['embed_seconds']} s; the run reads the {r['run_bank']} bank")
    print(f"read-out tau: memory {r['tau_memory']:.4g}, encoded {r['tau_encoded']:.4g}")
    print("| kind | HSC, bank memory | HSC, bank encoded | 1-NN |")
    print("|---|---|---|---|")
    for kind, k in r["kinds"].items():
        print(f"| {kind} | {k['hsc_memory']:.3f} | {k['hsc_encoded']:.3f} | {k['knn_1']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
