# Motion stream: skeletons of tracked persons and their motion features, one job per video.


rule pose:
    input:
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        weights=lambda w: weights("pose"),
    output:
        "results/{dataset}/pose/{split}/{video}.h5",
    params:
        p=P("pose"),
        device=DEVICE,
    log:
        stage_log("pose", per_video=True),
    benchmark:
        stage_benchmark("pose", per_video=True)
    threads: 2
    resources:
        gpu=1,
    conda:
        "../envs/motion.yaml"
    shell:
        "python -m hscvad.cli pose --dataset {wildcards.dataset} --split {wildcards.split} --video {wildcards.video}"
        " --params {params.p:q} --threads {threads} --device {params.device} --input {input.tracks}"
        " --output {output} 2> {log}"


rule motion:
    input:
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        pose="results/{dataset}/pose/{split}/{video}.h5",
    output:
        "results/{dataset}/motion/{split}/{video}.h5",
    params:
        p=P("motion"),
    log:
        stage_log("motion", per_video=True),
    benchmark:
        stage_benchmark("motion", per_video=True)
    threads: 1
    conda:
        "../envs/motion.yaml"
    shell:
        "python -m hscvad.cli motion --params {params.p:q} --tracks {input.tracks} --pose {input.pose}"
        " --output {output} 2> {log}"
