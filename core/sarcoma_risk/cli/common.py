"""Helpers shared by the command modules: common options and output formatting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from sarcoma_risk.errors import SarcomaRiskError


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv``, configure logging (only here) and run the chosen handler.

    Returns the exit status: 0 ok, 1 a SarcomaRisk error (printed as "error: ..."), 2 usage
    (argparse), 130 interrupted, 141 output closed early (``| head``). Handlers may return 1
    themselves (e.g. a batch with failures).
    """
    import logging
    import os

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    logging.getLogger("numexpr").setLevel(logging.WARNING)  # "NumExpr defaulting to N threads" on every pandas import
    try:
        return int(args.handler(args) or 0)
    except SarcomaRiskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (``| head``) has gone: stop quietly, as command-line tools do, and keep Python
        # from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store PATH|URL`` (default: ``$SARCOMA_RISK_STORE`` or the per-user data folder)."""
    parser.add_argument("--store", default=None, metavar="PATH|URL",
                        help="case store: a SQLite file, postgresql://HOST/DATABASE or a server https://HOST:PORT "
                             "(default: $SARCOMA_RISK_STORE or cases.sqlite in the per-user data folder)")


def add_annotation_class_option(parser: argparse.ArgumentParser, annotations: str) -> None:
    """``--annotation-class NAME`` (repeatable): the tumor's QuPath class in ``annotations``; None = the default."""
    parser.add_argument("--annotation-class", dest="annotation_classes", action="append", default=None, metavar="NAME",
                        help=f"QuPath class of the tumor annotations in {annotations}, exactly as QuPath shows it "
                             "(repeatable; a class also takes the classes derived from it, 'Tumor' takes "
                             "'Tumor: Positive'; default: Tumor)")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: machine-readable output for scripts."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


#: ``--precision`` help for scoring commands, whose reduced precision is checked against fp32 first.
SCORING_PRECISION_HELP = ("fp32, or bf16/fp16 autocast (faster on GPUs and CPUs built for it); a reduced precision is "
                          "first compared with fp32 on a fixed probe batch with the loaded weights, and scoring falls "
                          "back to fp32 with a warning when the outputs move beyond a stated tolerance (default: fp32)")
#: ``--precision`` help for training commands.
TRAINING_PRECISION_HELP = ("fp32, or bf16/fp16 autocast for the forward pass (fp16 with gradient scaling); the "
                           "weights stay float32 (default: fp32)")


def add_device_options(parser: argparse.ArgumentParser, precision_help: str) -> None:
    """``--device auto|cpu|cuda|mps`` and ``--precision fp32|bf16|fp16`` (checked by :mod:`sarcoma_risk.device`)."""
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                        help="where torch runs: auto takes a CUDA GPU when there is one, else Apple's MPS, else the "
                             "CPU; pick a GPU with CUDA_VISIBLE_DEVICES (default: auto)")
    parser.add_argument("--precision", default="fp32", metavar="fp32|bf16|fp16", help=precision_help)


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint-dir DIR`` and ``--resume`` of the training commands."""
    parser.add_argument("--checkpoint-dir", type=Path, default=None, metavar="DIR",
                        help="where each fit saves its state after every epoch (default: OUT/checkpoints)")
    parser.add_argument("--resume", action="store_true",
                        help="continue every fit from its checkpoint (same data and options), e.g. after a crash; "
                             "finished fits are not trained again")


def training_runtime(args: argparse.Namespace, group: Any, device: Any, *, num_workers: int = 0) -> Any:
    """The :class:`~sarcoma_risk.runtime.TrainRuntime` of a training command's options.

    On the ranks other than 0 of a distributed run, logging is kept to warnings, so the run's log
    is rank 0's.
    """
    import logging

    from sarcoma_risk.device import check_precision
    from sarcoma_risk.runtime import TrainRuntime

    if not group.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    return TrainRuntime(device, check_precision(args.precision, device), group, num_workers=num_workers,
                        checkpoint_dir=args.checkpoint_dir if args.checkpoint_dir is not None else args.out / "checkpoints",
                        resume=args.resume)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Pretty, key-sorted JSON on stdout (or ``stream``)."""
    json.dump(data, stream or sys.stdout, indent=2, sort_keys=True, allow_nan=False, default=str)
    (stream or sys.stdout).write("\n")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def format_value(value: Any) -> str:
    """A cell for people: empty for missing, 3 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table for people."""
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
