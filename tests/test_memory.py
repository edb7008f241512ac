"""A job's process keeps the memory it frees for its next allocations (hscvad.memory): large
blocks come from the heap and are reused instead of being mapped, zeroed and faulted in again."""

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

GLIBC = hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "gnu_get_libc_version")
pytestmark = pytest.mark.skipif(not GLIBC, reason="glibc's malloc only (elsewhere keep_freed_memory does nothing)")

PAGES_100MB = 100 * 2**20 // os.sysconf("SC_PAGE_SIZE")

# After `setup`, 10 blocks of 100 MB allocated, written and freed in turn: the page faults they
# cost, whether the last one got a mapping of its own (glibc's mallinfo2().hblks), and what
# keep_freed_memory said.
PROBE = """
import ctypes, json, resource, sys
import numpy as np
from numpy._core.multiarray import _set_madvise_hugepage
_set_madvise_hugepage(False)  # pages of 4 KB, as a PyTorch tensor's (NumPy asks for huge pages)
kept = None
{setup}
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    held = libc.mallinfo2().hblks
    a = np.ones(100 * 2**20 // 8)
    mapped = libc.mallinfo2().hblks - held
    del a
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{"faults": faults, "mapped": mapped, "kept": kept}}))
"""


def probe(setup: str, env: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default = probe("")
    assert default["kept"] is None and default["mapped"] == 1
    assert default["faults"] > 9 * PAGES_100MB  # every block mapped and faulted in anew
    kept = probe("from hscvad.memory import keep_freed_memory; kept = keep_freed_memory()")
    assert kept["kept"] is True and kept["mapped"] == 0
    assert kept["faults"] < 2 * PAGES_100MB  # the first block's pages, then the same ones again


def test_the_environment_can_turn_it_off():
    off = probe("from hscvad.memory import keep_freed_memory; kept = keep_freed_memory()",
                {"HSCVAD_KEEP_FREED_MEMORY": "0"})
    assert off["kept"] is False and off["mapped"] == 1 and off["faults"] > 9 * PAGES_100MB


def test_every_job_entry_point_applies_it():
    """The rules' script (scripts/run_stage.py) and the `hscvad run` command, each started as a
    process of its own; a job that then fails on its missing input leaves the setting applied."""
    via_script = probe(
        "import runpy, types\n"
        "job = types.SimpleNamespace(rule='velocity', input=[], output=[], params={}, wildcards=None,\n"
        "                            threads=1, log=[], resources={})\n"
        "try:\n"
        "    runpy.run_path('scripts/run_stage.py', init_globals={'snakemake': job}, run_name='__main__')\n"
        "except BaseException:\n"
        "    pass")
    assert via_script["mapped"] == 0 and via_script["faults"] < 2 * PAGES_100MB
    via_cli = probe(
        "from hscvad import cli\n"
        "sys.argv = ['hscvad', 'run', 'velocity', '--params', '{}', '--input', 'tracks=/absent.h5',\n"
        "            '--output', 'out=/absent/o.h5']\n"
        "try:\n"
        "    cli.main()\n"
        "except BaseException:\n"
        "    pass")
    assert via_cli["mapped"] == 0 and via_cli["faults"] < 2 * PAGES_100MB
    from_python = probe(  # a call from Python (a notebook, a test) leaves the caller's malloc alone
        "from hscvad import cli\n"
        "try:\n"
        "    cli.main(['run', 'velocity', '--params', '{}', '--input', 'tracks=/absent.h5', '--output', 'out=/o.h5'])\n"
        "except BaseException:\n"
        "    pass")
    assert from_python["mapped"] == 1
