"""A cohort scored end to end: manifest in, every case's radiology and pathology sections out.

:func:`score_cohort` reads the manifest, checks the weights on this computer (a missing or altered
model stops the run before any work is sent out), reads what each case record holds, sends the
jobs to the engine (:mod:`.engine`), and as the jobs of a unit (a case's section) come back, writes
the unit through :class:`~.writer.RecordWriter` and reports it. A failed case is reported with its
id and the run goes on; a rerun skips what the records already hold, so an interrupted run resumes
where it stopped. The run metadata (:mod:`.runlog`) tell what happened to every unit.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from sarcoma_risk.choices import check_choice
from sarcoma_risk.cohort import read_manifest
from sarcoma_risk.cohortscore.engine import connect
from sarcoma_risk.cohortscore.jobs import JobOutcome, Modality, Status, plan_jobs
from sarcoma_risk.cohortscore.runlog import RunLog, run_metadata_path
from sarcoma_risk.cohortscore.worker import RunSettings
from sarcoma_risk.cohortscore.writer import RecordWriter
from sarcoma_risk.device import Device, Precision, check_precision, resolve_device
from sarcoma_risk.errors import (AuthenticationRequired, PermissionDenied, SarcomaRiskError, StoreError,
                                  WeightsError)
from sarcoma_risk.pathology.classes import check_class_names
from sarcoma_risk.pathology.pipeline import PATCH_MODEL, SIGNATURE_MODEL, load_models
from sarcoma_risk.radiology.checkpoint import available_sets, load_model, model_name

ALL_MODALITIES = (Modality.RADIOLOGY, Modality.PATHOLOGY)


@dataclass
class UnitReport:
    """What happened to one section of one case, and to each of its jobs."""

    case_id: str
    modality: Modality
    status: Status
    message: str | None = None
    score: float | None = None
    revision: int | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        """One line for people."""
        head = f"{self.case_id} {self.modality.value}"
        if self.status is Status.SCORED:
            return f"{head}: scored {self.score:+.3f} (log relative hazard), record revision {self.revision}"
        if self.status is Status.SKIPPED:
            return f"{head}: skipped, the record already holds this result"
        return f"{head}: FAILED: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "modality": self.modality.value, "status": self.status.value,
                "message": self.message, "score": self.score, "revision": self.revision, "jobs": self.jobs}


@dataclass
class CohortRun:
    """The units of a run in the order they finished, and the run-metadata file."""

    units: list[UnitReport]
    metadata: Path

    def count(self, status: Status) -> int:
        return sum(1 for u in self.units if u.status is status)

    @property
    def failed(self) -> list[UnitReport]:
        return [u for u in self.units if u.status is Status.FAILED]


@dataclass(frozen=True)
class _ClientModels:
    """What this computer checked of the weights: name -> {sha256, version}, and the slide models for merging."""

    weights: dict[str, dict[str, str]]
    pathology: Any = None  # sarcoma_risk.pathology.pipeline.PathologyModels


def score_cohort(manifest: str | Path, *, weights_dir: str | Path, out_dir: str | Path,
                 store: str | Path | None = None, cluster: str | None = None,
                 modalities: Iterable[Modality | str] = ALL_MODALITIES, rescore: bool = False,
                 annotation_classes: Sequence[str] | None = None, batch_size: int = 64,
                 reader_threads: int = 2, device: str = "auto", precision: str = "fp32",
                 arguments: Mapping[str, Any] | None = None,
                 on_unit: Callable[[UnitReport], None] | None = None) -> CohortRun:
    """Score every MRI and slide of ``manifest`` into the case store; returns what happened to each unit.

    Parameters
    ----------
    manifest : path
        A cohort manifest (docs/manifest.md); clinical and outcome columns are not needed here (a
        cohort without follow-up yet may leave out ``centre``, ``split``, ``time_months`` and ``event``).
    weights_dir : path
        The weights folder (radiology and/or pathology models), reachable at this path from every worker.
    out_dir : path
        Tile outputs of the slides (as ``score-slide --out``), the tile cache and ``runs/`` (run metadata).
    store : path or store URL, optional
        The case store, as ``--store`` of every command: a SQLite path, ``postgresql://`` or a server's
        ``https://`` URL (default: ``$SARCOMA_RISK_STORE`` or the per-user one). Only this process opens it.
    cluster : str, optional
        A Dask scheduler address (``tcp://host:port``); None runs the jobs in this process.
    modalities : radiology and/or pathology
    rescore : bool
        Score again what the records already hold.
    annotation_classes : sequence of str, optional
        The QuPath classes of the tumor annotations in the manifest's annotation files (as
        ``score-slide --annotation-class``; None: "Tumor"); a slide tiled within other classes is
        scored again.
    device, precision : str
        As ``--device`` and ``--precision`` of ``score-mri``/``score-slide``, resolved and checked on
        each worker (``auto`` takes a worker's GPU when it has one).
    arguments : mapping
        The command's arguments, copied into the run metadata.
    on_unit : callable
        Called with each :class:`UnitReport` once written (the command prints it).

    Raises
    ------
    InvalidManifest, InvalidInput, DeviceUnavailable, WeightsError, ClusterError, StoreError, PermissionDenied
        Before any job runs. Problems of one case never raise: they are failed units. A write that
        the store refuses for a reason not of the case (StoreError, AuthenticationRequired,
        PermissionDenied) stops the run, keeping what was written.
    """

    cohort = read_manifest(manifest, require_outcome=False)
    chosen = [check_choice(m, Modality, "modality") for m in modalities]
    device = check_choice(device, Device, "device").value  # a typo is refused here, before any work
    precision = check_choice(precision, Precision, "precision").value
    classes = check_class_names(annotation_classes)
    if cluster is None:  # the jobs run here: a device this machine lacks is refused once, not case by case

        check_precision(precision, resolve_device(device))
    weights_dir, out_dir = Path(weights_dir).absolute(), Path(out_dir).absolute()
    needed = {m for m in chosen if any(c.has_mri if m is Modality.RADIOLOGY else c.has_slides for c in cohort.cases)}
    models = _load_models(weights_dir, needed)
    settings = RunSettings(weights_dir, {name: w["sha256"] for name, w in models.weights.items()}, out_dir,
                           annotation_classes=classes, batch_size=batch_size, reader_threads=reader_threads,
                           device=device, precision=precision)
    engine = connect(cluster)
    try:
        with RecordWriter(store) as writer:
            writer.check_may_write(m.value for m in chosen)
            jobs = plan_jobs(cohort, chosen, None if rescore else writer.sections(cohort.case_ids()))
            log = RunLog(run_metadata_path(out_dir), dict(arguments or {}), models.weights, engine.describe(),
                         writer.location)
            log.save()
            expected = Counter((job.case_id, job.modality) for job in jobs)
            collected: dict[tuple[str, Modality], list[JobOutcome]] = defaultdict(list)
            reports: list[UnitReport] = []
            status = "error"
            try:
                with contextlib.closing(engine.run(jobs, settings)) as outcomes:
                    for outcome in outcomes:
                        key = (outcome.job.case_id, outcome.job.modality)
                        collected[key].append(outcome)
                        if len(collected[key]) < expected[key]:
                            continue  # a case's slides are written together
                        report = _write_unit(writer, *key, collected.pop(key), models)
                        reports.append(report)
                        log.add(report.to_dict())
                        if on_unit is not None:
                            on_unit(report)
                status = "finished"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            finally:
                log.finish(status)
    finally:
        engine.close()
    return CohortRun(reports, log.path)


def _load_models(weights_dir: Path, modalities: set[Modality]) -> _ClientModels:
    """The weights' identities, checked here (sha256 against the manifest) before any job is sent out."""
    weights: dict[str, dict[str, str]] = {}
    pathology = None
    other = {Modality.RADIOLOGY: "pathology", Modality.PATHOLOGY: "radiology"}
    for modality in sorted(modalities, key=lambda m: m.value):
        try:
            if modality is Modality.RADIOLOGY:
                for sequence_set in available_sets(weights_dir):  # a case is scored by the model of its sequences
                    _, entry = load_model(weights_dir, sequence_set)
                    weights[model_name(sequence_set)] = {"sha256": entry["sha256"], "version": entry["version"]}
            else:
                pathology = load_models(weights_dir, device="cpu")  # here only to check and to pool
                weights[PATCH_MODEL] = {"sha256": pathology.model_sha256, "version": pathology.model_version}
                weights[SIGNATURE_MODEL] = {"sha256": pathology.signature_sha256,
                                            "version": pathology.signature_version}
        except WeightsError as exc:
            raise type(exc)(f"{exc} (the manifest has {modality.value} inputs; to score only the other modality, "
                            f"use --modality {other[modality]})") from None
    return _ClientModels(weights, pathology)


def _write_unit(writer: RecordWriter, case_id: str, modality: Modality, outcomes: list[JobOutcome],
                models: _ClientModels) -> UnitReport:
    """Write a unit whose jobs all came back (nothing when one failed or none was scored); report it."""
    outcomes = sorted(outcomes, key=lambda o: getattr(o.job, "index", 0))
    jobs = [{"job": o.job.label(), "status": o.status.value, "seconds": o.seconds, "host": o.host,
             "worker": o.worker, **({"message": o.message} if o.message else {}),
             **({"detail": o.detail} if o.detail else {})}
            for o in outcomes]
    failed = [o for o in outcomes if o.status is Status.FAILED]
    if failed:
        message = "; ".join(f"{o.job.label()}: {o.message}" for o in failed)
        return UnitReport(case_id, modality, Status.FAILED, message, jobs=jobs)
    scored = [o for o in outcomes if o.status is Status.SCORED]
    if not scored:
        return UnitReport(case_id, modality, Status.SKIPPED, jobs=jobs)
    try:
        if modality is Modality.RADIOLOGY:
            (outcome,) = scored
            revision, score = writer.write_radiology(case_id, outcome.section), float(outcome.section["score"])
        else:
            revision, score = writer.write_pathology(case_id, [(o.entry, o.provenance) for o in scored],
                                                     models.pathology)
    except (StoreError, AuthenticationRequired, PermissionDenied) as exc:
        # The store itself refuses (unreachable, disk full, token revoked): every later write would fail too.
        raise type(exc)(f"{exc} (writing case {case_id}, {modality.value}: the run stopped; the sections written "
                        "so far stay, and the same command resumes)") from None
    except SarcomaRiskError as exc:
        return UnitReport(case_id, modality, Status.FAILED, f"the {modality.value} section was not written: {exc}",
                          jobs=jobs)
    return UnitReport(case_id, modality, Status.SCORED, score=score, revision=revision, jobs=jobs)
