# Frame-level AUCs under the reference and strict protocols, per-frame scores and plots, and the
# run summary. Outputs marked report() make up `snakemake --report` (docs/outputs.md, "Run report").


rule evaluate:
    input:
        scores="results/{dataset}/scores.h5",
        tracks=per_video("results/{dataset}/tracks/{split}/{video}.h5", "test"),
        explanations="results/{dataset}/explain/top_objects.csv",
        check="results/{dataset}/dataset_check.json",
        labels=label_inputs,
    output:
        auc="results/{dataset}/auc.json",
        table=report(
            "results/{dataset}/auc_table.csv",
            caption="../report/auc_table.rst",
            category="AUC",
            labels={"dataset": "{dataset}", "table": "frame-level AUC"},
        ),
        csv="results/{dataset}/frame_scores.csv",
        curves=report(
            "results/{dataset}/plots/score_curves.png",
            caption="../report/score_curves.rst",
            category="Scores",
            labels={"dataset": "{dataset}", "figure": "all test videos"},
        ),
        curves_pdf="results/{dataset}/plots/score_curves.pdf",
        videos=report(
            directory("results/{dataset}/plots/videos"),
            patterns=["{video}.png"],
            caption="../report/video_scores.rst",
            category="Per-video scores",
            labels={"dataset": "{dataset}", "video": "{video}"},
        ),
        histogram=report(
            "results/{dataset}/plots/histogram.png",
            caption="../report/histogram.rst",
            category="Scores",
            labels={"dataset": "{dataset}", "figure": "score histograms"},
        ),
    params:
        p=P("evaluate"),
        code=CODE("evaluate"),
    log:
        stage_log("evaluate"),
    benchmark:
        stage_benchmark("evaluate")
    threads: 2
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/run_stage.py"


# Reads every job's benchmark TSV of the dataset; it runs after evaluate (its input), when every
# other stage of the run has written its benchmark.
rule summarise_run:
    input:
        auc="results/{dataset}/auc.json",
    output:
        table=report(
            "results/{dataset}/run_summary.csv",
            caption="../report/run_summary.rst",
            category="Run",
            labels={"dataset": "{dataset}", "table": "time per stage"},
        ),
        plot=report(
            "results/{dataset}/plots/stage_times.png",
            caption="../report/run_summary.rst",
            category="Run",
            labels={"dataset": "{dataset}", "figure": "time per stage"},
        ),
    params:
        benchmarks=lambda w: f"results/{w.dataset}/benchmarks",
        shards=lambda w: shard_benchmarks(w.dataset),
        code=CODE("summarise_run"),
    log:
        stage_log("summarise_run"),
    benchmark:
        stage_benchmark("summarise_run")
    threads: 1
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/run_stage.py"


rule explain:
    input:
        scores="results/{dataset}/scores.h5",
        tracks=per_video("results/{dataset}/tracks/{split}/{video}.h5", "test"),
    output:
        images=report(
            directory("results/{dataset}/plots/explain"),
            patterns=["{video}.png"],
            caption="../report/explain.rst",
            category="Explanations",
            labels={"dataset": "{dataset}", "video": "{video}"},
        ),
        csv="results/{dataset}/explain/top_objects.csv",
    params:
        p=P("explain"),
        code=CODE("explain"),
    log:
        stage_log("explain"),
    benchmark:
        stage_benchmark("explain")
    threads: 2
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/run_stage.py"
