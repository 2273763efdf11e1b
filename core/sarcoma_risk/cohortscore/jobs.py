"""The work of a cohort run: units (what the record holds) made of jobs (what a worker computes).

A *unit* is one section of one case record: a case's radiology section or its pathology section.
The run reports and writes units. A unit's *jobs* are what a worker computes: the case's MRI, or
one of its slides. Each slide is its own job, so that a worker holds one slide at a time; the
slides of a case are written together, once all of them are scored.

Every job carries what the case record held for its section when the run started (``recorded``):
the worker compares it with the inputs' content fingerprints and the weights' sha256 and skips the
job when the record already holds that result (None: score it whatever the record holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from sarcoma_risk.cohort import Manifest


class Modality(str, Enum):
    """A case record section that a cohort run writes."""

    RADIOLOGY = "radiology"
    PATHOLOGY = "pathology"


class Status(str, Enum):
    """What happened to a job or a unit."""

    SCORED = "scored"    # computed in this run (a unit: and written to the record)
    SKIPPED = "skipped"  # the record already held this result
    FAILED = "failed"    # an error; the record section was left as it was


@dataclass(frozen=True)
class MRIJob:
    """One case's MRI (the radiology unit has this one job)."""

    case_id: str
    t2fs: Path | None
    mask: Path
    t1ce: Path | None
    segment: str | None
    recorded: Mapping[str, Any] | None

    modality = Modality.RADIOLOGY

    def label(self) -> str:
        return "MRI"


@dataclass(frozen=True)
class SlideJob:
    """One slide of a case (``index`` counts from 1 among the case's ``count`` slides)."""

    case_id: str
    index: int
    count: int
    slide: Path
    annotation: Path | None
    recorded: Mapping[str, Any] | None

    modality = Modality.PATHOLOGY

    def label(self) -> str:
        return f"slide {self.index} of {self.count}"


Job = Union[MRIJob, SlideJob]


@dataclass(frozen=True)
class JobOutcome:
    """What a worker returns for a job: plain data, small enough to send back to the client.

    ``section`` is the radiology section to write; ``entry`` and ``provenance`` are a slide's
    pathology entry and section provenance; ``detail`` is the traceback of an unexpected error;
    ``host`` and ``worker`` (a Dask worker's address) say where the job ran.
    """

    job: Job
    status: Status
    message: str | None = None
    section: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    detail: str | None = None
    seconds: float = 0.0
    host: str | None = None
    worker: str | None = None


def plan_jobs(manifest: Manifest, modalities: Iterable[Modality],
              recorded: Mapping[str, Mapping[str, Any]] | None = None) -> list[Job]:
    """The jobs of ``manifest`` for ``modalities``, case by case in manifest order.

    ``recorded`` maps a case id to its record's sections (``{"radiology": ..., "pathology": ...}``);
    None scores everything again. Paths are made absolute: workers need not share the client's
    working folder, only its file system.
    """
    wanted = set(modalities)
    jobs: list[Job] = []
    for case in manifest.cases:
        sections = (recorded or {}).get(case.case_id) or {}
        if Modality.RADIOLOGY in wanted and case.has_mri:
            jobs.append(MRIJob(case.case_id, _absolute(case.mri_t2fs), _absolute(case.tumor_seg),
                               _absolute(case.mri_t1ce), case.tumor_segment, sections.get(Modality.RADIOLOGY.value)))
        if Modality.PATHOLOGY in wanted and case.has_slides:
            jobs += [SlideJob(case.case_id, i, len(case.slides), _absolute(slide), _absolute(annotation),
                              sections.get(Modality.PATHOLOGY.value))
                     for i, (slide, annotation) in enumerate(zip(case.slides, case.annotations), start=1)]
    return jobs


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(path).absolute()
