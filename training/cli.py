"""`python -m training`: options from TrainConfig, user errors as one-line messages (exit 2)."""
from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import Field, fields

from serving import cli
from training.config import TrainConfig
from training.errors import TrainingError


def _add_option(parser: argparse.ArgumentParser, spec: Field, kind: object, default: object) -> None:
    """One `--name` from a TrainConfig field: its type, default and help (field metadata)."""
    flag = "--" + spec.name.replace("_", "-")
    options: dict = {"default": default, "help": spec.metadata["help"]}
    if spec.metadata.get("metavar"):
        options["metavar"] = spec.metadata["metavar"]
    if kind is bool:
        parser.add_argument(flag, action="store_true", help=options["help"])
        return
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list:  # list[str]: one or more values
        options.update(nargs="+", type=args[0])
    elif type(None) in args:  # X | None: a value of type X, or absent
        options["type"] = next(a for a in args if a is not type(None))
    else:
        options["type"] = kind
    parser.add_argument(flag, **options)


def build_parser() -> argparse.ArgumentParser:
    """Every TrainConfig option, built from its field, with its default shown in --help."""
    defaults = TrainConfig()
    types = typing.get_type_hints(TrainConfig)
    parser = cli.command_line("python -m training",
                              "Train the AG News headline CNN (all experiments), evaluate it on the test\n"
                              "split (and on --eval-data) and save the chosen model's artifacts.")
    for spec in fields(TrainConfig):
        _add_option(parser, spec, types[spec.name], getattr(defaults, spec.name))
    # A shortcut, not an option of the run: it rewrites --experiments.
    parser.add_argument("--archived-only", action="store_true",
                        help="run only the --archive experiment, not the comparison (what make serve "
                             "trains on a fresh clone); overrides --experiments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, run the pipeline; a TrainingError prints 'error: ...' and returns 2."""
    args = vars(build_parser().parse_args(argv))
    if args.pop("archived_only"):
        args["experiments"] = [args["archive"]]
    config = TrainConfig(**args)
    # Before torch loads OpenMP: idle threads sleep instead of spinning. Spinning, a thread on
    # a busy machine burns its time slice waiting for a descheduled peer at every operation
    # (measured with 2 threads on a loaded 2-core machine: 1100 ms per batch, 5 ms passive).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from training.cv import cross_validate  # heavy imports after --help
    from training.pipeline import run

    try:
        if config.cv:
            cross_validate(config)
        else:
            run(config)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return cli.USAGE
    except KeyboardInterrupt:
        print("interrupted: the previous artifacts were left as they were", file=sys.stderr)
        return cli.INTERRUPTED
    return 0
