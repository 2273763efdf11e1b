"""``sarcoma-risk fuse``: the fused risk of one case from whatever modalities its record holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, add_store_option, print_json


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "fuse", help="compute the fused risk of one case and write its fusion section",
        description="Read the case record (clinical values, radiology score, pathology score), score it with the "
                    "fusion sub-model of the modalities it has, write the fusion section (risk, group, survival "
                    "at 1/3/5 years, which sub-model, provenance) and print the result.")
    p.add_argument("--case", dest="case_id", required=True, help="case id")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder with manifest.json listing 'fusion' (default: the shipped weights)")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_fuse)


def cmd_fuse(args: argparse.Namespace) -> int:
    from sarcoma_risk.fusion.loading import load_fusion
    from sarcoma_risk.fusion.record import fusion_section
    from sarcoma_risk.records import open_store

    model, info = load_fusion(weights=args.weights)
    with open_store(args.store, mode="r+") as store:
        record = store.get(args.case_id)
        section = fusion_section(model, record, model_version=info["version"], weights_sha256=info["sha256"])
        revision = store.put_section(args.case_id, "fusion", section)
    if args.json:
        print_json({"case_id": args.case_id, "revision": revision, **section})
        return 0
    survival = ", ".join(f"{_horizon(h)}: {p:.0%}" if p is not None else f"{_horizon(h)}: n/a"
                         for h, p in section["survival"].items())
    print(f"case {args.case_id}: {section['group']} risk (log relative hazard {section['risk']:+.2f}, "
          f"higher than {section['percentile']:.0f}% of development cases)")
    print(f"  recurrence-free probability: {survival}")
    print(f"  scored by the {section['model']} sub-model (modalities used: {', '.join(section['modalities_used'])})")
    for note in section["notes"]:
        print(f"  note: {note}")
    return 0


def _horizon(months: str) -> str:
    value = float(months)
    return f"{value / 12:g} y" if value % 12 == 0 else f"{value:g} months"
