"""``sarcoma-risk cases list|show|export|history``: browse and export case records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, add_store_option, format_table, print_json
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

    p = sub.add_parser("export", help="all cases as CSV (one row per case) or JSON")
    p.add_argument("--out", type=Path, required=True, help="output file")
    p.add_argument("--format", choices=("csv", "json"), default=None,
                   help="default: from the file extension")
    add_store_option(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("history", help="the audit log: who changed which section when")
    p.add_argument("--case", dest="case_id", default=None)
    p.add_argument("--section", choices=SECTIONS, default=None)
    p.add_argument("--limit", type=int, default=None, help="only the newest N entries")
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
        print(f"no cases in {store.path}")
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
            if key == "provenance" or isinstance(values[key], (dict, list)):
                continue
            print(f"  {key:24s} {values[key]}")
        if isinstance(content.get("slides"), list):
            print(f"  {'slides':24s} {len(content['slides'])}")
    return 0


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
    else:
        for e in entries:
            e["old"] = (e["old_sha256"] or "")[:12]
            e["new"] = (e["new_sha256"] or "")[:12]
        print(format_table(entries, ["id", "at_utc", "user", "host", "case_id", "section", "action", "revision", "old", "new"]))
    return 0
