"""``sarcoma-risk clinical import|set``: validated clinical data into the case records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, add_store_option, print_json
from sarcoma_risk.clinical import VARIABLES, check_clinical, read_clinical_csv
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput
from sarcoma_risk.provenance import Provenance, fingerprint, software_version
from sarcoma_risk.records import open_store

MODEL_NAME = "clinical-entry"


def register(commands: argparse._SubParsersAction) -> None:
    clinical = commands.add_parser("clinical", help="import or edit clinical data")
    sub = clinical.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("import", help="import a clinical CSV (all rows or none)",
                       description="Validate every row of a clinical CSV (UTF-8; one row per case, a case_id "
                                   "column and the clinical columns) and import them in one transaction. When any "
                                   "row is invalid, every problem is listed and nothing is imported, unless "
                                   "--valid-only is given.")
    p.add_argument("file", type=Path)
    p.add_argument("--valid-only", action="store_true", help="import the valid rows and skip the invalid ones")
    p.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("set", help="set clinical values of one case (NAME=VALUE ...)")
    p.add_argument("--case", dest="case_id", required=True)
    p.add_argument("values", nargs="+", metavar="NAME=VALUE", help=f"variables: {', '.join(VARIABLES)}")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_set)

    p = sub.add_parser("variables", help="the clinical variables, their units, ranges and categories")
    add_json_option(p)
    p.set_defaults(handler=cmd_variables)


def cmd_import(args: argparse.Namespace) -> int:
    table = read_clinical_csv(args.file)
    for column in table.ignored_columns:
        print(f"note: column {column!r} is not a clinical variable and was not imported", file=sys.stderr)
    report = {"rows": table.n_rows, "valid": len(table.valid), "problems": [str(p) for p in table.problems]}
    if table.problems:
        print(f"{args.file}: {len(table.problems)} problem(s) in {table.n_rows} row(s):", file=sys.stderr)
        for problem in table.problems:
            print(f"  {problem}", file=sys.stderr)
        if not args.valid_only:
            print("nothing was imported (fix the rows, or use --valid-only to import the valid ones)", file=sys.stderr)
            report["imported"] = 0
            if args.json:
                print_json(report)
            return 1
    imported = 0
    if not args.dry_run and table.valid:
        source = fingerprint(args.file)
        with open_store(args.store, mode="a") as store, store.transaction():
            for case_id, values in table.valid:
                provenance = Provenance(MODEL_NAME, software_version(), None, inputs={"table": source},
                                        parameters={"source": "csv"})
                store.put_section(case_id, "clinical", {"values": values, "provenance": provenance.to_dict()})
                imported += 1
    report["imported"] = imported
    if args.json:
        print_json(report)
    else:
        verb = "would import" if args.dry_run else "imported"
        print(f"{verb} {len(table.valid) if args.dry_run else imported} case(s) from {args.file}")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    changes: dict[str, str] = {}
    for item in args.values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"{item!r}: expected NAME=VALUE, e.g. margin=R1")
        if name not in VARIABLES:
            raise InvalidClinicalData(f"{name!r} is not a clinical variable; known: {', '.join(VARIABLES)}")
        changes[name] = value

    def merge(current: dict | None) -> dict:
        values = dict((current or {}).get("values", {}))
        for derived in ("ajcc_t", "ajcc_stage"):
            values.pop(derived, None)
        for name, value in changes.items():
            if value == "":
                values.pop(name, None)
            else:
                values[name] = value
        clean = check_clinical(values, case_id=args.case_id)
        provenance = Provenance(MODEL_NAME, software_version(), None, parameters={"source": "manual", "set": changes})
        return {"values": clean, "provenance": provenance.to_dict()}

    with open_store(args.store, mode="a") as store:
        revision = store.update_section(args.case_id, "clinical", merge)
        record = store.get(args.case_id)
    if args.json:
        print_json(record.clinical)
    else:
        print(f"case {args.case_id}: clinical section now at revision {revision}")
    return 0


def cmd_variables(args: argparse.Namespace) -> int:
    rows = [{"name": v.name, "description": v.description, "required": v.required, "expected": v.expected()}
            for v in VARIABLES.values()]
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            req = "required" if row["required"] else "optional"
            print(f"{row['name']:16s} {req:8s} {row['expected']}\n{'':25s} {row['description']}")
    return 0
