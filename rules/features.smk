# Object appearance features (per object sample) and scene features (per clip), one job per video.


rule appearance:
    input:
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        weights=lambda w: weights("appearance"),
    output:
        "results/{dataset}/objects/{split}/{video}.h5",
    params:
        p=P("appearance"),
    log:
        stage_log("appearance", per_video=True),
    benchmark:
        stage_benchmark("appearance", per_video=True)
    threads: 2
    resources:
        gpu=1,
    shell:
        "{CMD} appearance --dataset {wildcards.dataset} --split {wildcards.split} --video {wildcards.video}"
        " --params {params.p:q} --threads {threads} --device {DEVICE} --input {input.tracks}"
        " --output {output} 2> {log}"


rule scene:
    input:
        weights=lambda w: weights("scene"),
    output:
        "results/{dataset}/scene/{split}/{video}.h5",
    params:
        p=P("scene"),
    log:
        stage_log("scene", per_video=True),
    benchmark:
        stage_benchmark("scene", per_video=True)
    threads: 2
    resources:
        gpu=1,
    shell:
        "{CMD} scene --dataset {wildcards.dataset} --split {wildcards.split} --video {wildcards.video}"
        " --params {params.p:q} --threads {threads} --device {DEVICE} --output {output} 2> {log}"
