"""A job's pure-Python work (figures, mostly) spread over its threads as processes.

Matplotlib draws and encodes a figure in one interpreter, on one core (the GIL), so a job that
renders many figures declares two threads and hands the figures to :class:`Workers`, forked
processes of one thread each, while it goes on with its own work. The figures are the same files
as when the job draws them itself (tested): the same code runs on the same data.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from typing import Any

#: calls queued per worker at most: the caller waits before it submits more (their arguments, frames
#: for instance, are held until a worker takes them)
MAX_QUEUED = 4


def _one_thread() -> None:
    """Initialiser of a worker: every thread pool it inherited from the job sized to one thread
    (the job's other workers and the job itself hold the other cores)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


class _Done:
    """The result of a call made at once (no workers): ``get()`` as a pool's result has it."""

    def __init__(self, value: Any):
        self.value = value

    def get(self) -> Any:
        return self.value


class Workers:
    """``processes`` forked worker processes (created at once, before the job starts any thread of
    its own), or none where ``processes`` < 1 or the platform cannot fork: then :meth:`submit` calls
    the function at once in this process. Use as a context manager: leaving it waits for every
    submitted call and raises again the first exception a worker raised (as does a result's
    ``get()``); leaving it on an exception stops the workers."""

    def __init__(self, processes: int):
        self.processes = max(0, int(processes))
        self._pool = None
        self._pending: list = []
        if self.processes >= 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = multiprocessing.get_context("fork").Pool(self.processes, initializer=_one_thread)

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable, *args, callback: Callable | None = None, **kwargs):
        """Run ``fn(*args, **kwargs)`` in a worker (``fn`` and its arguments are pickled; with
        :data:`MAX_QUEUED` calls per worker unfinished, first wait for the oldest); returns an
        object whose ``get()`` waits for the result. ``callback(result)`` runs in this process when
        the call has finished."""
        if self._pool is None:
            value = fn(*args, **kwargs)
            if callback is not None:
                callback(value)
            return _Done(value)
        while len(self._pending) >= MAX_QUEUED * self.processes:  # bounded: the caller waits for the oldest
            self._pending.pop(0).get()
        result = self._pool.apply_async(fn, args, kwargs, callback=callback)
        self._pending.append(result)
        return result

    def wait(self) -> None:
        """Wait for every call submitted so far; raises again the first exception of one."""
        pending, self._pending = self._pending, []
        for result in pending:
            result.get()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pool is None:
            return
        try:
            if exc_type is None:
                self.wait()
                self._pool.close()
        finally:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
