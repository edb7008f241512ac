"""The slurm profile against a real SLURM: a one-node cluster on localhost with a fake GPU
(scripts/local_slurm.py), a Ped2 subset through profiles/slurm, compared with a local run; then a
run whose SLURM job and Snakemake are killed in the middle of a per-video stage, and its rerun.

Needs root (the daemons are started by hand) and Debian's slurm-wlm and munge, which the fixture
installs with apt-get when they are missing. Every daemon it starts is stopped by pid afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import PED2, REAL, REPO, SNAKEMAKE, base_config, smk

from hscvad.h5store import open_store

sys.path.insert(0, str(REPO / "scripts"))
import local_slurm  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.e2e, REAL]

# the offline backends: PyTorch ones (EfficientNet-Lite0 on its torch engine, HSC) ask for a GPU, the
# ONNX ones do not (the CPU build of ONNX Runtime)
GPU_RULES = {"appearance", "train_hsc", "synthetic_objects", "validate", "score"}
CPU_RULES = {"check_dataset", "detect_track", "scene", "scene_labels", "explain", "evaluate"}
SITE_THREADS = 2  # threads of every rule the slurm profile sets (set-threads), here and in the local run
RUN_TIMEOUT = 900  # seconds; a hung Snakemake is killed (SIGKILL), never waited on forever


def _subset(tmp: Path, n: int = 64) -> dict:
    """``n`` frames of Ped2 training video 01 and of test video 01 (its frames 30 on, abnormal
    from its 61st frame: the clip's 31st), frames layout: the cluster's mechanics, not the models, are
    under test, so the videos are short."""
    root = tmp / "ped2sub"
    for split, vids, start in (("training", ["01"], 0), ("testing", ["01"], 30)):
        for v in vids:
            d = root / split / "frames" / v
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i:03d}.jpg").symlink_to(PED2 / split / "frames" / v / f"{start + i:03d}.jpg")
    labels = f"TestVideoFile = {{}};\nTestVideoFile{{end+1}}.gt_frame = [31:{n}];\n"
    (root / "testing" / "UCSDped2.m").write_text(labels)
    return {"adapter": "ucsd_ped", "root": str(root), "streams": ["appearance"],
            "detection": {"yolox": {"full_frame": False}}}  # Ped2's detector, as config.yaml gives it


def _config(tmp: Path) -> dict:
    cfg = base_config(tmp, ped2sub=_subset(tmp))
    cfg["hsc"]["epochs"] = 5
    # EfficientNet-Lite0 on PyTorch, so that a per-video group job holds a rule that asks for a GPU
    cfg["appearance"]["efficientnet_lite0"] = {"engine": "torch"}
    return cfg


#: the dataset-level rules of the run, as docs/cluster.md groups them into one SLURM job
TAIL_RULES = ("check_dataset", "scene_labels", "train_hsc", "synthetic_objects", "validate", "score", "explain",
              "evaluate")


def site_profile(dest: Path, tail_group: bool = False) -> Path:
    """profiles/slurm adapted to this one-node cluster the way docs/cluster.md tells a site to adapt
    it: 2 CPUs per job, small memory requests, squeue for status (no slurmdbd), no account,
    fast first status check, and groups of two components; ``tail_group``: the dataset-level rules
    in one group job (one submission and status wait instead of one per rule)."""
    prof = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    if tail_group:
        prof["groups"].update(dict.fromkeys(TAIL_RULES, "dataset_level"))
    prof["cores"] = 2
    prof["set-threads"] = {rule: SITE_THREADS for rule in prof["set-threads"]}
    for res in prof["set-resources"].values():
        res["mem_mb"] = 2000
        if "cpus_per_gpu" in res:
            res["cpus_per_gpu"] = 2
    prof["default-resources"]["mem_mb"] = 2000
    prof["slurm-status-command"] = "squeue"
    prof["slurm-no-account"] = True
    prof["slurm-init-seconds-before-status-checks"] = 2
    prof["latency-wait"] = 5
    prof["group-components"] = {"videos": 2}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof))
    return dest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = local_slurm.can_run()
    if why:
        pytest.skip(f"cannot start a local SLURM cluster: {why}")
    try:
        local_slurm.install()
    except (local_slurm.ClusterError, OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot install a local SLURM cluster (slurm-wlm, munge): {e}")
    d = tmp_path_factory.mktemp("slurmd")
    try:
        env = local_slurm.start(d)
    except local_slurm.ClusterError as e:
        local_slurm.stop(d)
        pytest.fail(f"local SLURM cluster did not start: {e}")
    try:
        yield d, env
    finally:
        local_slurm.stop(d)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    cfg = _config(tmp)
    # each rule with the threads the site profile gives it (site_profile): a model's float sums
    # depend on its thread count, and the two runs must agree bit for bit
    threads = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["set-threads"]
    smk(tmp, cfg, "results/ped2sub/auc.json", "--resources", "gpu=1", "--set-threads",
        *(f"{rule}={SITE_THREADS}" for rule in threads))
    return tmp


def slurm_cmd(workdir: Path, profile: Path, *args) -> list[str]:
    return [*SNAKEMAKE, "-d", str(workdir), "--configfile", str(workdir / "config.yaml"),
            "--workflow-profile", str(profile), *args]


def run_bounded(cmd, env, cwd, timeout=RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """Run in its own session; on timeout kill the whole process group with SIGKILL."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError(f"snakemake did not finish in {timeout} s:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, p.returncode, out, "")


