"""One module per Snakemake rule (rule ``detect_track`` -> ``hscvad.stages.detect_track``).

Each module has ``run(...)`` with explicit arguments (used by tests) and ``main(args)`` called by
``hscvad <stage>`` from the rule's shell command.
"""
