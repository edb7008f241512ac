# Downloads for users with a network: published weights and the Ped2 and Avenue archives, checksums verified.
# These rules use `run:`, not `script:` like the others: Snakemake 9 reruns a `script:` rule whose
# outputs are older than its script, and a rerun first deletes the outputs. A fresh clone's
# scripts/run_stage.py is newer than weights or a dataset placed by hand (or linked from a shared
# folder), which would then be deleted and downloaded again, or lost without a network. A `run:`
# rule reruns only when its output is missing or its params change (the URL or checksum). For the
# same reason they have no `benchmark:`: a benchmark file counts as an output, so weights or a dataset
# placed by hand, without one, would be deleted and fetched again when the rule is named as a target.
# And only what is missing is a download's output: a file or folder in place is a source that no rule
# makes, so that no run deletes it to make it again, not even `--forceall` or `--forcerun fetch_model`
# (which would otherwise delete weights linked from a shared folder, and without a network lose them).

import json as _json
import re as _re


rule fetch_model:
    output:
        "resources/models/{model_file}",
    params:
        p=lambda w: _json.dumps({"item": config["fetch"]["models"][w.model_file]}),
    log:
        "resources/logs/fetch_model/{model_file}.log",
    wildcard_constraints:
        model_file="|".join(
            _re.escape(m) for m in config["fetch"].get("models", {}) if not os.path.lexists(f"resources/models/{m}")
        )
        or "NONE",
    run:
        run_job(rule, input, output, params, wildcards, threads, log)


rule fetch_models:
    input:
        expand("resources/models/{model_file}", model_file=list(config["fetch"].get("models", {}))),


# The datasets with a published direct download, into their configured root. Checkpoints: a run
# whose dataset folder is missing (`snakemake results/ped2/auc.json` on a fresh clone) fetches it
# first and then plans the pipeline on the videos it finds (common.smk, dataset()); a folder in place
# is never fetched again.
for _name in FETCHABLE_DATASETS:
    _root = config["datasets"].get(_name, {}).get("root", f"resources/datasets/{_name}")
    if os.path.lexists(_root):

        rule:
            name:
                f"fetch_{_name}"
            params:
                note=f"{_root} is in place, so nothing is downloaded (move it away to download {_name} there again)",
            log:
                f"resources/logs/fetch_{_name}.log",
            run:
                print(params.note)
                Path(log[0]).write_text(f"{params.note}\n")

        continue

    checkpoint:
        name:
            f"fetch_{_name}"
        output:
            directory(_root),
        params:
            p=_json.dumps({"item": config["fetch"].get(_name, {})}),
        log:
            f"resources/logs/fetch_{_name}.log",
        run:
            run_job(rule, input, output, params, wildcards, threads, log)
