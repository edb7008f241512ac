# Frame-level AUCs under the reference and strict protocols, per-frame scores and plots.


rule evaluate:
    input:
        scores="results/{dataset}/scores.h5",
    output:
        auc="results/{dataset}/auc.json",
        csv="results/{dataset}/frame_scores.csv",
        curves=report("results/{dataset}/plots/score_curves.png", category="Scores"),
        curves_pdf="results/{dataset}/plots/score_curves.pdf",
        histogram=report("results/{dataset}/plots/histogram.png", category="Scores"),
    params:
        p=P("evaluate"),
    log:
        stage_log("evaluate"),
    benchmark:
        stage_benchmark("evaluate")
    threads: 1
    conda:
        "../envs/evaluate.yaml"
    shell:
        "python -m hscvad.cli evaluate --dataset {wildcards.dataset} --params {params.p:q} --input {input.scores}"
        " --output {output.auc} --csv {output.csv} --plots results/{wildcards.dataset}/plots 2> {log}"
