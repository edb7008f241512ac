"""The yardstick's figures of finished runs, as tables: what each stream ships and why.

    python bench/yardstick.py results/ped2 [results/<dataset> ...] [--json out.json]

Reads each run's ``validation/validation.json`` (rule ``validate``: synthetic anomalies made from the
run's own training objects, scored leave-one-video-out; no test video or label is read) and prints
per stream the object-level AUC of every candidate score on each synthetic kind (HSC's read-out with
the bank as trained or re-encoded, at read-out temperature auto or paper; the 1-NN on the same
inputs), the score the stream ships and its weight in the fusion; then per kind the fused score's
AUC under both fusion rules beside the best single stream's, and the rule the run uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def tables(run: Path) -> tuple[str, dict]:
    path = run / "validation" / "validation.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (run the workflow to {run}/auc.json with validation.choose: true, "
                         f"or the target {path})")
    v = json.loads(path.read_text())
    lines = [f"## {run.name}: {v['n_normal']} held-out normal objects (leave-one-{v['holdout']}-out)", ""]
    for s, r in v["streams"].items():
        if not r["kinds"]:
            lines += [f"{s}: {r['reason']} ({r['shipped']}), weight {r['weight']:g}", ""]
            continue
        kinds = r["kinds"]
        altered = ", ".join(f"{k} {n}" for k, n in r["n_altered"].items())
        lines += [f"{s} (altered objects: {altered})", "",
                  "| candidate | tau | " + " | ".join(kinds) + " | mean |", "|---" * (len(kinds) + 3) + "|"]
        for c, d in r["candidates"].items():
            mark = " **shipped**" if c == r["shipped"] else ""
            tau = f"{d['tau']:.3g}" if d["tau"] is not None else "-"
            bad = f" (degenerate: {d['degenerate']})" if d["degenerate"] else ""
            lines.append(f"| {c}{mark}{bad} | {tau} | " + " | ".join(f"{d['aucs'][k]:.3f}" for k in kinds)
                         + f" | {d['mean_auc']:.3f} |")
        lines += ["", f"ships {r['shipped']}: {r['reason']}; weight {r['weight']:g}", ""]
    if v["fused"]:
        lines += ["| kind | fused, mean | fused, max | best stream |", "|---|---|---|---|"]
        for k, d in v["fused"].items():
            lines.append(f"| {k} | {d['mean']:.3f} | {d['max']:.3f} | {d['best_stream_auc']:.3f} |")
        lines += ["", f"fusion: {v['fusion']['rule']} ({v['fusion']['reason']}); weights {v['weights']} "
                      f"({v['weights_reason']})", ""]
    return "\n".join(lines), v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="finished runs' results/<dataset> folders")
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args()
    out = {}
    for run in args.runs:
        text, out[run.name] = tables(run)
        print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
