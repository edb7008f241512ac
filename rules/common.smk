# Configuration validation, dataset listing and input functions shared by every rule file.

import os
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)
# Jobs run scripts/run_stage.py, which imports hscvad; prepending this checkout's src/ lets them
# import the package in a conda environment or on a cluster node too (every job re-reads this file).
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
# ... and `python` is the interpreter running Snakemake (e.g. .venv/bin/python when started as
# .venv/bin/snakemake without activating the venv); a rule's conda environment still comes first.
os.environ.update(PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))

from hscvad.codeversion import stage_code  # noqa: E402
from hscvad.config import ConfigError, load_schema, motion_augmentation_mode, params_json, validate  # noqa: E402
from hscvad.data import DatasetError, build_dataset  # noqa: E402
from hscvad.config import OVERRIDABLE_SECTIONS, dataset_cfg, section  # noqa: E402
from hscvad.data.check import how_to_get  # noqa: E402
from hscvad.data.manifest import content_digest, write_manifest  # noqa: E402


def run_job(rule, input, output, params, wildcards, threads, log):
    """The body of a `run:` rule: the same job as scripts/run_stage.py runs (hscvad.jobs)."""
    from types import SimpleNamespace

    from hscvad.jobs import from_snakemake, run

    smk = SimpleNamespace(rule=rule, input=input, output=output, params=params, wildcards=wildcards,
                          threads=threads, log=log)
    if run(from_snakemake(smk)):
        raise RuntimeError(f"rule {rule} failed (its cause is printed above; traceback in {log[0]})")


def stop(message):
    """A data or configuration error found while planning the jobs: the message alone, no traceback
    (SystemExit also passes through Snakemake's input-function wrapper; the exit status is 1)."""
    raise SystemExit(f"Error: {message}")


try:
    validate(config, load_schema(Path(workflow.basedir) / "schemas" / "config.schema.yaml"))
except ConfigError as e:
    stop(e)

# Where models run (a params entry of the model-running rules; the default `auto` picks CUDA when
# present, so moving from a CPU machine to a GPU one reruns nothing).
DEVICE = config["device"]
# The gpu resource of the rules that always run PyTorch (training, scoring, motion augmentation):
# none with `device: cpu`, so that on a machine without a GPU they do not queue behind its token.
TORCH_GPU = 0 if DEVICE == "cpu" else 1


wildcard_constraints:
    dataset=r"[A-Za-z0-9_+-]+",
    split=r"train|test",
    video=r"[A-Za-z0-9_.+-]+",


_DATASETS = {}

#: datasets with a published download (rules fetch_<name>, checkpoints): fetched when their folder is missing
FETCHABLE_DATASETS = ("ped2", "avenue")


def dataset(name):
    if name not in _DATASETS:
        try:
            cfg = dataset_cfg(config, name)
            if name in FETCHABLE_DATASETS and config["fetch"].get(name) and not Path(cfg["root"]).exists():
                # not downloaded yet: Snakemake runs fetch_<name> first, then plans again from here
                getattr(checkpoints, f"fetch_{name}").get()
            _DATASETS[name] = build_dataset(name, cfg)
        except ConfigError as e:
            stop(e)
        except DatasetError as e:
            stop(f"{e}. {how_to_get(name, config['datasets'][name])}")
    return _DATASETS[name]


def videos(name, split):
    ds = dataset(name)
    try:
        names = ds.videos(split)
    except DatasetError as e:
        stop(e)
    if not names:
        where = "training" if split == "train" else "test"
        stop(f"datasets.{name}.root: no {where} video found under {ds.root} (adapter {ds.adapter}). "
             f"{how_to_get(name, config['datasets'][name])}")
    return names


_MANIFESTS = {}


