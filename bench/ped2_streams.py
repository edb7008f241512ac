"""Per-stream accuracy of a finished run (the paper's Table 2 style), and the read-out study.

    python bench/ped2_streams.py table   [--results results/ped2]
    python bench/ped2_streams.py readout [--results results/ped2] [--config config.yaml] [--taus 0.5 0.1 0.03 0.01 auto]
    python bench/ped2_streams.py run     [--cores 2]      # the README's main command, then `table`

``table`` prints, from ``auc.json``: every stream alone and fused under the reference and the
strict protocol (micro / macro, and strict without smoothing), each stream's object-level AUC
beside a plain 1-nearest-neighbour over the same autoencoder inputs, the read-out temperature each
stream used, RBDC / TBDC and the parse coverage.

``readout`` rescores the run's trained model with other Eq. 10 temperatures (the trained model and
features are read from the run; nothing is retrained) and prints, per temperature and stream, the
median effective number of memory entries a test query reads, the object-level AUC and the frame
micro AUC (strict protocol without smoothing). It reads test labels: it reports, it selects
nothing (the pipeline's ``hsc.readout.tau: auto`` uses no label).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def table(results: Path) -> None:
    auc = json.loads((results / "auc.json").read_text())
    print(f"dataset {auc['dataset']}: {auc['n_test_videos']} test videos, {auc['n_test_frames']} frames, "
          f"{auc['n_abnormal_frames']} abnormal")
    loc = auc.get("localisation") or {}
    obj = loc.get("object_auc", {})
    ro = auc.get("readout") or {}
    print("| stream | reference micro / macro | strict micro / macro | strict unsmoothed micro | "
          "object AUC: HSC / 1-NN | read-out tau (median entries read) |")
    print("|---|---|---|---|---|---|")
    for s, r in auc["streams"].items():
        p = r["protocols"]
        o = obj.get(s, {})
        tau = ro.get(s, {})
        t = (f"{tau['tau']:.4g} ({_f(tau.get('test_median_effective_entries'), 1)})" if tau else "-")
        print(f"| {s} | {_f(p['reference']['micro_auc'])} / {_f(p['reference']['macro_auc'])} | "
              f"{_f(p['strict']['micro_auc'])} / {_f(p['strict']['macro_auc'])} | "
              f"{_f(p['strict_unsmoothed']['micro_auc'])} | {_f(o.get('hsc'))} / {_f(o.get('knn_1'))} | {t} |")
    fused = auc["protocols"]
    print(f"calibration: {fused['strict'].get('calibration', 'none (code before calibration)')}")
    for k, r in fused.items():
        if "_calibration_" in k:
            print(f"  fused, {k.replace('_calibration_', ' protocol, calibration ')}: "
                  f"micro {_f(r['micro_auc'])} / macro {_f(r['macro_auc'])}")
    print(f"averaging along tracks: {fused['strict'].get('track_averaging', 'none (code before it)')}")
    for k, r in fused.items():
        if "_track_window_" in k:
            print(f"  fused, {k.replace('_track_window_', ' protocol, track_window ')}: "
                  f"micro {_f(r['micro_auc'])} / macro {_f(r['macro_auc'])}")
    print(f"reference fusion: {fused['reference'].get('fusion')}")
    for k, r in fused.items():
        if k.startswith("reference_fusion_"):
            print(f"  the other reference fusion ({r['fusion']}): "
                  f"micro {_f(r['micro_auc'])} / macro {_f(r['macro_auc'])}")
    if loc.get("available"):
        print(f"RBDC {_f(loc['rbdc'])}, TBDC {_f(loc['tbdc'])} ({loc['n_regions']} regions, {loc['n_tracks']} tracks); "
              f"parse coverage {_f(loc['parse_coverage'])} ({loc['n_abnormal_clips_covered']} of "
              f"{loc['n_abnormal_clips']} abnormal clips)")
        ranks = loc.get("object_rank_per_video") or {}
        if ranks:
            print("per test video, its abnormal objects above the median object no anomaly mask touches / the median "
                  "abnormal object's percentile among those: " + ", ".join(
                      f"{v} {100 * r['above_median_normal']:.0f} % / {100 * r['median_abnormal_percentile']:.0f}"
                      for v, r in ranks.items()))
            if all("n_own_box" in r for r in ranks.values()):
                print("per test video, of those the annotated regions' own boxes (not a bystander a mask grazes) above "
                      "the same median: " + ", ".join(
                          f"{v} {100 * r['own_box_above_median_normal']:.0f} % of {r['n_own_box']}"
                          if r["n_own_box"] else f"{v} none" for v, r in ranks.items()))
        own = loc.get("regions_with_own_box_per_video") or {}
        if own:
            print(f"annotated regions with a box of their own: {_f(loc['regions_with_own_box'])}; per test video: "
                  + ", ".join(f"{v} {100 * x:.0f} %" for v, x in own.items()))
    else:
        print(f"localisation: {loc.get('reason')}")


def _inputs(results: Path, streams: list[str]):
    layout = {"appearance": "objects", "motion": "motion", "velocity": "velocity"}

    def files(folder, split):
        return sorted(str(p) for p in (results / folder / split).glob("*.h5"))

    return {s: {"train": (files(layout[s], "train"), files("scene", "train")),
                "test": (files(layout[s], "test"), files("scene", "test"))} for s in streams}


def readout(results: Path, config: Path, taus: list[str]) -> None:
    import yaml

    from hscvad.config import stage_params, validate
    from hscvad.models.registry import Runtime
    from hscvad.stages import evaluate, score

    cfg = yaml.safe_load(config.read_text())
    validate(cfg)
    ds = results.name
    base = stage_params(cfg, ds, "score")
    ev = stage_params(cfg, ds, "evaluate")
    streams = base["streams"]
    tracks = sorted(str(p) for p in (results / "tracks" / "test").glob("*.h5"))
    from hscvad.data import build_dataset

    dataset = build_dataset(ds, ev["dataset"])
    print("| read-out tau | stream | tau used | median entries read (test) | object AUC HSC | object AUC 1-NN | "
          "frame micro AUC (strict, unsmoothed) | fused micro AUC (strict, unsmoothed) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for t in taus:
            params = copy.deepcopy(base)
            params["readout"]["tau"] = t if t in ("auto", "paper") else float(t)
            # every stream reads at this temperature (each keeps its own bank setting)
            params["readout"]["streams"] = {s: {k: v for k, v in o.items() if k != "tau"}
                                            for s, o in (params["readout"].get("streams") or {}).items()}
            out = Path(tmp) / f"scores_{t}.h5"
            t0 = time.time()
            score.run(str(results / "hsc" / "model.pt"), _inputs(results, streams), str(results / "scenes.h5"),
                      str(out), params, Runtime.resolve("auto", 2))
            labels = [dataset.frame_labels(v, n) for v, n in zip(*_videos(out))]
            loc = evaluate.localisation(dataset, str(out), tracks, labels, ev)
            res = evaluate.run(ds, ev["dataset"], str(out), str(Path(tmp) / "auc.json"), str(Path(tmp) / "f.csv"),
                               str(Path(tmp) / "plots"), ev)
            ro = json.loads(_attr(out, "readout"))
            for s in streams:
                o = loc["object_auc"][s]
                print(f"| {t} | {s} | {ro[s]['tau']:.4g} | {ro[s]['test_median_effective_entries']:.1f} | "
                      f"{_f(o['hsc'])} | {_f(o['knn_1'])} | "
                      f"{_f(res['streams'][s]['protocols']['strict_unsmoothed']['micro_auc'])} | "
                      f"{_f(res['streams']['fused']['protocols']['strict_unsmoothed']['micro_auc'])} |")
            print(f"  ({t}: scored in {time.time() - t0:.1f} s)", file=sys.stderr)


def _videos(scores):
    import h5py

    with h5py.File(scores) as f:
        return [v.decode() for v in f["videos"][()]], [int(n) for n in f["n_frames"][()]]


def _attr(path, name):
    import h5py

    with h5py.File(path) as f:
        return f.attrs[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["table", "readout", "run"])
    ap.add_argument("--results", type=Path, default=REPO / "results" / "ped2")
    ap.add_argument("--config", type=Path, default=REPO / "config.yaml")
    ap.add_argument("--taus", nargs="+", default=["paper", "0.1", "0.03", "0.01", "auto"])
    ap.add_argument("--cores", type=int, default=2)
    a = ap.parse_args()
    if a.what == "run":
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "snakemake", "results/ped2/auc.json", "--cores", str(a.cores)],
                       cwd=REPO, check=True)
        print(f"wall time of the run: {time.time() - t0:.0f} s")
        table(REPO / "results" / "ped2")
    elif a.what == "table":
        table(a.results)
    else:
        readout(a.results, a.config, a.taus)


if __name__ == "__main__":
    main()
