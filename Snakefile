# Scene-aware video anomaly detection (HSC, Sun & Gong, CVPR 2023) as a Snakemake workflow.
# Table of contents: configuration and helpers, then one rule file per stage family.
#   snakemake results/ped2/auc.json --cores 2

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/fetch.smk"
include: "rules/dataset.smk"
include: "rules/parse.smk"
include: "rules/features.smk"
include: "rules/motion.smk"
include: "rules/velocity.smk"
include: "rules/hsc.smk"
include: "rules/evaluate.smk"
include: "rules/shards.smk"


# Downloads need a network, which cluster compute nodes often lack: they run where Snakemake runs.
localrules:
    fetch_model,
    fetch_models,
    fetch_ped2,
    fetch_avenue,


rule all:
    input:
        "results/ped2/auc.json",
        "results/ped2/run_summary.csv",
    default_target: True