def scontrol_jobs(env) -> dict[str, dict[str, str]]:
    """Every job the controller still knows (MinJobAge=600 keeps finished ones), by job id."""
    r = subprocess.run(["scontrol", "show", "job", "-o"], env=env, capture_output=True, text=True, check=True)
    jobs = {}
    for line in r.stdout.splitlines():
        rec = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in rec:
            jobs[rec["JobId"]] = rec
    return jobs


def assert_same_results(a: Path, b: Path) -> None:
    for rel in ("tracks/train/01.h5", "tracks/test/01.h5", "objects/train/01.h5", "objects/test/01.h5",
                "scene/test/01.h5", "scenes.h5", "scores.h5"):
        with h5py.File(a / "results" / "ped2sub" / rel) as fa, h5py.File(b / "results" / "ped2sub" / rel) as fb:
            names = []
            fa.visit(lambda n, f=fa, names=names: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
            assert names, rel
            for n in names:
                np.testing.assert_array_equal(fa[n][()], fb[n][()], err_msg=f"{rel}:{n}")
    auc_a = yaml.safe_load((a / "results" / "ped2sub" / "auc_table.csv").read_text().replace(",", " , "))
    auc_b = yaml.safe_load((b / "results" / "ped2sub" / "auc_table.csv").read_text().replace(",", " , "))
    assert auc_a == auc_b


def test_pipeline_through_slurm_equals_local_run(cluster, local_run, tmp_path):
    d, env = cluster
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(tmp_path)))
    profile = site_profile(tmp_path / "site_profile")
    before = set(scontrol_jobs(env))
    r = run_bounded(slurm_cmd(tmp_path, profile, "results/ped2sub/auc.json"), env, tmp_path)
    assert r.returncode == 0, r.stdout[-6000:]
    assert_same_results(local_run, tmp_path)

    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", r.stdout))
    jobs = {k: v for k, v in scontrol_jobs(env).items() if k not in before}
    assert submitted and submitted == set(jobs), (submitted, set(jobs))
    assert all(j["JobState"] == "COMPLETED" for j in jobs.values()), jobs
    # jobcomp/filetxt: the controller's record of every finished job
    recorded = {rec["JobId"] for rec in local_slurm.jobcomp(d) if rec.get("JobState") == "COMPLETED"}
    assert submitted <= recorded
    # Which rules each SLURM job ran, from the comment the plugin sets: rule_<rule>, or
    # rule_videos_<rule>_<rule>... for a group job (a single job's has _wildcards_... after it).
    # Every rule of the run went through SLURM, and exactly the jobs holding a rule whose backend
    # runs on a GPU asked for one.
    ran = set()
    for k, j in jobs.items():
        comment = j["Comment"].split("_wildcards_")[0]
        if comment.startswith("rule_videos_"):
            rules = {r for r in ("detect_track", "appearance", "scene") if f"_{r}" in comment}
        else:
            rules = {comment.removeprefix("rule_")}
        ran |= rules
        wants_gpu = bool(rules & GPU_RULES)
        assert ("gpu:1" in j.get("TresPerJob", "")) == wants_gpu, (k, comment, j.get("TresPerJob"))
    assert ran == GPU_RULES | CPU_RULES, ran
    # The 6 per-video jobs ran as 2 group jobs: each video is two connected components
    # (detect_track -> appearance, and scene), two components per group job.
    groups = [j for j in jobs.values() if j["Comment"].startswith("rule_videos")]
    assert len(groups) == 2, [j["Comment"] for j in jobs.values()]
    assert len(jobs) == 2 + len(TAIL_RULES)  # + check_dataset, scene_labels, ..., evaluate


