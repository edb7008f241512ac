# Does the dataset copy hold the benchmark it is configured as (datasets.<name>.benchmark)? Runs first
# (priority) and gates evaluate: a copy with missing videos or other frame counts stops the run with
# the list, unless datasets.<name>.allow_partial is set (then auc.json records partial_dataset).


rule check_dataset:
    input:
        videos=all_video_inputs,
        labels=label_inputs,
    output:
        "results/{dataset}/dataset_check.json",
    params:
        p=P("check_dataset"),
        code=CODE("check_dataset"),
        # the listing: adding or removing a video reruns the check
        videos=lambda w: " ".join(videos(w.dataset, "train") + ["|"] + videos(w.dataset, "test")),
    log:
        stage_log("check_dataset"),
    benchmark:
        stage_benchmark("check_dataset")
    priority: 100
    threads: 1
    conda:
        "../envs/parse.yaml"
    script:
        "../scripts/run_stage.py"
