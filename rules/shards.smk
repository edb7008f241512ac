# Shards (config `shards`): several videos per job for the per-video stages. For every stage whose
# `shards.<stage>` is above 1 and every configured dataset found on disk, each split's videos (in
# name order) are cut into runs of that many, and each run becomes a rule of its own whose outputs
# are exactly the per-video rule's files of those videos. Such a rule has no wildcards, so
# Snakemake prefers it to the per-video rule for those files; its job runs the per-video stage code
# for each video in turn in one process, loading the model once (hscvad.jobs.run). Inputs, params,
# threads and resources are the per-video rule's (profile overrides included; runtime times the
# number of videos), so a shard's outputs are the per-video jobs' outputs.

from types import SimpleNamespace

from hscvad.jobs import SHARED_INPUTS  # noqa: E402

SHARDED_STAGES = ("detect_track", "appearance", "scene", "pose", "motion", "flow", "velocity")


def shard_plan():
    """(stage, dataset, split, index, videos) of every shard; a dataset that cannot be listed here
    (not downloaded yet, a configuration error) keeps its per-video jobs, which report the cause."""
    for stage in SHARDED_STAGES:
        size = int(config["shards"][stage])
        if size <= 1:
            continue
        for name in config["datasets"]:
            try:
                ds = build_dataset(name, dataset_cfg(config, name))
                lists = {split: ds.videos(split) for split in ("train", "test")}
            except (ConfigError, DatasetError, OSError):
                continue
            for split, names in lists.items():
                for k, start in enumerate(range(0, len(names), size)):
                    yield stage, name, split, k, list(names[start : start + size])


def shard_benchmarks(dataset):
    """Per stage run in shards, the names of its shards' benchmark files for ``dataset``: the files
    rule summarise_run counts for that stage (not the per-video ones an earlier run left)."""
    out = {}
    for stage, name, split, k, _ in shard_plan():
        if name == dataset:
            out.setdefault(stage, []).append(f"{split}_{k:03d}.tsv")
    return out


def _one_video(value, wc):
    return value(wc) if callable(value) else value.format(**vars(wc))


def shard_inputs(stage, name, split, chunk):
    """The per-video rule's named inputs for each video of ``chunk`` (one entry per video, in the
    chunk's order), evaluated when the DAG needs them; the shared ones once."""

    def entry(input_name, value):
        def files(wildcards):
            each = [_one_video(value, SimpleNamespace(dataset=name, split=split, video=v)) for v in chunk]
            if input_name in SHARED_INPUTS:
                return each[0]
            if not all(isinstance(f, str) for f in each):
                raise ValueError(f"rules/shards.smk: input {input_name} of rule {stage} is not one file per video")
            return each

        return files

    return {n: entry(n, v) for n, v in getattr(rules, stage).input._allitems() if n is not None}


def shard_params(stage, name, split, chunk):
    wc = SimpleNamespace(dataset=name, split=split, video=chunk[0])
    return {n: (lambda wildcards, v=v: _one_video(v, wc) if callable(v) else v)
            for n, v in getattr(rules, stage).params._allitems() if n is not None}


def shard_resources(stage, name, split, chunk):
    """The per-video rule's threads and resources as Snakemake resolved them (profile
    `set-threads` / `set-resources` included), its runtime times the number of videos; gpu is
    evaluated for this dataset."""
    resources, threads = {}, 1
    wc = SimpleNamespace(dataset=name, split=split, video=chunk[0])
    for key, res in getattr(rules, stage).rule.resources.items():
        if key == "_cores":
            threads = res.value if not res.is_evaluable() else 1
        elif key == "gpu":
            resources[key] = res.evaluate(wc).value if res.is_evaluable() else res.value
        elif key not in ("_nodes", "tmpdir") and not res.is_evaluable():
            resources[key] = res.value * len(chunk) if key == "runtime" else res.value
    return threads, resources


for _stage, _name, _split, _k, _chunk in shard_plan():
    _threads, _resources = shard_resources(_stage, _name, _split, _chunk)
    _tag = f"{_name}_{_split}_{_k:03d}".replace("+", "_").replace("-", "_")

    rule:
        name:
            f"{_stage}__shard_{_tag}"
        input:
            **shard_inputs(_stage, _name, _split, _chunk),
        output:
            [getattr(rules, _stage).output[0].format(dataset=_name, split=_split, video=v) for v in _chunk],
        params:
            **shard_params(_stage, _name, _split, _chunk),
        log:
            f"results/{_name}/logs/{_stage}/shards/{_split}_{_k:03d}.log",
        benchmark:
            f"results/{_name}/benchmarks/{_stage}/shards/{_split}_{_k:03d}.tsv"
        threads: _threads
        resources:
            **_resources,
        conda:
            getattr(rules, _stage).rule.conda_env
        script:
            "../scripts/run_stage.py"
