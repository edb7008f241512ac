"""``hscvad run <rule> ...``: one rule's job by hand, outside Snakemake (debugging, notebooks);
``hscvad config``: the whole configuration as a run sees it, every default filled in.

The workflow itself runs every job through ``scripts/run_stage.py`` (Snakemake's ``script:``); this
command builds the same :class:`hscvad.jobs.Job` from the command line. Files are given as
``name=path`` (the rule's input and output names; a name given twice makes a list), the settings
either as ``--params`` JSON or from a config file and dataset (the rule's declared settings)::

    hscvad run velocity --dataset ped2 --input tracks=results/ped2/tracks/test/01.h5 \\
        flow=results/ped2/flow/test/01.h5 --output out=/tmp/velocity_01.h5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from .jobs import Files, Job, run
from .memory import keep_freed_memory
from .rules import RULES


class _Wildcards(SimpleNamespace):
    """The wildcards given on the command line. One that the job reads and was not given names the
    option that gives it (a per-video rule needs ``--split`` and ``--video``)."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"this job needs --{name} (the {{{name}}} of the rule's output path)")


def _named(items: list[str], what: str) -> Files:
    named: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"hscvad run: {what} {item!r}: give it as name=path")
        named.setdefault(name, []).append(path)
    flat = [p for paths in named.values() for p in paths]
    return Files(flat, {k: v[0] if len(v) == 1 else v for k, v in named.items()})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hscvad", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one rule's job")
    r.add_argument("rule", choices=sorted(RULES))
    r.add_argument("--input", nargs="*", default=[], metavar="NAME=PATH")
    r.add_argument("--output", nargs="+", required=True, metavar="NAME=PATH")
    r.add_argument("--params", default=None, help="the rule's settings as JSON (default: from --config)")
    r.add_argument("--config", default="config.yaml", help="config file read when --params is not given")
    r.add_argument("--dataset", default=None, help="the dataset (wildcard) the job is for")
    r.add_argument("--split", default=None)
    r.add_argument("--video", default=None)
    r.add_argument("--extra", default="{}", help="the rule's other params as JSON (e.g. summarise_run's benchmarks)")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--log", default=None, help="the job's log (stderr goes there)")
    c = sub.add_parser("config", help="print the configuration as a run sees it (defaults filled in, each "
                                      "setting described); nothing runs")
    c.add_argument("files", nargs="*", default=["config.yaml"],
                   help="config files, later ones updating earlier ones, as Snakemake's --configfile")
    c.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings as Snakemake's --config gives them (hsc.lr=1e-3 or hsc='{lr: 1e-3}')")
    c.add_argument("--no-comments", action="store_true", help="YAML only, without the descriptions")
    return p


def show_config(files: list[str], sets: list[str], comments: bool = True) -> str:
    """The configuration of ``files`` updated by ``sets``, validated with its defaults, as YAML; with
    ``comments``, each setting's schema description on the line above it."""
    import yaml

    from .config import deep_merge, load_schema, validate

    config: dict = {}
    for f in files:
        config = deep_merge(config, yaml.safe_load(Path(f).read_text()) or {})
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"hscvad config: --set {item!r}: give it as KEY=VALUE")
        node = {}
        target = node
        *parents, last = key.split(".")
        for k in parents:
            target = target.setdefault(k, {})
        target[last] = yaml.safe_load(value) if value.strip().startswith("{") else value
        config = deep_merge(config, node)
    schema = load_schema()
    config = validate(config, schema)
    text = yaml.safe_dump(config, sort_keys=False, width=110)
    if not comments:
        return text
    return _describe(text, schema)


def _describe(text: str, schema: dict) -> str:
    """``text`` (YAML of a config) with each key's schema description as a comment above it."""
    from .config import _subschema

    out, stack = [], []  # (indent, schema node of that level's mapping)
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        key = stripped.split(":", 1)[0] if ":" in stripped and not stripped.startswith("- ") else None
        while stack and stack[-1][0] > indent:
            stack.pop()
        parent = stack[-1][1] if stack and stack[-1][0] == indent else (schema if indent == 0 else None)
        sub = None
        if key is not None and isinstance(parent, dict):
            parent = _subschema(parent, schema)
            sub = parent.get("properties", {}).get(key)
            if sub is None and isinstance(parent.get("additionalProperties"), dict):
                sub = parent["additionalProperties"]
            if sub is not None:
                sub = _subschema(sub, schema)
                desc = " ".join(str(sub.get("description", "")).split())
                if desc:
                    out.append(" " * indent + "# " + desc)
        out.append(line)
        if key is not None:
            stack = [(i, n) for i, n in stack if i < indent] + [(indent, parent)]
            if sub is not None:
                stack.append((indent + 2, sub))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config":
        from .config import ConfigError

        try:
            sys.stdout.write(show_config(args.files, args.set, comments=not args.no_comments))
        except ConfigError as e:
            raise SystemExit(f"Error: {e}") from None
        return 0
    if args.params is not None:
        params = json.loads(args.params)
    else:
        import yaml

        from .config import stage_params, validate

        if args.dataset is None:
            raise SystemExit("hscvad run: give --dataset (or the settings as --params)")
        config = validate(yaml.safe_load(Path(args.config).read_text()))
        params = stage_params(config, args.dataset, args.rule)
    wildcards = {k: getattr(args, k) for k in ("dataset", "split", "video") if getattr(args, k) is not None}
    job = Job(rule=args.rule, input=_named(args.input, "--input"), output=_named(args.output, "--output"),
              params=params, wildcards=_Wildcards(**wildcards), threads=args.threads, device=args.device,
              log=args.log, extra=json.loads(args.extra), own_process=True)
    if argv is None:  # a process of its own (the `hscvad` command), not a call from Python
        keep_freed_memory()
    return run(job)


if __name__ == "__main__":
    sys.exit(main())
