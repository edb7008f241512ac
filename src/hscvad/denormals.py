"""Subnormal floats flushed to zero in every CPU thread PyTorch computes in.

Values below float32's smallest normal number (~1.2e-38: Adam moments, then weights and
activations decaying towards 0) cost some CPUs two orders of magnitude per operation (issue 12: HSC
epochs slowing from 1.6 to 45 s on an AVX-512 Xeon). ``torch.set_flush_denormal(True)`` sets the
flush-to-zero and denormals-are-zero flags of the *calling* thread only. Threads inherit them when
they are created, so torch's intra-op (OpenMP) threads flush too only if the flags were set before
the first parallel operation of the process started them; threads started earlier keep computing with
subnormals (measured here: half of a two-thread product's elements then stayed subnormal).

:func:`flush_denormals` sets the flags and checks with one parallel product whether every thread
flushes. The stages that train or score with torch call it before any computation, so a job's
threads start with the flags; ``train_stream`` and ``score_samples`` call it too.
"""

from __future__ import annotations

import logging

log = logging.getLogger("hscvad")

ALL = "all threads"
CALLING_ONLY = "calling thread only"
UNSUPPORTED = "unsupported"

_status: str | None = None


def _every_thread_flushes(torch) -> bool:
    """Whether a product that underflows into the subnormal range comes out as zeros in every
    thread's share (ATen hands elementwise work to all threads from 32768 elements per thread on)."""
    n = 4 * 32768 * max(1, torch.get_num_threads())
    y = torch.full((n,), 1e-30, dtype=torch.float32) * 1e-10  # 1e-40: subnormal unless flushed
    return not bool(y.any())


def flush_denormals() -> str:
    """Flush subnormal floats to zero in torch's CPU work; says where that holds: :data:`ALL`,
    :data:`CALLING_ONLY` (torch's threads started before the flags were set: call this before any
    torch computation of the process), or :data:`UNSUPPORTED` (the CPU has no such flags).
    Logs the outcome once per process."""
    global _status
    import torch

    if not torch.set_flush_denormal(True):
        status = UNSUPPORTED
    elif _status == ALL:
        return ALL  # the threads keep their flags; threads started later inherit them
    else:
        status = ALL if _every_thread_flushes(torch) else CALLING_ONLY
    if status != _status:
        if status == CALLING_ONLY:
            log.warning("subnormal floats are flushed to zero in the calling thread only: torch's %d threads "
                        "started before the flag was set and compute with subnormals, which some CPUs pay "
                        "for with a large slowdown", torch.get_num_threads())
        else:
            log.info("subnormal floats flushed to zero: %s (%d torch threads)", status, torch.get_num_threads())
    _status = status
    return status