def video_file(name, split, video):
    """What a per-video job reads: the manifest of its video file or frame folder (every file's name,
    size and digest; rewritten only when they change, hscvad.data.manifest), so a replaced video or
    frame reruns exactly the jobs that read it, and a copy with the same bytes reruns nothing.

    The first request of a split writes the manifests of all its videos: Snakemake lists a folder
    once when it first checks a file in it and then answers from that listing, so a manifest written
    into the folder after that check (the second of two videos given as targets) would be missing."""
    if (name, split) not in _MANIFESTS:
        ds = dataset(name)
        _MANIFESTS[name, split] = {
            v: write_manifest(ds.path(split, v), f"results/{name}/manifests/{split}/{v}.tsv")
            for v in videos(name, split)
        }
    if video not in _MANIFESTS[name, split]:
        return write_manifest(dataset(name).path(split, video), f"results/{name}/manifests/{split}/{video}.tsv")
    return _MANIFESTS[name, split][video]


def video_input(wildcards):
    return video_file(wildcards.dataset, wildcards.split, wildcards.video)


def all_video_inputs(wildcards):
    return [video_file(wildcards.dataset, s, v) for s in ("train", "test") for v in videos(wildcards.dataset, s)]


def label_inputs(wildcards):
    """The test videos' label files (and pixel-mask folders, as manifests) that exist: evaluate and
    check_dataset rerun when one changes."""
    ds = dataset(wildcards.dataset)
    out = []
    for v in videos(wildcards.dataset, "test"):
        path = ds.label_file(v)
        if path is not None and path.is_file():
            # one manifest per label file (a file may hold every video's labels), named by its place
            # in the dataset, so that a dataset moved or copied elsewhere keeps its manifests
            safe = "__".join("up" if part == ".." else part for part in Path(os.path.relpath(path, ds.root)).parts)
            out.append(write_manifest(path, f"results/{wildcards.dataset}/manifests/labels/{safe}.tsv"))
        masks = ds.mask_folder(v)
        if masks is not None and masks.is_dir():
            out.append(write_manifest(masks, f"results/{wildcards.dataset}/manifests/masks/{v}.tsv"))
    return sorted(set(out))


def per_video(pattern, split):
    def inputs(wildcards):
        return expand(pattern, dataset=wildcards.dataset, split=split, video=videos(wildcards.dataset, split))

    return inputs


def P(stage):
    """params: the JSON of exactly the settings that determine ``stage``'s result."""
    return lambda wildcards: params_json(config, wildcards.dataset, stage)


def CODE(stage):
    """params: the version of the code ``stage``'s result depends on (a hash of the source of the
    hscvad modules it runs, hscvad.codeversion). The profiles leave out Snakemake's `code` rerun
    trigger, which for script: rules looks at scripts/run_stage.py's modification time only."""
    return lambda wildcards: stage_code(stage, config, wildcards.dataset)


STREAM_FILES = {
    "appearance": "results/{dataset}/objects/{split}/{video}.h5",
    "motion": "results/{dataset}/motion/{split}/{video}.h5",
    "velocity": "results/{dataset}/velocity/{split}/{video}.h5",
}


def stream_inputs(split, stream):
    """Per-video feature files of one stream, or nothing when the dataset does not use it."""
    files = per_video(STREAM_FILES[stream], split)
    return lambda wildcards: files(wildcards) if stream in config["datasets"][wildcards.dataset]["streams"] else []


def uses(stream, files):
    """``files`` when the dataset uses ``stream``, else nothing."""
    def inputs(w):
        if stream not in config["datasets"][w.dataset]["streams"]:
            return []
        return files(w) if callable(files) else [files.format(dataset=w.dataset)]

    return inputs


FETCHABLE = config["fetch"].get("models", {})


def stage_section(section_name, dataset_name):
    """A stage's config section as ``dataset_name``'s jobs see it: a dataset may override the
    detection and tracking sections (their backend and its weights included)."""
    if section_name in OVERRIDABLE_SECTIONS:
        return section(config, dataset_name, section_name)
    return config[section_name]


