#!/usr/bin/env python3
"""A one-node SLURM cluster on localhost, for testing the slurm profile and timing job overhead.

    python scripts/local_slurm.py start DIR     # prints `export SLURM_CONF=DIR/slurm.conf`
    python scripts/local_slurm.py stop DIR

It installs Debian's slurm-wlm and munge when they are missing (root only), writes a slurm.conf
in DIR with one node called ``localhost`` that has every CPU of this machine and a fake GPU
(``Gres=gpu:1`` backed by /dev/null, so ``--gpus=1`` jobs are scheduled one at a time as on a real
one-GPU node), and starts munged (unless one already serves the default socket), slurmctld and a
configless slurmd by hand (no systemd, no cgroups). Without slurmdbd there is no ``sacct``
history: every finished job is written to DIR/jobcomp.log (``JobCompType=jobcomp/filetxt``), and
the controller keeps finished jobs for ``scontrol show job`` for 10 minutes. Clients find the
cluster through ``SLURM_CONF``; ``stop`` cancels the jobs, then kills exactly the daemons it
started, by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
PACKAGES = ("slurm-wlm", "munge")


class ClusterError(RuntimeError):
    pass


def can_run() -> str | None:
    """None when a local cluster can be started here, else the reason it cannot."""
    if sys.platform != "linux":
        return "a local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged by hand needs root (they run as SlurmUser=root here)"
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed and there is no apt-get to install them"
    return None


def install() -> None:
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise ClusterError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")


def _slurm_conf(d: Path, cpus: int, mem_mb: int, port: int) -> str:
    return f"""# Written by scripts/local_slurm.py: a one-node test cluster on localhost.
ClusterName=hscvadtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={port}
SlurmdPort={port + 1}
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=600
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=sched_interval=2
SlurmctldParameters=enable_configless
NodeName=localhost CPUs={cpus} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        return cred.returncode == 0 and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True,
                                                       timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def env_for(d: Path) -> dict[str, str]:
    return dict(os.environ, SLURM_CONF=str(d / "slurm.conf"))


def start(d: Path, port: int = 16817, timeout: float = 60) -> dict[str, str]:
    """Start the cluster; returns the environment (SLURM_CONF set) for its clients."""
    why = can_run()
    if why:
        raise ClusterError(why)
    install()
    d = Path(d).resolve()
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    (d / "slurm.conf").write_text(_slurm_conf(d, cpus, mem_mb, port))
    (d / "gres.conf").write_text("NodeName=localhost Name=gpu Count=1 File=/dev/null\n")
    pids = {}
    # munge: the default socket, because a configless slurmd must authenticate before it has
    # read any AuthInfo. A munged already serving it (e.g. started by the package) is used as
    # it is and left running; otherwise one is started with its own key in DIR.
    (d / "pids").write_text("")
    if MUNGE_SOCKET.exists() and _munge_works():
        pass
    else:
        key = d / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["munged", "--force", f"--key-file={key}", f"--pid-file={d}/munge/munged.pid",
             f"--log-file={d}/munge/munged.log", f"--seed-file={d}/munge/munged.seed"],
            check=True, capture_output=True, timeout=30,
        )
        pids["munged"] = _wait_pid(d / "munge" / "munged.pid", timeout)
        (d / "pids").write_text(f"munged {pids['munged']}\n")
    env = env_for(d)
    for name, cmd in (
        ("slurmctld", ["slurmctld", "-f", str(d / "slurm.conf"), "-c", "-i"]),
        ("slurmd", ["slurmd", "--conf-server", f"localhost:{port}", "-N", "localhost"]),
    ):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
        if r.returncode:
            stop(d)
            raise ClusterError(f"{name} failed to start ({r.returncode}): {r.stderr.strip()}; see {d}/{name}.log")
        pids[name] = _wait_pid(d / f"{name}.pid", timeout)
        with open(d / "pids", "a") as f:
            f.write(f"{name} {pids[name]}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() in ("idle", "mix", "alloc"):
            return env
        time.sleep(0.5)
    stop(d)
    raise ClusterError(f"node localhost did not become idle in {timeout:.0f} s; see {d}/slurmctld.log")


def _wait_pid(pidfile: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(pidfile.read_text().split()[0])
            if _pid_alive(pid):
                return pid
        except (FileNotFoundError, ValueError, IndexError):
            pass
        time.sleep(0.1)
    raise ClusterError(f"{pidfile} did not appear in {timeout:.0f} s")


def stop(d: Path, timeout: float = 20) -> None:
    """Kill the daemons that start() recorded in DIR/pids (reverse order), TERM then KILL."""
    d = Path(d).resolve()
    try:
        lines = (d / "pids").read_text().split("\n")
    except FileNotFoundError:
        return
    pids = [(n, int(p)) for n, p in (ln.split() for ln in lines if ln.strip())]
    # Jobs first, while the controller still runs: their processes belong to slurmstepd, which
    # outlives slurmd.
    if any(n == "slurmctld" and _pid_alive(p) for n, p in pids):
        env = env_for(d)
        subprocess.run(["scancel", "--full", "--user=root"], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True, timeout=30)
            if r.returncode or not r.stdout.strip():
                break
            time.sleep(0.5)
    for name, pid in reversed(pids):
        if name in DAEMONS and _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for _name, pid in reversed(pids):
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    (d / "pids").unlink()
    # the configless slurmd's link to its cached config, if it points into DIR
    link = Path("/run/slurm/conf")
    if link.is_symlink() and str(Path(os.readlink(link))).startswith(str(d)):
        link.unlink()


def jobcomp(d: Path) -> list[dict[str, str]]:
    """The finished jobs recorded by jobcomp/filetxt: one dict of KEY=VALUE fields per job."""
    out = []
    path = Path(d) / "jobcomp.log"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        rec = {}
        for field in line.split(" "):
            k, sep, v = field.partition("=")
            if sep:
                rec[k] = v
            elif rec:  # a value with spaces (e.g. a WorkDir): glue it back to the last field
                last = next(reversed(rec))
                rec[last] += " " + field
        out.append(rec)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    d = Path(argv[1])
    if argv[0] == "start":
        start(d)
        print(f"export SLURM_CONF={d.resolve()}/slurm.conf")
    else:
        stop(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
