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


# The yardstick: synthetic anomalies of the training objects choose each stream's score and weight
# (hscvad.evaluation.yardstick). synthetic_objects does not depend on the trained model: a change of
# the hsc settings reruns validate (seconds), not the embedding of the altered crops.
rule synthetic_objects:
    input:
        objects=per_video("results/{dataset}/objects/{split}/{video}.h5", "train"),
        tracks=per_video("results/{dataset}/tracks/{split}/{video}.h5", "train"),
        videos=lambda w: [video_file(w.dataset, "train", v) for v in videos(w.dataset, "train")],
        weights=lambda w: weights("appearance", w.dataset),
    output:
        "results/{dataset}/validation/objects.h5",
    params:
        p=P("synthetic_objects"),
        code=CODE("synthetic_objects"),
        weights_sha256=WEIGHTS("appearance"),
        device=DEVICE,
    log:
        stage_log("synthetic_objects"),
    benchmark:
        stage_benchmark("synthetic_objects")
    threads: 2
    resources:
        gpu=backend_gpu("appearance"),
    conda:
        model_env("features", "appearance")
    script:
        "../scripts/run_stage.py"


rule validate:
    input:
        model="results/{dataset}/hsc/model.pt",
        train_objects=stream_inputs("train", "appearance"),
        train_motion=stream_inputs("train", "motion"),
        train_velocity=stream_inputs("train", "velocity"),
        train_scenes=per_video("results/{dataset}/scene/{split}/{video}.h5", "train"),
        synthetic_objects=uses("appearance", "results/{dataset}/validation/objects.h5"),
        train_tracks=uses("velocity", per_video("results/{dataset}/tracks/{split}/{video}.h5", "train")),
        train_flow=uses("velocity", per_video("results/{dataset}/flow/{split}/{video}.h5", "train")),
    output:
        "results/{dataset}/validation/validation.json",
    params:
        p=P("validate"),
        code=CODE("validate"),
        device=DEVICE,
    log:
        stage_log("validate"),
    benchmark:
        stage_benchmark("validate")
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
        validation=lambda w: (["results/{dataset}/validation/validation.json"]
                              if config["validation"]["choose"] else []),
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