def stage_weights(section_name, dataset_name):
    """(the weights path of a stage's configured backend for ``dataset_name``, or None; the config
    key that sets it)."""
    sec = stage_section(section_name, dataset_name)
    backend = sec["backend"]
    key = f"{section_name}.{backend}.weights"
    own = config["datasets"][dataset_name].get(section_name, {}).get(backend, {})
    if section_name in OVERRIDABLE_SECTIONS and "weights" in own:
        key = f"datasets.{dataset_name}.{key}"
    return sec.get(backend, {}).get("weights"), key


def weights(section_name, dataset_name):
    """The weights file of a stage's configured backend for ``dataset_name``, checked for existence.
    A missing file that the fetch_model rule can download becomes that rule's job; any other missing
    file stops the run with the config key and the path."""
    path, key = stage_weights(section_name, dataset_name)
    if path is None:
        return []
    p = Path(path)
    # ancient: the file's date does not rerun anything, its bytes do (WEIGHTS, in the rules' params)
    if p.exists():
        return [ancient(path)]
    if p.parent == Path("resources/models") and p.name in FETCHABLE:
        return [ancient(path)]
    stop(f"{key}: weights file not found: {path}. Place it there or set {key} in config.yaml.")


def WEIGHTS(section_name):
    """params: the sha256 of the stage's weights file (cached by size and modification time,
    hscvad.data.manifest.content_digest), so that other bytes under the same name rerun the stage
    and a copy or a second download of the same bytes does not. A file still to be fetched counts
    as its published sha256 (which the fetch checks), or as pending when none is published."""

    def digest(wildcards):
        path = stage_weights(section_name, wildcards.dataset)[0]
        if path is None:
            return "none"
        if Path(path).exists():
            return content_digest(path, "results/manifests/weights.json")
        sha = (FETCHABLE.get(Path(path).name) or {}).get("sha256") or ""
        return sha if len(sha) == 64 else "to be fetched"

    return digest


def stage_log(stage, per_video=False):
    sub = "{split}/{video}" if per_video else "all"
    return f"results/{{dataset}}/logs/{stage}/{sub}.log"


def stage_benchmark(stage, per_video=False):
    sub = "{split}/{video}" if per_video else "all"
    return f"results/{{dataset}}/benchmarks/{stage}/{sub}.tsv"


def model_env(family, *sections):
    """The conda environment of a model-running rule: its family's, or the one a configured
    backend of its stages names (``conda_env``: the paper's backends need envs/openmmlab.yaml)."""
    from hscvad.models.registry import registry_for

    envs = {getattr(registry_for(s).get(config[s]["backend"], f"{s}.backend"), "conda_env", None) for s in sections}
    envs.discard(None)
    return f"../envs/{envs.pop() if envs else family}.yaml"


def backend_gpu(*sections):
    """gpu=1 for a rule only when the configured backend of one of its stages runs on a GPU (the
    backend's ``uses_gpu``, or ``gpu_for(settings)``: the PyTorch ones, and the ONNX Runtime ones
    where the onnxruntime-gpu build is installed; the TFLite, OpenCV and NumPy ones run on the CPU,
    and their jobs then run side by side instead of queueing behind a GPU token). With ``device:
    cpu`` no job asks for one: every model runs on the CPU, as many side by side as the cores allow."""

    def gpu(wildcards):
        if DEVICE == "cpu":
            return 0
        from hscvad.config import backend_settings
        from hscvad.models.registry import backend_uses_gpu, registry_for

        def uses_gpu(s):
            sec = stage_section(s, wildcards.dataset)
            cls = registry_for(s).get(sec["backend"], f"{s}.backend")
            settings = backend_settings(s, sec["backend"], sec.get(sec["backend"]),
                                        getattr(cls, "section_settings", ()))
            return backend_uses_gpu(cls, settings)

        return int(any(uses_gpu(s) for s in sections))

    return gpu
