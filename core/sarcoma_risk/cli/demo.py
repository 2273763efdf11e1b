"""``sarcoma-risk demo``: one phantom case through the whole product, with a summary and an HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "demo", help="run the product end to end on a phantom case (make demo)",
        description="Import the demo clinical table, render a phantom case of a new seed (MRI, slide, clinical "
                    "data), score its MRI through the 3D Slicer module's logic and its slide through the QuPath "
                    "bridge, fuse everything with the shipped weights, print a summary and write report.html "
                    "(MRI with Grad-CAM, slide heatmap, nomogram, validation Kaplan-Meier curves). A second run "
                    "overwrites the folder's files; the case store keeps its records and adds revisions.")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the demo store and report")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--seed", type=int, default=None, help="seed of the phantom case (default: the demo's own)")
    p.set_defaults(handler=cmd_demo)


def demo_clinical_table() -> Path:
    """The demo clinical table shipped as package data (a few cases to browse in the store)."""
    from sarcoma_risk.demo.run import DEMO_TABLE

    return DEMO_TABLE


def cmd_demo(args: argparse.Namespace) -> int:
    from sarcoma_risk.demo.run import run_demo

    run_demo(args.out, weights=args.weights, seed=args.seed)
    return 0
