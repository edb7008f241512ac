# The script of every rule (`script: "../scripts/run_stage.py"`): Snakemake runs it with its
# `snakemake` object (named input and output files, params, threads, wildcards, log) defined, and
# the rule's stage module does the work (rule x -> src/hscvad/stages/x.py; see hscvad.jobs).
import sys

from hscvad.jobs import from_snakemake, run

sys.exit(run(from_snakemake(globals()["snakemake"])))