def test_killed_job_leaves_nothing_trusted_and_rerun_finishes(cluster, local_run, tmp_path):
    d, env = cluster
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(tmp_path)))
    profile = site_profile(tmp_path / "site_profile", tail_group=True)
    tracks = tmp_path / "results" / "ped2sub" / "tracks"
    p = subprocess.Popen(slurm_cmd(tmp_path, profile, "results/ped2sub/auc.json"), cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Wait until detect_track runs inside a SLURM job and has written progress to its log,
        # then kill that SLURM job and Snakemake itself (a lost node and a lost login session).
        logs = tmp_path / "results" / "ped2sub" / "logs" / "detect_track"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            started = [f for f in logs.rglob("*.log") if "frame" in f.read_text(errors="replace")]
            if started:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("detect_track never started through SLURM")
        states = {k: j["JobState"] for k, j in scontrol_jobs(env).items()}
        assert "RUNNING" in states.values(), f"no running SLURM job to kill: {states}"
        live = [k for k, s in states.items() if s in ("RUNNING", "PENDING", "CONFIGURING")]
        os.killpg(p.pid, signal.SIGKILL)
        subprocess.run(["scancel", "--signal=KILL", "--full", *live], env=env, check=True)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
    deadline = time.monotonic() + 60
    while any(scontrol_jobs(env)[k]["JobState"] in ("RUNNING", "PENDING", "COMPLETING") for k in live):
        assert time.monotonic() < deadline, "cancelled job did not end"
        time.sleep(0.5)
    done = sorted(tracks.rglob("*.h5"))
    assert len(done) < 2, "every video was already tracked when the job was killed"
    # What a killed job leaves is either absent or a hidden *.part file, never a final name: every
    # file under a final name is a complete track store (open_store checks its stage and version).
    for f in done:
        with open_store(f, "tracks") as h:
            assert h["box"].shape[0] == h["frame"].shape[0]

    # The killed Snakemake left its lock behind; a rerun names the fix, docs/cluster.md says it too.
    r = run_bounded(slurm_cmd(tmp_path, profile, "results/ped2sub/auc.json"), env, tmp_path)
    assert r.returncode != 0 and "--unlock" in r.stdout
    run_bounded(slurm_cmd(tmp_path, profile, "--unlock"), env, tmp_path)
    before = set(scontrol_jobs(env))
    r = run_bounded(slurm_cmd(tmp_path, profile, "results/ped2sub/auc.json"), env, tmp_path)
    assert r.returncode == 0, r.stdout[-6000:]
    assert "incomplete" in r.stdout.lower() or len(done) == 0, r.stdout[-3000:]
    assert_same_results(local_run, tmp_path)
    # the dataset-level rules ran as one SLURM job (the profile's optional tail group)
    comments = [j["Comment"] for k, j in scontrol_jobs(env).items() if k not in before]
    assert sum(c.startswith("rule_dataset_level") for c in comments) == 1, comments
    assert not any(c.removeprefix("rule_").split("_wildcards_")[0] in TAIL_RULES for c in comments), comments
    # the killed job's hidden temporary file was removed when its output was written again
    assert not list((tmp_path / "results").rglob("*.part"))
