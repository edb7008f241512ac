# Scene pseudo-labels, HSC training and scoring: one job per dataset.


rule scene_labels:
    input:
        scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
    output:
        labels="results/{dataset}/scenes.h5",
        plot="results/{dataset}/plots/scene_embedding.png",
    params:
        p=P("scene_labels"),
        code=CODE("scene_labels"),
    log:
        stage_log("scene_labels"),
    benchmark:
        stage_benchmark("scene_labels")
    threads: 1
    conda:
        "../envs/hsc.yaml"
    script:
        "../scripts/run_stage.py"


rule train_hsc:
    input:
        objects=stream_inputs("train", "appearance"),
        motion=stream_inputs("train", "motion"),
        velocity=stream_inputs("train", "velocity"),
        scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
        labels="results/{dataset}/scenes.h5",
    output:
        model="results/{dataset}/hsc/model.pt",
        history="results/{dataset}/hsc/history.csv",
    params:
        p=P("train_hsc"),
        code=CODE("train_hsc"),
        device=DEVICE,
    log:
        stage_log("train_hsc"),
    benchmark:
        stage_benchmark("train_hsc")
    threads: 2
    resources:
        gpu=TORCH_GPU,
    conda:
        "../envs/hsc.yaml"
    script:
        "../scripts/run_stage.py"


rule score:
    input:
        model="results/{dataset}/hsc/model.pt",
        train_objects=stream_inputs("train", "appearance"),
        train_motion=stream_inputs("train", "motion"),
        train_velocity=stream_inputs("train", "velocity"),
        train_scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
        test_objects=stream_inputs("test", "appearance"),
        test_motion=stream_inputs("test", "motion"),
        test_velocity=stream_inputs("test", "velocity"),
        test_scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "test"),
        labels="results/{dataset}/scenes.h5",
        classifier=lambda w: (["results/{dataset}/motion_augmentation/classifier.pt"]
                              if motion_augmentation_mode(config, w.dataset) == "MA-,+" else []),
        motion_model=lambda w: (["results/{dataset}/motion_augmentation/model_ma.pt"]
                                if motion_augmentation_mode(config, w.dataset) == "MA-" else []),
    output:
        scores="results/{dataset}/scores.h5",
        embedding=report("results/{dataset}/plots/object_embedding.png", category="Features"),
    params:
        p=P("score"),
        code=CODE("score"),
        device=DEVICE,
    log:
        stage_log("score"),
    benchmark:
        stage_benchmark("score")
    threads: 2
    resources:
        gpu=TORCH_GPU,
    conda:
        "../envs/hsc.yaml"
    script:
        "../scripts/run_stage.py"
