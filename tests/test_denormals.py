"""Subnormal floats are flushed to zero in every torch thread of a job, not only the calling one."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def supported() -> bool:
    ok = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    return ok


pytestmark = pytest.mark.skipif(not supported(), reason="this CPU has no flush-to-zero flags torch can set")

# In a fresh process with two torch threads: optionally start torch's thread pool first, call
# flush_denormals, then count the subnormal results of a product spread over both threads.
PROBE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {src!r})
    import torch
    from hscvad.denormals import flush_denormals
    torch.set_num_threads(2)
    if {pool_first}:
        torch.full((1 << 20,), 1.0).sum()  # a parallel operation starts the pool without the flags
    status = flush_denormals()
    y = torch.full((1 << 20,), 1e-30) * 1e-10  # 1e-40: subnormal unless flushed
    tiny = torch.finfo(torch.float32).tiny
    print(status, int(((y != 0) & (y.abs() < tiny)).sum()))
""")


def probe(pool_first: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(src=SRC, pool_first=pool_first)], check=True,
                         capture_output=True, text=True).stdout.strip()
    status, count = out.rsplit(" ", 1)
    return status, int(count)


def test_flags_set_before_the_thread_pool_reach_every_thread():
    assert probe(pool_first=False) == ("all threads", 0)


def test_a_pool_started_before_the_flags_is_detected():
    """torch.set_flush_denormal sets the calling thread's flags only: the pool's other thread keeps
    computing subnormals, and flush_denormals says so instead of claiming the flush."""
    status, count = probe(pool_first=True)
    assert status == "calling thread only"
    assert count > 0
