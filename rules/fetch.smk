# Downloads for users with a network: published weights and the Ped2 and Avenue archives, checksums verified.

import json as _json
import re as _re


rule fetch_model:
    output:
        "resources/models/{model_file}",
    params:
        p=lambda w: _json.dumps({"item": config["fetch"]["models"][w.model_file]}),
    log:
        "resources/logs/fetch_model/{model_file}.log",
    benchmark:
        "resources/benchmarks/fetch_model/{model_file}.tsv"
    wildcard_constraints:
        model_file="|".join(_re.escape(m) for m in config["fetch"].get("models", {})) or "NONE",
    conda:
        "../envs/fetch.yaml"
    script:
        "../scripts/run_stage.py"


rule fetch_models:
    input:
        expand("resources/models/{model_file}", model_file=list(config["fetch"].get("models", {}))),


# The datasets with a published direct download, into their configured root.
for _name in ("ped2", "avenue"):

    rule:
        name:
            f"fetch_{_name}"
        output:
            directory(config["datasets"].get(_name, {}).get("root", f"resources/datasets/{_name}")),
        params:
            p=_json.dumps({"item": config["fetch"].get(_name, {})}),
        log:
            f"resources/logs/fetch_{_name}.log",
        benchmark:
            f"resources/benchmarks/fetch_{_name}.tsv"
        conda:
            "../envs/fetch.yaml"
        script:
            "../scripts/run_stage.py"
