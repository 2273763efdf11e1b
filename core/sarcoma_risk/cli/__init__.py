"""The ``sarcoma-risk`` command line.

Each command group lives in its own module of this package with a ``register(commands)`` function
(and ``register_train(train)`` for ``sarcoma-risk train <what>``). Heavy libraries are imported by
the handlers, so ``sarcoma-risk cases list`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Sequence


#: Modules of sarcoma_risk.cli that add commands, in the order they appear in --help.
COMMAND_MODULES = ("cases", "clinical", "demo", "synth", "cohort", "train_fusion", "evaluate", "fuse", "score_mri", "train_radiology", "score_slide", "score_cohort", "train_pathology", "train_all", "federated", "serve", "users")


def build_parser() -> argparse.ArgumentParser:
    from sarcoma_risk import __version__

    parser = argparse.ArgumentParser(
        prog="sarcoma-risk",
        description="Recurrence risk for soft tissue sarcoma from clinical data, MRI and whole-slide images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train a model on a cohort manifest")
    train_commands = train.add_subparsers(dest="what", metavar="MODEL", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"sarcoma_risk.cli.{name}")
        if hasattr(module, "register"):
            module.register(commands)
        if hasattr(module, "register_train"):
            module.register_train(train_commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    from sarcoma_risk.cli.common import run_cli

    return run_cli(build_parser(), argv)
