# Velocity stream: dense optical flow summarised per tracked box, then one velocity descriptor per
# object sample (one job per video each).


rule flow:
    input:
        video=video_input,
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
    output:
        "results/{dataset}/flow/{split}/{video}.h5",
    params:
        p=P("flow"),
        code=CODE("flow"),
        device=DEVICE,
    log:
        stage_log("flow", per_video=True),
    benchmark:
        stage_benchmark("flow", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("flow"),
    conda:
        "../envs/features.yaml"
    script:
        "../scripts/run_stage.py"


rule velocity:
    input:
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        flow="results/{dataset}/flow/{split}/{video}.h5",
    output:
        "results/{dataset}/velocity/{split}/{video}.h5",
    params:
        p=P("velocity"),
        code=CODE("velocity"),
    log:
        stage_log("velocity", per_video=True),
    benchmark:
        stage_benchmark("velocity", per_video=True)
    threads: 1
    conda:
        "../envs/features.yaml"
    script:
        "../scripts/run_stage.py"
