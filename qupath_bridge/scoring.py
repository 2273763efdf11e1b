"""Scoring QuPath images with the pathology pipeline: one image at a time, a batch that survives failures.

For each image: its case id is known beforehand (:mod:`.casemap`); its annotations of the tumor's
QuPath class (``annotation_classes``, default "Tumor") restrict tiling (whole tissue when it has no
classified annotation, which the result says; an error listing the classes found when all its
classified annotations are of other classes); the slide is scored by
:func:`sarcoma_risk.pathology.pipeline.score_slide`; the result becomes tiles with
``recurrence_probability`` and image metadata (:mod:`.results`) and the slide's entry in the
case record's pathology section. The case record and the image are written together: the record
update runs in a store transaction that also covers the write into QuPath, so an error in either
leaves both as they were.

Where results go is the *image source*'s business (:class:`ImageSource`): a QuPath project image
(:class:`qupath_bridge.project.ProjectImage`) or plain files (:class:`FileImage`, used by
``sarcoma-qupath score-image`` and the QuPath script). :func:`run_batch` continues past a failing
image, reports each failure with the image's name, and skips images an earlier run already wrote
with the same inputs (:mod:`.runstate`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from qupath_bridge.casemap import CASE_ID_KEY, ImageRef, assign_cases
from qupath_bridge.exporting import region_file
from qupath_bridge.projectfiles import backup_project_files, bridge_folder, open_project_signs, open_project_warning
from qupath_bridge.results import choose_tumor_annotations, image_metadata, tile_objects
from qupath_bridge.runstate import RunMetadata, RunState, job_key, run_stamp
from sarcoma_risk.errors import InvalidAnnotation, InvalidInput, InvalidSlide, OutputError, SarcomaRiskError
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES, describe
from sarcoma_risk.pathology.geojson import QuPathObject, dumps, read_geojson, write_geojson
from sarcoma_risk.pathology.pipeline import PATCH_MODEL, SIGNATURE_MODEL, load_models, score_slide
from sarcoma_risk.pathology.record import merge_slide, section_provenance, slide_entry
from sarcoma_risk.pathology.regions import region_sha256
from sarcoma_risk.provenance import sha256_bytes, sha256_file, utc_now

log = logging.getLogger(__name__)


class ImageSource(Protocol):
    """Where an image comes from and where its results go."""

    ref: ImageRef

    def slide_path(self) -> Path:
        """The slide file (raises when it cannot be reached)."""

    def tumor_annotations(self, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> list[QuPathObject]:
        """The annotations of ``classes`` that restrict tiling (empty: whole tissue)."""

    def write_results(self, tiles: Sequence[QuPathObject], metadata: Mapping[str, str]) -> Any:
        """Replace earlier SarcomaRisk results of this image by these."""


@dataclass(frozen=True)
class ScoringOptions:
    """How slides are scored (the same for every image of a run)."""

    weights_dir: Path
    mpp: float | None = None
    batch_size: int = 64
    workers: int = 2
    precision: str = "fp32"
    device: str = "auto"
    progress: bool = True
    annotation_classes: tuple[str, ...] = DEFAULT_TUMOR_CLASSES  # checked QuPath class names of the tumor

    def parameters(self) -> dict[str, Any]:
        """What changes a result besides the inputs and weights (part of the resume key).

        The classes count only when they are not the default, so runs from before the option
        existed keep their keys.
        """
        classes = {} if self.annotation_classes == DEFAULT_TUMOR_CLASSES else {
            "annotation_classes": list(self.annotation_classes)}
        return {"mpp": self.mpp, "precision": self.precision, **classes}


@dataclass
class ScoredImage:
    """One scored image, ready to be written."""

    ref: ImageRef
    case_id: str
    result: Any  # sarcoma_risk.pathology.pipeline.SlideResult
    tiles: list[QuPathObject]
    metadata: dict[str, str]


def annotations_sha256(annotations: Sequence[QuPathObject]) -> str | None:
    """A content hash of the tumor annotations (None when there are none)."""
    return sha256_bytes(dumps(annotations).encode()) if annotations else None


class SlideScorer:
    """Scores images with the pathology models of a weights folder (loaded once, sha256 verified).

    Parameters
    ----------
    options : ScoringOptions
    cache_dir : path, optional
        Tile cache folder: scoring a slide again with the same weights and annotations reads it
        instead of running the model.
    """

    def __init__(self, options: ScoringOptions, cache_dir: Path | None = None) -> None:
        self.options = options
        self.cache_dir = cache_dir

    @cached_property
    def models(self) -> Any:
        return load_models(self.options.weights_dir, precision=self.options.precision, device=self.options.device)

    def weights(self) -> dict[str, dict[str, str]]:
        """The sha256 and version of each model used (for run metadata and resume keys)."""

        m = self.models
        return {PATCH_MODEL: {"sha256": m.model_sha256, "version": m.model_version},
                SIGNATURE_MODEL: {"sha256": m.signature_sha256, "version": m.signature_version}}

    def model_label(self) -> str:
        m = self.models
        return (f"patch {m.architecture} v{m.model_version} ({m.model_sha256[:12]}), "
                f"signature v{m.signature_version} ({(m.signature_sha256 or '')[:12]})")

    def key(self, case_id: str, slide: Path, annotations: Sequence[QuPathObject]) -> str:
        """The resume key of an image (see :func:`qupath_bridge.runstate.job_key`)."""
        weights = {name: w["sha256"] for name, w in self.weights().items()}
        return job_key(case_id=case_id, weights=weights, annotations_sha256=annotations_sha256(annotations),
                       slide_path=slide, parameters=self.options.parameters())

    def _annotation_file(self, annotations: Sequence[QuPathObject], tmp: Path) -> Path | None:
        """The tumor annotations as the GeoJSON file the pipeline reads (None: whole tissue).

        With a tile cache, the file is kept beside it as ``regions/<sha256>.geojson`` (the region
        sha256 the cache records), so ``sarcoma-qupath export`` can put the annotations beside the tiles.
        """
        if not annotations:
            return None

        staged = write_geojson(tmp / "tumor.geojson", annotations)
        if self.cache_dir is None:
            return staged
        kept = region_file(self.cache_dir, region_sha256(sha256_file(staged), self.options.annotation_classes))
        if not kept.is_file():
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_geojson(kept, annotations)
        return kept

    def score(self, ref: ImageRef, case_id: str, slide: Path, annotations: Sequence[QuPathObject]) -> ScoredImage:
        """Score one slide, restricted to ``annotations`` when there are any."""

        with tempfile.TemporaryDirectory(prefix="sarcoma-qupath-") as tmp:
            annotation = self._annotation_file(annotations, Path(tmp))
            try:
                result = score_slide(slide, self.models, annotation=annotation,
                                     annotation_classes=self.options.annotation_classes, mpp=self.options.mpp,
                                     cache_dir=self.cache_dir, batch_size=self.options.batch_size,
                                     workers=self.options.workers, progress=self.options.progress)
            except InvalidAnnotation as exc:  # name the image, not the file written for the pipeline
                raise InvalidAnnotation(f"image {ref.label()}: " + str(exc).replace(str(annotation), "its tumor "
                                                                                      "annotation")) from None
        metadata = image_metadata(score=result.score, mean_probability=result.mean_probability,
                                  n_tiles=len(result.tiles), n_annotations=len(annotations),
                                  model=self.model_label(), scored_utc=utc_now(),
                                  classes=self.options.annotation_classes)
        return ScoredImage(ref, case_id, result, tile_objects(result.tiles), metadata)


# ---- plain files as an image source -----------------------------------------------------------

class FileImage:
    """An image given as files: a slide, optionally a GeoJSON with its tumor annotations, and an output folder.

    Results go to ``out_dir/tiles.geojson`` (tiles for File > Import objects, or the QuPath script)
    and ``out_dir/metadata.json`` (the image metadata), each replaced atomically.
    """

    def __init__(self, slide: str | Path, out_dir: str | Path, *, annotations: str | Path | None = None,
                 case_id: str | None = None) -> None:
        self.slide = Path(slide)
        self.annotations_file = Path(annotations) if annotations is not None else None
        self.out_dir = Path(out_dir)
        self.ref = ImageRef(self.slide.name, self.slide.name, {"case_id": case_id} if case_id else {})

    def slide_path(self) -> Path:
        if not self.slide.is_file():
            raise InvalidSlide(f"{self.slide}: no such slide file")
        return self.slide

    def tumor_annotations(self, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> list[QuPathObject]:
        if self.annotations_file is None:
            return []
        objects = read_geojson(self.annotations_file)
        chosen = choose_tumor_annotations(objects, classes, str(self.annotations_file))
        if not chosen:
            raise InvalidAnnotation(f"{self.annotations_file}: no annotation of class {describe(classes)} with an "
                                    f"area among its {len(objects)} object(s), and none of another class; classify "
                                    "the tumor outline in QuPath, or leave out --annotations to score the whole tissue")
        return chosen

    def write_results(self, tiles: Sequence[QuPathObject], metadata: Mapping[str, str]) -> Path:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_geojson(self.out_dir / "tiles.geojson", tiles)
            atomic_write_json(self.out_dir / "metadata.json", dict(metadata))
        except OSError as exc:
            if isinstance(exc, SarcomaRiskError):
                raise
            raise OutputError(f"--out {self.out_dir}: cannot write the results there ({exc.strerror or exc})") from None
        return self.out_dir


# ---- the batch -------------------------------------------------------------------------------

@dataclass
class ImageReport:
    """What happened to one image."""

    ref: ImageRef
    status: str  # "scored", "skipped", "failed", "unmapped"
    case_id: str | None = None
    message: str | None = None
    score: float | None = None
    n_tiles: int | None = None
    region: str | None = None

    def line(self) -> str:
        """One line for people."""
        head = f"{self.ref.label()}" + (f" [{self.case_id}]" if self.case_id else "")
        if self.status == "scored":
            return f"{head}: scored {self.score:+.3f} (log relative hazard), {self.n_tiles} tiles, {self.region}"
        return f"{head}: {self.status.upper()}: {self.message}"


@dataclass
class BatchReport:
    """What happened to each image of a batch, in order."""

    items: list[ImageReport] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def complete(self) -> bool:
        """Every image was scored now or before (none failed or lacked a case id)."""
        return all(i.status in ("scored", "skipped") for i in self.items)


Writer = Callable[[ScoredImage, ImageSource], None]


def run_batch(sources: Iterable[tuple[ImageSource, str]], scorer: SlideScorer, write: Writer, *,
              state: RunState | None = None, run: RunMetadata | None = None, rescore: bool = False,
              notify: Callable[[ImageReport], None] = lambda report: None) -> BatchReport:
    """Score ``(image, case_id)`` pairs one after the other and ``write`` each result.

    An image that fails (missing slide, bad annotation, unreadable file...) is reported with its
    name and the batch goes on; what it had written is rolled back by ``write``. With ``state``,
    images whose job key is unchanged since an earlier successful run are skipped (``rescore``
    scores them anyway).
    """
    report = BatchReport()
    for source, case_id in sources:
        ref = source.ref
        try:
            slide = source.slide_path()
            annotations = source.tumor_annotations(scorer.options.annotation_classes)
            key = scorer.key(case_id, slide, annotations)
            if state is not None and not rescore and state.is_done(ref.entry_id, key):
                item = ImageReport(ref, "skipped", case_id, "already scored with these weights and annotations "
                                                            "(use --rescore to score again)")
            else:
                scored = scorer.score(ref, case_id, slide, annotations)
                write(scored, source)
                if state is not None:
                    state.mark_done(ref.entry_id, key, case_id)
                item = ImageReport(ref, "scored", case_id, score=scored.result.score, n_tiles=len(scored.tiles),
                                   region=scored.metadata["sarcoma_risk_region"])
        except SarcomaRiskError as exc:
            log.debug("image %s failed", ref.label(), exc_info=True)
            if state is not None:
                state.mark_failed(ref.entry_id, str(exc))
            item = ImageReport(ref, "failed", case_id, str(exc))
        report.items.append(item)
        if run is not None:
            run.add(ref.entry_id, item.status, case_id=case_id, message=item.message if item.status == "failed" else None,
                    **({"score": item.score, "n_tiles": item.n_tiles} if item.status == "scored" else {}))
        notify(item)
    return report


class RecordWriter:
    """Writes a scored image: its case record and its image source together, or neither.

    The pathology section is updated inside a store transaction that also covers
    ``source.write_results``: an error while writing into QuPath (or the files) rolls the record
    back. ``before_first_write`` (e.g. the project backup) runs once, before the first image is
    written, inside the same transaction, so a failed backup writes nothing.
    """

    def __init__(self, store: Any, scorer: SlideScorer, *, before_first_write: Callable[[], Any] | None = None) -> None:
        self.store = store
        self.scorer = scorer
        self.before_first_write = before_first_write
        self._prepared = before_first_write is None

    def __call__(self, scored: ScoredImage, source: ImageSource) -> None:
        models = self.scorer.models
        metadata = dict(scored.metadata)
        if not source.ref.metadata.get(CASE_ID_KEY):  # from a case map: show it in QuPath too
            metadata[CASE_ID_KEY] = scored.case_id
        with self.store.transaction():
            self.store.update_section(scored.case_id, "pathology",
                                      lambda current: merge_slide(
                                          current, slide_entry(scored.result, models), models,
                                          section_provenance(scored.result, models, written_by="sarcoma-qupath")))
            if not self._prepared:
                self.before_first_write()  # type: ignore[misc]
                self._prepared = True
            source.write_results(scored.tiles, metadata)


def select_images(images: Sequence[Any], wanted: Sequence[str] | None) -> list[Any]:
    """The images named in ``wanted`` (QuPath names or entry ids), in project order; all when None."""
    if not wanted:
        return list(images)
    known = {i.ref.name for i in images} | {i.ref.entry_id for i in images}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        names = ", ".join(sorted(i.ref.name for i in images)[:20]) or "none"
        raise InvalidInput(f"--images: {', '.join(map(repr, unknown))} not in the project (its images: {names})")
    chosen = set(wanted)
    return [i for i in images if i.ref.name in chosen or i.ref.entry_id in chosen]


def score_project(project_dir: Path, images: Sequence[Any], scorer: SlideScorer, store: Any, *,
                  case_map: Any = None, arguments: Mapping[str, Any] | None = None,
                  qupath_version: str | None = None, rescore: bool = False,
                  say: Callable[[str], None] = lambda text: None) -> tuple[BatchReport, RunMetadata]:
    """Score the images of a QuPath project (``sarcoma-qupath score`` without the command line).

    ``images`` are the project's image sources to score (:class:`qupath_bridge.project.ProjectImage`).
    Case ids come from their metadata or ``case_map``; images without one, or with conflicting
    ones, are reported and not touched. The project's data files are backed up before the first
    write; run metadata go to ``<project>/sarcoma-risk/runs/<time>.json``, the resume state to
    ``<project>/sarcoma-risk/state.json``. ``say`` receives the lines meant for people.
    """

    folder = bridge_folder(project_dir)
    assignment = assign_cases([i.ref for i in images], case_map)
    mapped = [i for i in images if i.ref.entry_id in assignment.cases]
    signs = open_project_signs(project_dir, [i.ref.entry_id for i in mapped])
    say(("WARNING: " if signs else "note: ") + open_project_warning(signs))
    stamp = run_stamp()
    run = RunMetadata(folder / "runs" / f"{stamp}.json", "sarcoma-qupath score", dict(arguments or {}),
                      weights=scorer.weights(), qupath_version=qupath_version)
    skipped = ([ImageReport(ref, "unmapped", None, "no case id: set the metadata key case_id in QuPath or give "
                            "--case-map") for ref in assignment.unmapped]
               + [ImageReport(ref, "failed", None, text) for ref, text in assignment.problems])
    for item in skipped:
        run.add(item.ref.entry_id, item.status, message=item.message)
        say(item.line())

    def backup() -> Path:
        path = backup_project_files(project_dir, [i.ref.entry_id for i in mapped], stamp)
        run.backup = str(path)
        say(f"backup of the project's data files: {path}")
        return path

    counter = iter(range(1, len(mapped) + 1))
    report = run_batch(((i, assignment.cases[i.ref.entry_id]) for i in mapped), scorer,
                       RecordWriter(store, scorer, before_first_write=backup), state=RunState(folder / "state.json"),
                       run=run, rescore=rescore, notify=lambda item: say(f"[{next(counter)}/{len(mapped)}] {item.line()}"))
    run.finish()
    report.items[:0] = skipped
    return report, run
