"""``sarcoma-risk score-mri``: one case's MRI to the radiology section of its record and a Grad-CAM volume.

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
        description="Score the tumor on a case's preoperative MRI with the radiology model: writes the radiology "
                    "section of the case record (score = log relative hazard, percentile in the development "
                    "cohort, tumor volume, provenance) and, with --gradcam, the Grad-CAM volume in the MRI's "
                    "geometry (NRRD or NIfTI by extension).")
    p.add_argument("--case", dest="case_id", required=True, help="pseudonymous case id, e.g. STS-0001")
    p.add_argument("--image", type=Path, required=True, metavar="T2FS",
                   help="T2 fat-suppressed MRI: NIfTI, NRRD, MHA file or DICOM series folder")
    p.add_argument("--image2", type=Path, default=None, metavar="T1CE",
                   help="contrast-enhanced T1 MRI (needed when the model was trained with it)")
    p.add_argument("--mask", type=Path, required=True, help="tumor segmentation: 3D Slicer .seg.nrrd or labelmap")
    p.add_argument("--segment", default=None, metavar="NAME",
                   help="segment name or ID in the .seg.nrrd (default: the first), or label value in a labelmap")
    p.add_argument("--series-uid", default=None, metavar="UID", help="SeriesInstanceUID when --image is a folder "
                   "with several series")
    p.add_argument("--series-uid2", default=None, metavar="UID", help="the same for --image2")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--gradcam", type=Path, default=None, metavar="OUT",
                   help="write the signed Grad-CAM here (.nrrd, .nii.gz, .nii or .mha), same geometry as --image: "
                        "-1 to 1, positive where the tumor region raised the risk, negative where it lowered it")
    add_device_options(p, SCORING_PRECISION_HELP)
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_score_mri)


def cmd_score_mri(args: argparse.Namespace) -> int:
    from sarcoma_risk.device import check_precision, resolve_device
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.radiology.checkpoint import load_model
    from sarcoma_risk.radiology.infer import check_precision_for, score_case, staged_volume, volume_extension
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.record import radiology_section
    from sarcoma_risk.records import open_store, validate_case_id
    from sarcoma_risk.settings import default_weights_dir

    validate_case_id(args.case_id)
    if args.gradcam is not None:
        volume_extension(args.gradcam)
        if not args.gradcam.parent.is_dir():
            raise InvalidInput(f"--gradcam {args.gradcam}: the folder {args.gradcam.parent} does not exist")
    device = resolve_device(args.device)
    check_precision(args.precision, device)
    weights = args.weights if args.weights is not None else default_weights_dir()
    model, entry = load_model(weights)
    precision = check_precision_for(model.to(device), args.precision).used
    case = read_case(args.image, args.mask, args.image2 if "t1ce" in model.preprocess.sequences else None,
                     segment=args.segment, series_uid=args.series_uid, series_uid2=args.series_uid2)
    if args.image2 is not None and "t1ce" not in model.preprocess.sequences:
        print("note: this radiology model uses the T2 alone; --image2 was not used", file=sys.stderr)
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
        print_json({"case_id": args.case_id, "revision": revision, "radiology": section,
                    "gradcam_note": result.gradcam_note})
    else:
        print(f"case {args.case_id}: radiology score {result.score:+.3f} (log relative hazard), "
              f"percentile {result.percentile:.0f} of the development cohort, tumor volume "
              f"{result.tumor_volume_ml:.1f} ml; record revision {revision}")
        if args.gradcam is not None:
            print(f"Grad-CAM written to {args.gradcam} (signed, -1 to 1: positive where the tumor region raised "
                  "the risk above the development average, negative where it lowered it)")
    if result.gradcam_note is not None:
        print(f"note: {result.gradcam_note}", file=sys.stderr)
    return 0
