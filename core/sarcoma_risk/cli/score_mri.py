"""``sarcoma-risk score-mri``: one case's MRI to the radiology section of its record and a Grad-CAM volume.

The case is scored by the radiology model of the sequences given (:mod:`sarcoma_risk.sequences`):
T2FS and T1CE together, the T2FS alone or the T1CE alone; the record's radiology section and the
output name that model (``model``, ``sequence_set``), and the fusion uses the score only with
sub-models fitted on that model's scores.

This command is also the interface of the 3D Slicer module, which exports the volumes and the
segment to files, runs it in a separate process with ``--json`` and loads the Grad-CAM file as an
overlay. Hence: with ``--json`` stdout holds exactly one JSON object (logs go to stderr); on any
error the exit status is 1, stderr starts with ``error:``, and neither the record nor the Grad-CAM
path is touched (no store file is created either). The case id, the output format and the weights
are checked before the images are read.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from sarcoma_risk.cli.common import (
    SCORING_PRECISION_HELP,
    add_device_options,
    add_json_option,
    add_store_option,
    print_json,
)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "score-mri", help="radiology score and Grad-CAM of one case's MRI, saved in its record",
        description="Score the tumor on a case's preoperative MRI with the radiology model of the sequences given "
                    "(T2FS and T1CE, the T2FS alone, or the T1CE alone): writes the radiology section of the case "
                    "record (score = log relative hazard, percentile in the development cohort, tumor volume, the "
                    "model that scored it, provenance) and, with --gradcam, the Grad-CAM volume in the MRI's "
                    "geometry (NRRD or NIfTI by extension).")
    p.add_argument("--case", dest="case_id", required=True, help="pseudonymous case id, e.g. STS-0001")
    p.add_argument("--t2fs", "--image", dest="t2fs", type=Path, default=None, metavar="T2FS",
                   help="T2 fat-suppressed MRI: NIfTI, NRRD, MHA file or DICOM series folder")
    p.add_argument("--t1ce", "--image2", dest="t1ce", type=Path, default=None, metavar="T1CE",
                   help="contrast-enhanced T1 MRI (same formats); give either sequence or both")
    p.add_argument("--mask", type=Path, required=True, help="tumor segmentation: 3D Slicer .seg.nrrd or labelmap")
    p.add_argument("--segment", default=None, metavar="NAME",
                   help="segment name or ID in the .seg.nrrd (default: the first), or label value in a labelmap")
    p.add_argument("--series-uid", default=None, metavar="UID", help="SeriesInstanceUID when --t2fs is a folder "
                   "with several series")
    p.add_argument("--series-uid2", default=None, metavar="UID", help="the same for --t1ce")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--gradcam", type=Path, default=None, metavar="OUT",
                   help="write the signed Grad-CAM here (.nrrd, .nii.gz, .nii or .mha), same geometry as the first "
                        "sequence scored (the T2FS, else the T1CE): -1 to 1, positive where the tumor region raised "
                        "the risk, negative where it lowered it")
    add_device_options(p, SCORING_PRECISION_HELP)
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_score_mri)


def cmd_score_mri(args: argparse.Namespace) -> int:
    from sarcoma_risk.device import check_precision, resolve_device
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.radiology.checkpoint import available_sets, load_model, model_name
    from sarcoma_risk.radiology.infer import check_precision_for, score_case, staged_volume, volume_extension
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.record import radiology_section
    from sarcoma_risk.records import open_store, validate_case_id
    from sarcoma_risk.sequences import SET_LABELS, choose_set, set_sequences
    from sarcoma_risk.settings import default_weights_dir

    validate_case_id(args.case_id)
    given = [name for name in ("t2fs", "t1ce") if getattr(args, name) is not None]
    if not given:
        raise InvalidInput("no MRI given: pass --t2fs (T2 fat-suppressed), --t1ce (contrast-enhanced T1) or both")
    if args.gradcam is not None:
        volume_extension(args.gradcam)
        if not args.gradcam.parent.is_dir():
            raise InvalidInput(f"--gradcam {args.gradcam}: the folder {args.gradcam.parent} does not exist")
    device = resolve_device(args.device)
    check_precision(args.precision, device)
    weights = args.weights if args.weights is not None else default_weights_dir()
    sets = available_sets(weights)
    chosen = choose_set(given, sets)
    if chosen is None:
        raise InvalidInput(f"no radiology model for the sequence(s) given ({', '.join(given)}): the weights in "
                           f"{weights} have models for {', '.join(SET_LABELS[s] for s in sets)}")
    used = set_sequences(chosen)
    model, entry = load_model(weights, chosen)
    precision = check_precision_for(model.to(device), args.precision).used
    case = read_case(args.t2fs if "t2fs" in used else None, args.mask, args.t1ce if "t1ce" in used else None,
                     segment=args.segment, series_uid=args.series_uid, series_uid2=args.series_uid2)
    for name in given:
        if name not in used:
            print(f"note: --{name} was not used: the weights have no radiology model for {' and '.join(given)} "
                  f"together; scored with the {SET_LABELS[chosen]} model", file=sys.stderr)
    result = score_case(model, case, gradcam=args.gradcam is not None, precision=precision)
    section = radiology_section(result, case.fingerprints, entry, segment=args.segment, precision=precision,
                                device=device.type)
    with open_store(args.store, mode="a") as store:
        # The Grad-CAM file appears only once the record is written (moved into place inside the
        # transaction; a failed rename rolls the record back).
        with store.transaction(), contextlib.ExitStack() as stack:
            if result.gradcam is not None:
                section["gradcam_sha256"] = stack.enter_context(staged_volume(result.gradcam, args.gradcam))
            revision = store.put_section(args.case_id, "radiology", section)
    if args.json:
        # gradcam_note: why the Grad-CAM is 0 everywhere (None when it shows something), for the caller to show.
        print_json({"case_id": args.case_id, "revision": revision, "radiology": section, "sequence_set": chosen,
                    "gradcam_note": result.gradcam_note})
    else:
        print(f"case {args.case_id}: radiology score {result.score:+.3f} (log relative hazard) from the "
              f"{SET_LABELS[chosen]} model ({model_name(chosen)}), percentile {result.percentile:.0f} of the "
              f"development cohort, tumor volume {result.tumor_volume_ml:.1f} ml; record revision {revision}")
        if args.gradcam is not None:
            print(f"Grad-CAM written to {args.gradcam} (signed, -1 to 1: positive where the tumor region raised "
                  "the risk above the development average, negative where it lowered it)")
    if result.gradcam_note is not None:
        print(f"note: {result.gradcam_note}", file=sys.stderr)
    return 0
