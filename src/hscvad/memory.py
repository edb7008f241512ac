"""A job's freed memory kept for its next allocation instead of being given back to the kernel.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MB) with a fresh
``mmap`` and unmaps it when freed. A PyTorch model on the CPU allocates its activations anew for
every batch (EfficientNet-Lite0 on 64 crops: 100 MB tensors), so each batch asks the kernel for
zeroed pages again: on the CPU the PyTorch engine's appearance jobs spent more time in the kernel
than in the model (6.4 M page faults for 320 crops; ``docs/benchmarks.md``, "Freed memory kept for reuse").
:func:`keep_freed_memory` makes ``malloc`` take every block from its heap and never shrink it, so
freed blocks are reused: the same numbers, the kernel's share gone, and a process's resident memory
stays at its peak until it ends (the peak itself grows, by 40-85 % for PyTorch models on the CPU,
since blocks of different sizes no longer fit in each other's freed space). Each job runs in a
process of its own, whose entry point applies it (``scripts/run_stage.py``, the ``hscvad run``
command); it is no part of a stage's code version, since it changes no result. Elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

#: set to 0 to leave malloc as glibc configures it
ENV = "HSCVAD_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Make this process's ``malloc`` serve large blocks from its heap and keep what is freed there
    (``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` the largest); True when applied. Off with
    ``HSCVAD_KEEP_FREED_MEMORY=0``."""
    if os.environ.get(ENV, "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl and macOS have their own allocators
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
