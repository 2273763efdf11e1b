"""What a worker does with one job: score it, unless the case record already holds its result.

:func:`run_job` runs on a Dask worker, or in the client process when there is no cluster. It
scores exactly as ``score-mri`` (without Grad-CAM) and ``score-slide`` do, through the same
functions, and returns plain data (:class:`~.jobs.JobOutcome`) for the client to write.

- One job at a time per process (a lock): a worker holds one slide or one MRI in memory whatever
  its number of threads, and its threads all go to that job's model.
- The models are loaded once per process and kept, keyed by the weights' sha256 that the client
  checked; a worker that finds other weights at the path (changed during the run, or another
  folder under the same name on that machine) fails the job instead of scoring with them.
- A skipped job is decided on content: the inputs' sha256 and the weights' sha256 against the
  record's provenance (a moved or renamed file is still recognised; an edited one is not), and for
  a slide the annotation classes its tumor region was taken with.
- Every error of a case becomes a failed outcome with its message (an unexpected one also with
  its traceback, logged on the worker), so one bad case never stops the run.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from sarcoma_risk.cohortscore.jobs import Job, JobOutcome, MRIJob, Modality, SlideJob, Status
from sarcoma_risk.device import check_precision, resolve_device
from sarcoma_risk.errors import InvalidInput, InvalidModel, SarcomaRiskError
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES
from sarcoma_risk.pathology.pipeline import PATCH_MODEL, SIGNATURE_MODEL, load_models
from sarcoma_risk.pathology.record import holds_slide
from sarcoma_risk.pathology.regions import region_sha256
from sarcoma_risk.pathology.scoring import score_case_slide
from sarcoma_risk.pathology.slide import slide_fingerprint
from sarcoma_risk.provenance import fingerprint as file_fingerprint
from sarcoma_risk.radiology.checkpoint import load_model, model_name
from sarcoma_risk.radiology.infer import check_precision_for, score_case
from sarcoma_risk.radiology.io import case_fingerprints, read_case
from sarcoma_risk.radiology.record import radiology_section, section_is_current
from sarcoma_risk.sequences import SEQUENCE_SETS, choose_set, set_sequences

log = logging.getLogger(__name__)

#: Written into the section provenance of slides scored by a cohort run.
WRITTEN_BY = "sarcoma-risk score-cohort"

_ONE_JOB_AT_A_TIME = threading.Lock()
_MODELS: dict[Modality, tuple[tuple[str, ...], Any]] = {}


@dataclass(frozen=True)
class RunSettings:
    """What every job of a run shares: where the weights are and which sha256 they must have, where outputs go.

    ``weights`` maps a model name of the weights manifest (``radiology-t2fs+t1ce`` and the other
    sequence sets' models, ``pathology-patch``, ``pathology-signature``) to the sha256 the client loaded. ``device`` (auto, cpu, cuda, mps) is
    resolved on each worker, so ``auto`` takes the GPU of a worker that has one; ``precision`` is
    checked against fp32 there, as ``score-mri`` and ``score-slide`` do. ``annotation_classes`` are
    the QuPath classes that make a slide's tumor region in its annotation file.
    """

    weights_dir: Path
    weights: Mapping[str, str]
    out_dir: Path
    annotation_classes: tuple[str, ...] = DEFAULT_TUMOR_CLASSES
    batch_size: int = 64
    reader_threads: int = 2
    device: str = "auto"
    precision: str = "fp32"


def run_job(job: Job, settings: RunSettings) -> JobOutcome:
    """Score ``job`` (or find it already in the record); never raises for a problem of the case."""
    with _ONE_JOB_AT_A_TIME:
        started = time.monotonic()
        host = socket.gethostname()
        try:
            if isinstance(job, MRIJob):
                outcome = _score_mri(job, settings)
            else:
                outcome = _score_slide(job, settings)
        except SarcomaRiskError as exc:
            outcome = JobOutcome(job, Status.FAILED, message=str(exc))
        except Exception as exc:  # a batch reports any failure of a case and goes on (style habit 9)
            log.error("case %s, %s: unexpected error", job.case_id, job.label(), exc_info=True)
            outcome = JobOutcome(job, Status.FAILED, message=f"{type(exc).__name__}: {exc}",
                                 detail=traceback.format_exc())
        return replace(outcome, seconds=round(time.monotonic() - started, 3), host=host)


def _models(modality: Modality, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
    """The models of ``modality`` for ``key`` (weights folder and sha256), loaded once per process."""
    cached = _MODELS.get(modality)
    if cached is None or cached[0] != key:
        _MODELS.pop(modality, None)  # free the old models before loading others
        _MODELS[modality] = (key, load())
    return _MODELS[modality][1]


def _check_sha(settings: RunSettings, name: str, found: str | None) -> None:
    expected = settings.weights.get(name)
    if found != expected:
        raise InvalidModel(f"{settings.weights_dir}: {name} has sha256 {str(found)[:12]}... on host "
                           f"{socket.gethostname()}, but the run started with {str(expected)[:12]}...: the weights "
                           "changed during the run, or this machine has another folder at that path")


def _score_mri(job: MRIJob, settings: RunSettings) -> JobOutcome:
    # As score-mri: the model of the largest sequence set the case has (the client checked the weights
    # of every set it has), and only that set's sequences are read and part of the inputs.
    given = [name for name, path in (("t2fs", job.t2fs), ("t1ce", job.t1ce)) if path is not None]
    chosen = choose_set(given, [s for s in SEQUENCE_SETS if model_name(s) in settings.weights])
    if chosen is None:
        raise InvalidInput(f"no radiology model for the sequence(s) of this case ({', '.join(given)}) in "
                           f"{settings.weights_dir}")
    name, used = model_name(chosen), set_sequences(chosen)
    key = (str(settings.weights_dir), name, str(settings.weights.get(name)), settings.device, settings.precision)
    model, entry, device, precision = _models(Modality.RADIOLOGY, key, lambda: _load_radiology(settings, chosen))
    _check_sha(settings, name, entry["sha256"])
    t2fs = job.t2fs if "t2fs" in used else None
    t1ce = job.t1ce if "t1ce" in used else None
    fingerprints = case_fingerprints(t2fs, job.mask, t1ce)
    if section_is_current(job.recorded, weights_sha256=entry["sha256"], fingerprints=fingerprints,
                          segment=job.segment):
        return JobOutcome(job, Status.SKIPPED)
    case = read_case(t2fs, job.mask, t1ce, segment=job.segment)
    result = score_case(model, case, gradcam=False, precision=precision)
    return JobOutcome(job, Status.SCORED, section=radiology_section(result, case.fingerprints, entry,
                                                                      segment=job.segment, precision=precision,
                                                                      device=device.type))


def _load_radiology(settings: RunSettings, sequence_set: str) -> tuple[Any, dict[str, Any], Any, Any]:
    """A sequence set's radiology model on this worker's device, its weights entry, the device and the
    precision to score in."""
    device = resolve_device(settings.device)
    check_precision(settings.precision, device)
    model, entry = load_model(settings.weights_dir, sequence_set)
    return model, entry, device, check_precision_for(model.to(device), settings.precision).used


def _score_slide(job: SlideJob, settings: RunSettings) -> JobOutcome:
    key = (str(settings.weights_dir), str(settings.weights.get(PATCH_MODEL)),
           str(settings.weights.get(SIGNATURE_MODEL)), settings.device, settings.precision)
    models = _models(Modality.PATHOLOGY, key, lambda: load_models(settings.weights_dir, precision=settings.precision,
                                                                  device=settings.device))
    _check_sha(settings, PATCH_MODEL, models.model_sha256)
    _check_sha(settings, SIGNATURE_MODEL, models.signature_sha256)
    fingerprint = slide_fingerprint(job.slide)
    # The record names a tumor region by the file's sha256 and the classes taken from it (regions.region_sha256).
    region = (region_sha256(file_fingerprint(job.annotation)["sha256"], settings.annotation_classes)
              if job.annotation is not None else None)
    if holds_slide(job.recorded, slide_sha256=fingerprint["sha256"], annotation_sha256=region, models=models):
        return JobOutcome(job, Status.SKIPPED)
    scored = score_case_slide(job.case_id, job.slide, models, out_dir=settings.out_dir, annotation=job.annotation,
                              annotation_classes=settings.annotation_classes,
                              batch_size=settings.batch_size, workers=settings.reader_threads, progress=False,
                              written_by=WRITTEN_BY, slide_fingerprint=fingerprint)
    return JobOutcome(job, Status.SCORED, entry=scored.entry, provenance=scored.provenance)
