"""``sarcoma-risk clinical import|set``: validated clinical data into the case records."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, add_store_option, print_json
from sarcoma_risk.clinical.csvimport import read_clinical_csv
from sarcoma_risk.clinical.staging import DERIVED, GRADE_COMPONENTS
from sarcoma_risk.clinical.variables import VARIABLES, check_clinical
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput
from sarcoma_risk.provenance import Provenance, fingerprint, software_version
from sarcoma_risk.records import open_store

MODEL_NAME = "clinical-entry"


def register(commands: argparse._SubParsersAction) -> None:
    clinical = commands.add_parser("clinical", help="import or edit clinical data")
    sub = clinical.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("import", help="import a clinical CSV (all rows or none)",
                       description="Validate every row of a clinical CSV (UTF-8, comma or semicolon "
                                   "separated; one row per case, a case_id column and the clinical columns, see "
                                   "'sarcoma-risk clinical variables') and import them in one transaction. When any "
                                   "row is invalid, every problem is listed (row, column, value, what is expected) "
                                   "and nothing is imported, unless --valid-only is given. Rows whose values are "
                                   "already in the store are left as they are (no new revision).")
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
    if table.ignored_columns:
        print(f"note: {len(table.ignored_columns)} column(s) are not clinical variables and were not read: "
              f"{', '.join(table.ignored_columns)}", file=sys.stderr)
    report: dict = {"rows": table.n_rows, "valid": len(table.valid), "problems": [
        {"row": p.row, "case_id": p.case_id, "column": p.column, "value": p.value, "expected": p.expected,
         "message": str(p)} for p in table.problems]}
    if table.problems:
        print(f"{args.file.name}: {len(table.problems)} problem(s) in {table.n_rows} row(s) "
              "(row 1 is the first row under the header):", file=sys.stderr)
        for problem in table.problems:
            print(f"  {problem}", file=sys.stderr)
        if not args.valid_only:
            print("nothing was imported (fix the rows, or use --valid-only to import the valid ones)", file=sys.stderr)
            report.update(created=0, updated=0, unchanged=0, imported=0, dry_run=args.dry_run)
            if args.json:
                print_json(report)
            return 1
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    if args.dry_run:
        stored = _stored_clinical(args.store, [case_id for case_id, _ in table.valid])
        for case_id, values in table.valid:
            counts[_compare(stored.get(case_id), values)] += 1
    elif table.valid:
        source = fingerprint(args.file)
        # One transaction: every valid row is imported, or (on any error) none.
        with open_store(args.store, mode="a") as store, store.transaction():
            for case_id, values in table.valid:
                outcome = _compare(store.get(case_id).clinical if store.exists(case_id) else None, values)
                counts[outcome] += 1
                if outcome != "unchanged":
                    provenance = Provenance(MODEL_NAME, software_version(), None, inputs={"table": source},
                                            parameters={"source": "csv"})
                    store.put_section(case_id, "clinical", {"values": values, "provenance": provenance.to_dict()})
    report.update(counts, imported=0 if args.dry_run else counts["created"] + counts["updated"], dry_run=args.dry_run)
    if args.json:
        print_json(report)
    else:
        parts = f"{counts['created']} new, {counts['updated']} changed, {counts['unchanged']} unchanged"
        skipped = f"; {table.n_rows - len(table.valid)} invalid row(s) skipped" if table.problems else ""
        verb = "dry run, nothing written: would import" if args.dry_run else "imported"
        print(f"{args.file.name}: {verb} {len(table.valid)} case(s) ({parts}){skipped}")
    return 0 if table.valid or not table.problems else 1  # --valid-only with no valid row is a failure


def _compare(current: dict | None, values: dict) -> str:
    """created / updated / unchanged: re-importing the same table writes no new revisions."""
    if current is None:
        return "created"
    return "unchanged" if current.get("values") == values else "updated"


def _stored_clinical(store: str | None, case_ids: list[str]) -> dict[str, dict | None]:
    """The clinical sections a dry run compares against, read without changing anything."""
    from sarcoma_risk.records.location import StoreKind, StoreLocation
    from sarcoma_risk.settings import default_store

    where = StoreLocation.parse(store if store is not None else default_store())
    if where.kind is StoreKind.SQLITE and not Path(where.target).exists():
        return {}  # no store yet: every row would be new
    with open_store(where, mode="r") as opened:
        return {c: opened.get(c).clinical for c in case_ids if opened.exists(c)}


def cmd_set(args: argparse.Namespace) -> int:
    changes: dict[str, str] = {}
    for item in args.values:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(f"{item!r}: expected NAME=VALUE, e.g. margin=R1")
        if name not in VARIABLES:
            close = difflib.get_close_matches(name, list(VARIABLES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidClinicalData(f"{name!r} is not a clinical variable; known: {', '.join(VARIABLES)}.{hint}")
        changes[name] = value.strip()

    def merge(current: dict | None) -> dict:
        values = dict((current or {}).get("values", {}))
        for derived in DERIVED:
            values.pop(derived, None)
        for name, value in changes.items():
            if value == "":
                values.pop(name, None)
            else:
                values[name] = value
        if any(c in changes for c in GRADE_COMPONENTS) and "fnclcc_grade" not in changes:
            # A changed component re-derives the grade instead of clashing with the stored one.
            values.pop("fnclcc_grade", None)
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
