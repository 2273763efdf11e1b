"""``sarcoma-risk demo``: the main job on embedded data, for a first look at the product."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarcoma_risk.cli.common import format_table


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="run the product end to end on embedded demo data")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="folder for the demo store and report")
    p.set_defaults(handler=cmd_demo)


def demo_clinical_table() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "demo_clinical.csv"


def cmd_demo(args: argparse.Namespace) -> int:
    from sarcoma_risk.cli import main

    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "demo-store.sqlite"
    table = demo_clinical_table()
    print(f"[1/2] importing the demo clinical table {table.name} into {store}")
    status = main(["clinical", "import", str(table), "--store", str(store)])
    if status:
        return status
    print("[2/2] the case records now in the store:")
    from sarcoma_risk.records import open_store

    with open_store(store, mode="r") as cases:
        rows = []
        for record in cases.records():
            values = record.clinical["values"] if record.clinical else {}
            rows.append({"case_id": record.case_id, "grade": values.get("fnclcc_grade"),
                         "stage": values.get("ajcc_stage", "n/a"), "size_cm": values.get("tumor_size_cm"),
                         "subtype": values.get("subtype"), "margin": values.get("margin"),
                         "revision": record.revision("clinical")})
    print(format_table(rows, ["case_id", "grade", "stage", "size_cm", "margin", "subtype", "revision"]))
    print(f"\nstore: {store}  (try: sarcoma-risk cases show DEMO-001 --store {store})")
    return 0
