"""A job's thread pools are sized to its threads, and given back afterwards."""

import os

import cv2
import numpy as np
import pytest
from conftest import MODELS, need_shared
from threadpoolctl import threadpool_info

from hscvad import threads
from hscvad.models.registry import Runtime, onnx_session


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] in ("blas", "openmp")}


def test_limit_sizes_every_pool_and_restores_them():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before_cv2, before_env = cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS")
    assert threads.budget() is None
    with threads.limit(1):
        assert threads.budget() == 1
        assert cv2.getNumThreads() == 1
        assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "1"
        if _blas_threads():
            assert _blas_threads() == {1}
        with threads.limit(3):  # nested: the inner job's size, then the outer's again
            assert threads.budget() == 3 and cv2.getNumThreads() == 3
        assert threads.budget() == 1 and cv2.getNumThreads() == 1
    assert threads.budget() is None
    assert cv2.getNumThreads() == before_cv2 and os.environ.get("OMP_NUM_THREADS") == before_env


def test_a_job_runs_inside_its_thread_limit(monkeypatch):
    from hscvad import jobs, rules

    seen = {}

    class Stage:
        @staticmethod
        def main(job):
            seen.update(budget=threads.budget(), cv2=cv2.getNumThreads())

    monkeypatch.setattr(rules, "stage_module", lambda rule: Stage)
    assert jobs.run(jobs.Job(rule="scene", threads=1)) == 0
    assert seen == {"budget": 1, "cv2": 1}


@need_shared(MODELS / "deeplabv3_mobilenetv2_voc_257.onnx")
def test_onnx_sessions_take_the_runtime_threads_and_do_not_spin():
    s = onnx_session(MODELS / "deeplabv3_mobilenetv2_voc_257.onnx", Runtime("cpu", 2))
    opts = s.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_backends_ask_for_a_gpu_only_where_onnxruntime_has_cuda(monkeypatch):
    from hscvad.models import registry
    from hscvad.models.appearance import EfficientNetLite0
    from hscvad.models.detection import YOLOX

    monkeypatch.setattr(registry, "onnx_cuda_available", lambda: False)  # the CPU build, or no GPU
    import hscvad.models.appearance as appearance

    monkeypatch.setattr(appearance, "onnx_cuda_available", lambda: False)
    assert YOLOX.uses_gpu is False
    assert registry.backend_uses_gpu(EfficientNetLite0, {"engine": "onnxruntime"}) is False
    assert registry.backend_uses_gpu(EfficientNetLite0, {"engine": "torch"}) is True  # PyTorch: CUDA when present
    monkeypatch.setattr(registry, "onnx_cuda_available", lambda: True)  # the onnxruntime-gpu build on a GPU
    monkeypatch.setattr(appearance, "onnx_cuda_available", lambda: True)
    assert YOLOX.uses_gpu is True
    assert registry.backend_uses_gpu(EfficientNetLite0, {"engine": "onnxruntime"}) is True


def test_device_auto_asks_the_driver_before_importing_torch(monkeypatch):
    """``device: auto`` on a machine whose driver shows no GPU resolves to the CPU without importing
    PyTorch (a second of every ONNX job's start-up); where the driver shows one, PyTorch decides."""
    import subprocess
    import sys

    import torch

    from hscvad.models import registry

    probe = ("import sys; from hscvad.models.registry import Runtime, cuda_driver_devices; "
             "r = Runtime.resolve('auto', 1); print(cuda_driver_devices(), r.device, 'torch' in sys.modules)")
    n, device, imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                         check=True).stdout.split()
    if int(n) == 0:
        assert (device, imported) == ("cpu", "False")
    else:  # a GPU machine: PyTorch was asked
        assert imported == "True" and device == ("cuda" if torch.cuda.is_available() else "cpu")

    monkeypatch.setattr(registry, "cuda_driver_devices", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # never asked: the driver said none
    assert Runtime.resolve("auto").device == "cpu"
    monkeypatch.setattr(registry, "cuda_driver_devices", lambda: 1)
    assert Runtime.resolve("auto").device == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a driver, but a CPU build of PyTorch
    assert Runtime.resolve("auto").device == "cpu"


def _pid_and_pools(x):
    return os.getpid(), x * 2, cv2.getNumThreads(), sorted(_blas_threads())


def _fail(name):
    raise ValueError(f"figure {name} could not be drawn")


def test_workers_run_calls_in_one_thread_processes_and_raise_their_errors():
    from hscvad.parallel import MAX_QUEUED, Workers

    done = []
    with threads.limit(2), Workers(2) as workers:
        assert workers.parallel
        results = [workers.submit(_pid_and_pools, i, callback=done.append) for i in range(4)]
        out = [r.get() for r in results]
    assert [o[1] for o in out] == [0, 2, 4, 6] and len(done) == 4
    with Workers(1) as workers:  # at most MAX_QUEUED calls wait per worker: the caller waits for the oldest
        results = [workers.submit(_pid_and_pools, i) for i in range(3 * MAX_QUEUED)]
        assert len(workers._pending) <= MAX_QUEUED
    assert [r.get()[1] for r in results] == [2 * i for i in range(3 * MAX_QUEUED)]
    assert os.getpid() not in {o[0] for o in out}  # drawn elsewhere
    assert all(o[2] == 1 and set(o[3]) <= {1} for o in out)  # each worker holds one thread
    with pytest.raises(ValueError, match="figure b could not be drawn"), Workers(1) as workers:
        workers.submit(_fail, "b")  # not waited for by the caller: leaving the block raises it
    # no workers: the call runs at once, here
    with Workers(0) as workers:
        assert not workers.parallel
        r = workers.submit(_pid_and_pools, 5, callback=done.append)
        assert r.get()[:2] == (os.getpid(), 10) and done[-1] == r.get()
        with pytest.raises(ValueError, match="figure c"):
            workers.submit(_fail, "c")


def _die(code):
    os._exit(code)


def test_a_worker_that_dies_fails_the_job_instead_of_hanging():
    """A worker killed (for memory, say) mid-call: the call's result raises, as does leaving the
    block, where a pool that lost the call would wait for it forever."""
    from concurrent.futures.process import BrokenProcessPool

    from hscvad.parallel import Workers

    with pytest.raises(BrokenProcessPool), Workers(1) as workers:
        workers.submit(_die, 3)
