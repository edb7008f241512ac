# Video parsing: objects detected and tracked in every frame, one job per video.


rule detect_track:
    input:
        video=video_input,
        weights=lambda w: weights("detection", w.dataset),
    output:
        "results/{dataset}/tracks/{split}/{video}.h5",
    params:
        p=P("detect_track"),
        code=CODE("detect_track"),
        weights_sha256=WEIGHTS("detection"),
        device=DEVICE,
    log:
        stage_log("detect_track", per_video=True),
    benchmark:
        stage_benchmark("detect_track", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("detection", "tracking"),
    conda:
        model_env("parse", "detection", "tracking")
    script:
        "../scripts/run_stage.py"
