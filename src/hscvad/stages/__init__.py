"""One module per Snakemake rule (rule ``detect_track`` -> ``hscvad.stages.detect_track``).

Each module declares ``SETTINGS``, the settings its result depends on (the rule's params; see
:mod:`hscvad.settings`), and has ``run(...)`` with explicit arguments (used by tests and
benchmarks) and ``main(job)``, which the rule's job calls with its files and params
(:mod:`hscvad.jobs`). A stage module imports library modules only, never another stage.
"""
