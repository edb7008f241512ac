# Motion stream: skeletons of tracked persons and their motion features, one job per video.


rule pose:
    input:
        video=video_input,
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        weights=lambda w: weights("pose", w.dataset),
    output:
        "results/{dataset}/pose/{split}/{video}.h5",
    params:
        p=P("pose"),
        code=CODE("pose"),
        weights_sha256=WEIGHTS("pose"),
        device=DEVICE,
    log:
        stage_log("pose", per_video=True),
    benchmark:
        stage_benchmark("pose", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("pose"),
    conda:
        model_env("motion", "pose")
    script:
        "../scripts/run_stage.py"


rule motion:
    input:
        tracks="results/{dataset}/tracks/{split}/{video}.h5",
        pose="results/{dataset}/pose/{split}/{video}.h5",
        weights=lambda w: weights("motion", w.dataset),
    output:
        "results/{dataset}/motion/{split}/{video}.h5",
    params:
        p=P("motion"),
        code=CODE("motion"),
        weights_sha256=WEIGHTS("motion"),
        device=DEVICE,
    log:
        stage_log("motion", per_video=True),
    benchmark:
        stage_benchmark("motion", per_video=True)
    threads: 1
    resources:
        gpu=backend_gpu("motion"),
    conda:
        model_env("motion", "motion")
    script:
        "../scripts/run_stage.py"


rule augment_motion:
    input:
        model="results/{dataset}/hsc/model.pt",
        motion=per_video("results/{dataset}/motion/{split}/{video}.h5", "train"),
        weights=lambda w: weights("motion", w.dataset),
        scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
    output:
        "results/{dataset}/motion_augmentation/augmented.h5",
    params:
        p=P("augment_motion"),
        code=CODE("augment_motion"),
        weights_sha256=WEIGHTS("motion"),
        device=DEVICE,
    log:
        stage_log("augment_motion"),
    benchmark:
        stage_benchmark("augment_motion")
    threads: 2
    resources:
        gpu=TORCH_GPU,
    conda:
        model_env("hsc", "motion")
    script:
        "../scripts/run_stage.py"


rule train_motion_classifier:
    input:
        augmented="results/{dataset}/motion_augmentation/augmented.h5",
        motion=per_video("results/{dataset}/motion/{split}/{video}.h5", "train"),
        scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
    output:
        model="results/{dataset}/motion_augmentation/classifier.pt",
        history="results/{dataset}/motion_augmentation/classifier_history.csv",
    params:
        p=P("train_motion_classifier"),
        code=CODE("train_motion_classifier"),
        device=DEVICE,
    log:
        stage_log("train_motion_classifier"),
    benchmark:
        stage_benchmark("train_motion_classifier")
    threads: 2
    resources:
        gpu=TORCH_GPU,
    conda:
        "../envs/hsc.yaml"
    script:
        "../scripts/run_stage.py"


rule retrain_motion:
    input:
        augmented="results/{dataset}/motion_augmentation/augmented.h5",
        motion=per_video("results/{dataset}/motion/{split}/{video}.h5", "train"),
        scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
        labels="results/{dataset}/scenes.h5",
    output:
        model="results/{dataset}/motion_augmentation/model_ma.pt",
        history="results/{dataset}/motion_augmentation/history_ma.csv",
    params:
        p=P("retrain_motion"),
        code=CODE("retrain_motion"),
        device=DEVICE,
    log:
        stage_log("retrain_motion"),
    benchmark:
        stage_benchmark("retrain_motion")
    threads: 2
    resources:
        gpu=TORCH_GPU,
    conda:
        "../envs/hsc.yaml"
    script:
        "../scripts/run_stage.py"
