"""ShanghaiTech scale: the DAG of 437 videos (synthetic, in ShanghaiTech's layout) builds with
the slurm profile, and its per-video jobs are grouped into a few SLURM jobs."""

import math
import sys

import pytest
import yaml
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import slurm_scale  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_shanghaitech_sized_dag_is_grouped(tmp_path):
    n_train, n_test = slurm_scale.make_shanghaitech(tmp_path / "sht", 437)
    assert (n_train, n_test) == (330, 107)
    cfg = slurm_scale.config_for(tmp_path / "sht", tmp_path)
    _, out = slurm_scale.dry_run(tmp_path, cfg)
    jobs = slurm_scale.job_counts(out)
    assert jobs["detect_track"] == jobs["appearance"] == jobs["scene"] == 437
    assert jobs["scene_labels"] == jobs["train_hsc"] == jobs["score"] == jobs["evaluate"] == 1
    per_group = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["group-components"]["videos"]
    # 437 videos x 2 connected components (detect_track -> appearance; scene) in groups of 32
    assert slurm_scale.group_jobs(out) == math.ceil(2 * 437 / per_group) == 28
