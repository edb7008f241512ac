# The script of every rule (`script: "../scripts/run_stage.py"`): Snakemake runs it with its
# `snakemake` object (named input and output files, params, threads, wildcards, log) defined, and
# the rule's stage module does the work (rule x -> src/hscvad/stages/x.py; see hscvad.jobs).
# The job is a process of its own, whose freed memory is kept for its next allocations
# (hscvad.memory: the same results, less time in the kernel).
import sys

from hscvad.jobs import from_snakemake, run
from hscvad.memory import keep_freed_memory

keep_freed_memory()
sys.exit(run(from_snakemake(globals()["snakemake"])))
