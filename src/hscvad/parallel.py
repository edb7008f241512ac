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


class _Result:
    """A submitted call: ``get()`` waits for its value, or raises what the call raised (a worker
    that died, killed for memory for instance, raises ``BrokenProcessPool`` instead of leaving
    the job waiting)."""

    def __init__(self, future=None, value: Any = None):
        self._future, self._value = future, value

    def get(self) -> Any:
        return self._future.result() if self._future is not None else self._value


class Workers:
    """``processes`` forked worker processes (started at once, before the job starts any thread of
    its own), or none where ``processes`` < 1 or the platform cannot fork: then :meth:`submit` calls
    the function at once in this process. Use as a context manager: leaving it waits for every
    submitted call and raises again the first exception a worker raised (as does a result's
    ``get()``); leaving it on an exception cancels the calls not started."""

    def __init__(self, processes: int):
        self.processes = max(0, int(processes))
        self._pool = None
        self._pending: list[_Result] = []
        if self.processes >= 1 and "fork" in multiprocessing.get_all_start_methods():
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_one_thread)
            self._pool.submit(int).result()  # a forking pool starts all its workers at its first call: now

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable, *args, callback: Callable | None = None, **kwargs) -> _Result:
        """Run ``fn(*args, **kwargs)`` in a worker (``fn`` and its arguments are pickled; with
        :data:`MAX_QUEUED` calls per worker unfinished, first wait for the oldest); returns an
        object whose ``get()`` waits for the result. ``callback(result)`` runs in this process when
        the call has succeeded."""
        if self._pool is None:
            value = fn(*args, **kwargs)
            if callback is not None:
                callback(value)
            return _Result(value=value)
        while len(self._pending) >= MAX_QUEUED * self.processes:  # bounded: the caller waits for the oldest
            self._pending.pop(0).get()
        future = self._pool.submit(fn, *args, **kwargs)
        if callback is not None:
            future.add_done_callback(lambda f: None if f.cancelled() or f.exception() else callback(f.result()))
        result = _Result(future)
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
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
