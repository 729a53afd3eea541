"""The `aiscaler` command.

Each subcommand lives in its own module, which exposes `HELP` (one line), `add_arguments(parser)`
and `run(args) -> int`. Modules are imported when the parser is built, so they keep heavy imports
(torch, kubernetes, kopf) inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from aiscaler import __version__
from aiscaler.inputs import EXIT_USAGE, InputError, fail

# name -> module implementing it; the order is the order shown in --help.
SUBCOMMANDS: dict[str, str] = {
    "run": "aiscaler.handlers.cli",
    "simulate": "aiscaler.sim.cli",
    "backtest": "aiscaler.forecast.backtest_cli",
    "train": "aiscaler.forecast.train_cli",
    "export": "aiscaler.metrics.export_cli",
    "validate": "aiscaler.validate",
    "crds": "aiscaler.api.crdgen",
}

DESCRIPTION = """\
aiscaler autoscales GPU inference services and elastic training jobs on Kubernetes ahead of
demand: it forecasts demand, plans replicas, GPUs and nodes for the whole cluster at once, and
starts capacity a cold start before the demand arrives."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line that says where the options are."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aiscaler",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aiscaler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except InputError as error:  # what a command found wrong with its input, on one line
        return fail(args.command, error)


if __name__ == "__main__":
    sys.exit(main())
