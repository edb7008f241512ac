"""A job's CPU threads, given to every library in it that keeps a thread pool.

A job declares ``threads`` (its rule's, or ``--threads`` of ``hscvad run``) and Snakemake starts as
many jobs as ``--cores`` allows. Each library would otherwise size its pool to every core of the
machine, so jobs side by side would each run a pool per core and fight for them (time lost to the
kernel, threads spinning while they wait). :func:`limit` sizes them all to the job's threads: the
OpenMP / BLAS pools (numpy, scikit-learn, torch; through ``threadpoolctl`` and the environment,
for libraries loaded later), OpenCV's pool, torch's intra-op threads, and FFmpeg's decoding threads
(:func:`budget`, read by the video reader). ONNX Runtime sessions take ``Runtime.threads`` and
sleep instead of spinning (``hscvad.models.registry.onnx_session``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: environment variables read by OpenMP and BLAS libraries when they are loaded
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_budget: int | None = None


def budget() -> int | None:
    """The threads of the job running now (None outside a job: libraries choose)."""
    return _budget


@contextmanager
def limit(threads: int) -> Iterator[None]:
    """Within this block every thread pool of the process is sized to ``threads``; the previous
    sizes come back afterwards (a job run inside a longer process, as in the tests)."""
    global _budget
    n = max(1, int(threads))
    saved_env = {k: os.environ.get(k) for k in ENV_VARS}
    saved_budget = _budget
    os.environ.update({k: str(n) for k in ENV_VARS})
    _budget = n
    from threadpoolctl import threadpool_limits

    try:
        import cv2
    except ImportError:  # an environment without OpenCV (fetch, evaluation)
        cv2 = None
    saved_cv2 = cv2.getNumThreads() if cv2 is not None else None
    if cv2 is not None:
        cv2.setNumThreads(n)
    torch = sys.modules.get("torch")  # torch reads OMP_NUM_THREADS when imported later
    saved_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        _budget = saved_budget
        if cv2 is not None:
            cv2.setNumThreads(saved_cv2)
        if saved_torch is not None:
            torch.set_num_threads(saved_torch)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
