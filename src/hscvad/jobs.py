"""One generic entry point for every rule's job.

A rule runs ``script: "../scripts/run_stage.py"``, which hands Snakemake's ``snakemake`` object to
:func:`from_snakemake`; :func:`run` then calls ``main(job)`` of the rule's stage module
(:data:`hscvad.rules.RULES`). A job carries the rule's named ``input`` and ``output`` files, its
``params`` (the declared settings, see :mod:`hscvad.settings`), ``threads``, ``device``,
``wildcards`` and ``log``. ``hscvad run <rule> ...`` (:mod:`hscvad.cli`) builds the same job by hand.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .stages.common import LOG_FORMAT, log, setup_logging


class Files(list):
    """A rule's files: a list (in the rule's order) whose named entries are also attributes."""

    def __init__(self, files: list[str] | None = None, named: dict[str, Any] | None = None):
        super().__init__(files or [])
        self.names = list(named or {})
        for name, value in (named or {}).items():
            setattr(self, name, value)

    def get(self, name: str, default=None):
        return getattr(self, name, default)


@dataclass
class Job:
    rule: str
    input: Files = field(default_factory=Files)
    output: Files = field(default_factory=Files)
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: SimpleNamespace = field(default_factory=SimpleNamespace)
    threads: int = 1
    device: str = "auto"
    log: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other params of the rule (paths, listings)
    #: the job is its process (a Snakemake job, ``hscvad run``): its log ends with the process's CPU
    #: time, start-up included (Snakemake's benchmark files sample CPU time, and a job's last
    #: seconds, or all of a short job, fall between their samples)
    own_process: bool = False

    @property
    def runtime(self):
        from .models.registry import Runtime

        return Runtime.resolve(self.device, self.threads)

    @property
    def dataset(self) -> str | None:
        return getattr(self.wildcards, "dataset", None)


def _files(namedlist) -> Files:
    named = {}
    for name, value in namedlist.items():
        named[name] = list(value) if isinstance(value, list) else str(value)
    return Files([str(f) for f in namedlist], named)


def from_snakemake(smk) -> Job:
    """The job of a rule run through ``script:`` (``smk`` is Snakemake's ``snakemake`` object)."""
    params = dict(smk.params.items())
    settings = json.loads(params.pop("p")) if "p" in params else {}
    device = params.pop("device", "auto")
    return Job(rule=smk.rule, input=_files(smk.input), output=_files(smk.output), params=settings,
               wildcards=SimpleNamespace(**dict(smk.wildcards.items())), threads=int(smk.threads), device=device,
               log=str(smk.log[0]) if len(smk.log) else None, extra=params, own_process=True)


#: the last line of the log of a job that is its own process (:attr:`Job.own_process`)
CPU_LINE = "job CPU since its process started: user {user:.2f} s, system {system:.2f} s"
CPU_PATTERN = re.compile(r"job CPU since its process started: user ([0-9.]+) s, system ([0-9.]+) s")


def reported_cpu(log_file: str | Path) -> float | None:
    """User + system CPU seconds a job reported on its log's last line (:data:`CPU_LINE`); None for
    a log without that line or no log."""
    try:
        found = CPU_PATTERN.findall(Path(log_file).read_text(errors="replace"))
    except OSError:
        return None
    return sum(map(float, found[-1])) if found else None


def process_cpu() -> tuple[float, float]:
    """User and system CPU seconds of this process (every thread) and of its finished children."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime


@contextmanager
def _job_log(log: str | None):
    """During a job: stderr (its file descriptor, for native libraries, and ``sys.stderr``, for
    progress bars) and the log records go to ``log``; yields a stream to the console for the one-line
    cause of a failure, and puts everything back afterwards (a job run inside a longer process)."""
    if not log:
        setup_logging()
        yield None
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved_stderr, console = sys.stderr, os.fdopen(os.dup(2), "w")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield console
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        sys.stderr.close()
        sys.stderr = saved_stderr
        console.flush()
        os.dup2(console.fileno(), 2)
        console.close()


#: inputs of a per-video rule that are the same for every video: a shard rule lists them once
SHARED_INPUTS = ("weights",)

#: the name of a shard rule (rules/shards.smk): ``<per-video rule>__shard_<dataset>_<split>_<index>``
SHARD_RULE = re.compile(r"^(?P<rule>[a-z_]+?)__shard_\w+$")


def shard_parts(job: Job) -> list[Job] | None:
    """The per-video jobs of a shard job (None for any other job), in its videos' order: each with
    its video's output file, wildcards read from that file's path (``results/<dataset>/<kind>/<split>/
    <video>.h5``, the per-video rules' layout), and of every named input the entry of its video (a
    shard rule lists each per-video input once per video, in the outputs' order; the inputs in
    :data:`SHARED_INPUTS` are passed whole)."""
    m = SHARD_RULE.match(job.rule)
    if not m:
        return None
    parts = []
    for i, out in enumerate(job.output):
        path = Path(out)
        if len(path.parts) < 4 or path.parts[-2] not in ("train", "test") or path.suffix != ".h5":
            raise ValueError(f"shard rule {job.rule}: output {out} is not results/<dataset>/<kind>/<split>/<video>.h5")
        named = {}
        for name in job.input.names:
            value = job.input.get(name)
            named[name] = value if name in SHARED_INPUTS else value[i]
        flat = [f for v in named.values() for f in (v if isinstance(v, list) else [v])]
        wildcards = SimpleNamespace(dataset=path.parts[-4], split=path.parts[-2], video=path.stem)
        parts.append(Job(rule=m["rule"], input=Files(flat, named), output=Files([out]), params=job.params,
                         wildcards=wildcards, threads=job.threads, device=job.device, log=job.log, extra=job.extra))
    return parts


def run(job: Job) -> int:
    """Run ``job`` with its stage's ``main``: 0 on success; on an error its cause in one line on the
    console (``hscvad <rule>: error: ...``) and the traceback in the job's log, and 1. A shard job
    (:func:`shard_parts`) runs its videos in turn in this process, with each model loaded once
    (:func:`hscvad.models.registry.shared_models`); the first failing video stops it. Every thread
    pool of the job is sized to its ``threads`` (:func:`hscvad.threads.limit`)."""
    from . import threads
    from .models.registry import shared_models
    from .rules import stage_module

    with _job_log(job.log) as console, threads.limit(job.threads):
        log.info("rule %s, threads %d, params %s", job.rule, job.threads, json.dumps(job.params, sort_keys=True))
        where = ""
        try:
            parts = shard_parts(job)
            if parts is None:
                stage_module(job.rule).main(job)
            else:
                main = stage_module(parts[0].rule).main
                with shared_models():
                    for k, part in enumerate(parts, 1):
                        w = part.wildcards
                        log.info("shard video %d/%d: %s/%s/%s", k, len(parts), w.dataset, w.split, w.video)
                        where = f" (video {w.split}/{w.video})"
                        main(part)
        except Exception as e:
            cause = f"hscvad {job.rule}: error: {e}{where}"
            print(cause, file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            if console is not None:
                print(f"{cause}\n  (traceback in {job.log})", file=console, flush=True)
            return 1
        finally:
            if job.own_process:
                user, system = process_cpu()
                log.info(CPU_LINE.format(user=user, system=system))
    return 0
