"""``sarcoma-risk cases list|show|export|history``: browse and export case records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import (
    add_json_option,
    add_store_option,
    format_table,
    format_value,
    positive_int,
    print_json,
)
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.records import SECTIONS, open_store


def register(commands: argparse._SubParsersAction) -> None:
    cases = commands.add_parser("cases", help="list, show, export case records and their history")
    sub = cases.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="one line per case: which sections it holds")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("show", help="the whole record of one case")
    p.add_argument("case_id")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("export", help="all cases as CSV (one row per case) or JSON",
                       description="Write every case record to one file: CSV with one row per case and flat "
                                   "columns for a spreadsheet (missing sections are empty cells), or JSON with the "
                                   "full records. The clinical columns are the ones 'clinical import' reads.")
    p.add_argument("--out", type=Path, required=True, help="output file")
    p.add_argument("--format", choices=("csv", "json"), default=None,
                   help="default: from the file extension")
    add_store_option(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("history", help="the audit log: who changed which section when",
                       description="The append-only audit log, oldest first: time (UTC), user, host, case, "
                                   "section, action, revision and the sha256 of the old and new content.")
    p.add_argument("--case", dest="case_id", default=None)
    p.add_argument("--section", choices=SECTIONS, default=None)
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the newest N entries")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_history)


def cmd_list(args: argparse.Namespace) -> int:
    with open_store(args.store, mode="r") as store:
        rows = []
        for record in store.records():
            row = {"case_id": record.case_id, "updated_utc": record.updated_utc}
            for section in SECTIONS:
                row[section] = f"r{record.revision(section)}" if record.section(section) is not None else "-"
            fusion = record.fusion or {}
            row["risk_group"] = fusion.get("group")
            rows.append(row)
    if args.json:
        print_json(rows)
    elif rows:
        print(format_table(rows, ["case_id", *SECTIONS, "risk_group", "updated_utc"]))
    else:
        print(f"no cases in {store.location}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(args.store, mode="r") as store:
        record = store.get(args.case_id)
    if args.json:
        print_json(record.to_dict())
        return 0
    print(f"case {record.case_id}  (created {record.created_utc}, updated {record.updated_utc})")
    for section in SECTIONS:
        content = record.section(section)
        if content is None:
            print(f"\n[{section}] missing")
            continue
        prov = content.get("provenance", {})
        print(f"\n[{section}] revision {record.revision(section)}, {prov.get('model_name')} "
              f"{prov.get('model_version')}, {prov.get('timestamp_utc')} by {prov.get('user')}@{prov.get('host')}")
        values = content.get("values", content)
        for key in sorted(values):
            if key != "provenance":
                print(f"  {key:24s} {_readable(values[key])}")
    return 0


def _readable(value: object) -> str:
    """One line for a value: lists of objects as counts, other lists joined, objects as k=v."""
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            return f"{len(value)} item(s)"
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_readable(v)}" for k, v in sorted(value.items()))
    return format_value(value)


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or args.out.suffix.lstrip(".").lower()
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"--out {args.out}: cannot tell the format from the extension; add --format csv or json")
    with open_store(args.store, mode="r") as store:
        n = store.write_csv(args.out) if fmt == "csv" else store.write_json(args.out)
    print(f"exported {n} case(s) to {args.out}", file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with open_store(args.store, mode="r") as store:
        entries = store.history(args.case_id, args.section, args.limit)
    if args.json:
        print_json(entries)
    elif not entries:
        print("no audit entries" + (f" for case {args.case_id}" if args.case_id else ""))
    else:
        for e in entries:
            e["old"] = (e["old_sha256"] or "")[:12]
            e["new"] = (e["new_sha256"] or "")[:12]
        print(format_table(entries, ["id", "at_utc", "user", "host", "case_id", "section", "action", "revision", "old", "new"]))
    return 0
