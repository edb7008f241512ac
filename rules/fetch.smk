# Downloads for users with a network: published weights and the UCSD archive, checksums verified.

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
    shell:
        "python -m hscvad.cli fetch --params {params.p:q} --output {output} 2> {log}"


rule fetch_models:
    input:
        expand("resources/models/{model_file}", model_file=list(config["fetch"].get("models", {}))),


rule fetch_ped2:
    output:
        directory("resources/datasets/ped2"),
    params:
        p=_json.dumps({"item": config["fetch"].get("ped2", {})}),
    log:
        "resources/logs/fetch_ped2.log",
    benchmark:
        "resources/benchmarks/fetch_ped2.tsv"
    conda:
        "../envs/fetch.yaml"
    shell:
        "python -m hscvad.cli fetch --params {params.p:q} --output {output} 2> {log}"
