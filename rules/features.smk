# Object appearance features (per object sample) and scene features (per clip), one job per video.


rule appearance:
    input:
        video=video_input,
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        weights=lambda w: weights("appearance", w.dataset),
    output:
        "results/{dataset}/objects/{split}/{video}.h5",
    params:
        p=P("appearance"),
        code=CODE("appearance"),
        weights_sha256=WEIGHTS("appearance"),
        device=DEVICE,
    log:
        stage_log("appearance", per_video=True),
    benchmark:
        stage_benchmark("appearance", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("appearance"),
    conda:
        model_env("features", "appearance")
    script:
        "../scripts/run_stage.py"


rule scene:
    input:
        video=video_input,
        weights=lambda w: weights("scene", w.dataset),
    output:
        "results/{dataset}/scene/{split}/{video}.h5",
    params:
        p=P("scene"),
        code=CODE("scene"),
        weights_sha256=WEIGHTS("scene"),
        device=DEVICE,
    log:
        stage_log("scene", per_video=True),
    benchmark:
        stage_benchmark("scene", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("scene"),
    conda:
        model_env("features", "scene")
    script:
        "../scripts/run_stage.py"
