"""Assemble a phantom cohort on disk: plan every case, render its images, write manifest and truth.

Layout of the output folder (paths in the manifest are relative to it)::

    manifest.csv                         the cohort manifest (docs/manifest.md)
    truth.json                           the generative truth, kept apart from the manifest
    cases/<case_id>/mri/...              MRI volumes, .seg.nrrd and labelmap (radiology renderer)
    cases/<case_id>/slides/<case_id>-<k>.svs (+ .geojson)   slides and annotations (pathology renderer)

Seeds: case ``j`` (0-based) of centre ``c`` draws everything from
``SeedSequence(seed, spawn_key=(crc32(c), j))``, spawned into independent streams for the clinical
and outcome draws, the per-case options (split, missing modality, oblique direction, DICOM, ...), the
MRI renderer and each slide. A case therefore does not depend on the order of generation, on the
number of workers, or on how many other cases are generated; the same seed gives the same bytes.

Splits: with ``split="centre"`` (default) the first centre is the development cohort and every other
centre is validation (external validation by held-out centre, as in the published study); with
``split="random"`` each case of every centre is validation with probability ``validation_fraction``.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import multiprocessing
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sarcoma_risk.choices import check_choice
from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.cohort import manifest_columns
from sarcoma_risk.errors import InvalidInput, OutputError
from sarcoma_risk.fileio import atomic_write_json, atomic_write_text
from sarcoma_risk.provenance import software_version
from sarcoma_risk.survival.concordance import harrell_c, undefined_as_none
from sarcoma_risk.synthetic.difficulty import Difficulty, model_for, render_difficulty
from sarcoma_risk.synthetic.model import GenerativeModel, SampledCase
from sarcoma_risk.synthetic.mri import write_phantom_mri
from sarcoma_risk.synthetic.wsi import write_phantom_slide

logger = logging.getLogger(__name__)

TRUTH_FORMAT = "sarcoma-risk-phantom-truth/1"
MANIFEST_NAME = "manifest.csv"
TRUTH_NAME = "truth.json"
CASES_DIR = "cases"
#: Present while a cohort is being written and left behind when a failed run could not clean up.
INCOMPLETE_MARKER = "GENERATION_INCOMPLETE.txt"
_OUR_ENTRIES = (MANIFEST_NAME, TRUTH_NAME, CASES_DIR, INCOMPLETE_MARKER)
_MAX_CENTRE_LENGTH = 8
#: errno values that mean "this folder cannot take the output" rather than a bug.
_OUTPUT_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                  errno.EROFS: "read-only file system"}


class Size(str, Enum):
    """Image size presets of the renderers: tiny (unit tests), small (benchmarks), medium (realistic)."""

    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"


class SplitRule(str, Enum):
    """How cases are assigned to the development and validation splits."""

    CENTRE = "centre"
    RANDOM = "random"


@dataclass(frozen=True)
class CaseOptions:
    """Per-size rates of the file variants a real cohort contains."""

    oblique_rate: float = 0.25  # MRI with a non-identity direction (oblique acquisition)
    dicom_rate: float = 0.0  # MRI written as a DICOM series instead of NRRD/NIfTI
    labelmap_rate: float = 0.2  # manifest points at the plain labelmap instead of the .seg.nrrd
    two_slide_rate: float = 0.0  # cases with a second slide (another block of the same tumor)
    artefact_rate: float = 0.25  # slides with pen marks or debris
    unannotated_rate: float = 0.1  # slides without a tumor annotation (use the whole tissue)


#: DICOM series and second slides cost time, so the tiny preset (unit tests) has none.
SIZE_OPTIONS: dict[Size, CaseOptions] = {
    Size.TINY: CaseOptions(),
    Size.SMALL: CaseOptions(dicom_rate=0.15, two_slide_rate=0.1),
    Size.MEDIUM: CaseOptions(dicom_rate=0.15, two_slide_rate=0.1),
}
# Fixed positions in each case's stream of option draws, so adding an option never shifts another.
_U_SPLIT, _U_MISSING, _U_WHICH, _U_OBLIQUE, _U_DICOM, _U_LABELMAP, _U_TWO_SLIDES = range(7)
_U_SLIDE = 7  # then 2 draws per slide: artefacts, annotation
_N_OPTION_DRAWS = 16


@dataclass(frozen=True)
class SlidePlan:
    index: int
    seed: int
    artefacts: bool
    annotate: bool


@dataclass(frozen=True)
class CasePlan:
    """Everything decided about one case before any file is written."""

    case_id: str
    centre: str
    split: str
    sample: SampledCase
    mri_seed: int | None  # None: this case has no MRI
    oblique: bool
    dicom: bool
    use_labelmap: bool
    slides: tuple[SlidePlan, ...]
    difficulty: str = "standard"  # a Difficulty value: how the renderers show the phenotypes


@dataclass(frozen=True)
class PhantomCohort:
    """A generated cohort: its folder, manifest and truth file."""

    root: Path
    manifest: Path
    truth: Path
    n_cases: int
    centres: tuple[str, ...] = field(default=())

    def load_truth(self) -> dict[str, Any]:
        return json.loads(self.truth.read_text(encoding="utf-8"))


# ---- argument checks ------------------------------------------------------------------------------

def check_centres(centres: str | Sequence[str]) -> tuple[str, ...]:
    """Centre codes from ``"A,B"`` or a sequence: 1-8 ASCII letters/digits, unique (ignoring case)."""
    items = [c.strip() for c in centres.split(",")] if isinstance(centres, str) else [str(c).strip() for c in centres]
    if not items or items == [""]:
        raise InvalidInput("centres: none given; expected codes separated by commas, e.g. A,B")
    seen: dict[str, str] = {}
    for code in items:
        if not (1 <= len(code) <= _MAX_CENTRE_LENGTH and code.isascii() and code.isalnum()):
            raise InvalidInput(f"centres: {code!r} is not a valid centre code; expected 1-{_MAX_CENTRE_LENGTH} "
                               "letters or digits (e.g. A, B, MSK2), separated by commas")
        if code.lower() in seen:
            raise InvalidInput(f"centres: {code!r} is given twice (as {seen[code.lower()]!r} too); codes must be unique")
        seen[code.lower()] = code
    return tuple(items)


def _check_rate(value: float, name: str, *, open_high: bool = False) -> float:
    value = float(value)
    ok = math.isfinite(value) and 0.0 <= value and (value < 1.0 if open_high else value <= 1.0)
    if not ok:
        bound = "< 1" if open_high else "<= 1"
        raise InvalidInput(f"{name}: {value!r} must be a fraction >= 0 and {bound}")
    return value


#: The imaging modalities a phantom case can have, in manifest order.
MODALITIES = ("mri", "slides")


def _check_modalities(value: str | Sequence[str]) -> tuple[str, ...]:
    """The rendered modalities, in :data:`MODALITIES` order; "mri,slides" or a sequence of names."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    unknown = [n for n in names if n not in MODALITIES]
    if unknown or not names:
        raise InvalidInput(f"modalities: {value!r}; choose one or both of {', '.join(MODALITIES)}")
    return tuple(m for m in MODALITIES if m in names)


def _check_count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInput(f"{name}: {value!r} must be an integer >= {minimum}")
    return int(value)


# ---- planning ------------------------------------------------------------------------------------

def _cases_per_centre(n_cases: int, centres: Sequence[str]) -> list[int]:
    base, extra = divmod(n_cases, len(centres))
    return [base + (1 if i < extra else 0) for i in range(len(centres))]


def _renderer_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def plan_case(centre: str, index: int, seed: int, *, model: GenerativeModel, development_centre: str,
              split_rule: SplitRule, validation_fraction: float, missing_rate: float,
              options: CaseOptions, id_width: int = 4, difficulty: str = "standard") -> CasePlan:
    """Plan case ``index`` (0-based) of ``centre``; depends only on these arguments."""
    root = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(centre.encode("ascii")), index))
    clinical_seq, option_seq, mri_seq, slides_seq = root.spawn(4)
    sample = model.for_centre(centre).sample_case(np.random.default_rng(clinical_seq))
    u = np.random.default_rng(option_seq).random(_N_OPTION_DRAWS)
    if split_rule is SplitRule.CENTRE:
        split = "development" if centre == development_centre else "validation"
    else:
        split = "validation" if u[_U_SPLIT] < validation_fraction else "development"
    missing = u[_U_MISSING] < missing_rate
    has_mri = not (missing and u[_U_WHICH] < 0.5)
    has_slides = not (missing and u[_U_WHICH] >= 0.5)
    n_slides = (2 if u[_U_TWO_SLIDES] < options.two_slide_rate else 1) if has_slides else 0
    slide_seqs = slides_seq.spawn(2)
    slides = tuple(
        SlidePlan(index=k + 1, seed=_renderer_seed(slide_seqs[k]),
                  artefacts=bool(u[_U_SLIDE + 2 * k] < options.artefact_rate),
                  annotate=bool(u[_U_SLIDE + 2 * k + 1] >= options.unannotated_rate))
        for k in range(n_slides))
    return CasePlan(
        case_id=f"SYN-{centre}-{index + 1:0{id_width}d}", centre=centre, split=split, sample=sample,
        mri_seed=_renderer_seed(mri_seq) if has_mri else None,
        oblique=bool(has_mri and u[_U_OBLIQUE] < options.oblique_rate),
        dicom=bool(has_mri and u[_U_DICOM] < options.dicom_rate),
        use_labelmap=bool(has_mri and u[_U_LABELMAP] < options.labelmap_rate),
        slides=slides, difficulty=difficulty)


def plan_cohort(n_cases: int, centres: str | Sequence[str] = ("A", "B"), seed: int = 0, *,
                model: GenerativeModel | None = None, size: Size | str = Size.TINY,
                split: SplitRule | str = SplitRule.CENTRE, validation_fraction: float = 0.3,
                missing_rate: float = 0.0, dicom_rate: float | None = None,
                difficulty: Difficulty | str = Difficulty.STANDARD) -> list[CasePlan]:
    """Plan a cohort (clinical data, latents, outcomes, file options) without writing anything.

    Cases are spread evenly over the centres (the first centres get one more when ``n_cases`` does
    not divide) and listed centre by centre. ``difficulty`` picks the renderers' settings and, when
    ``model`` is None, the generative model (:mod:`sarcoma_risk.synthetic.difficulty`).
    """
    n_cases = _check_count(n_cases, "cases")
    centres = check_centres(centres)
    if n_cases < len(centres):
        raise InvalidInput(f"cases: {n_cases} is fewer than the {len(centres)} centres; need at least one case per centre")
    seed = _check_count(seed, "seed", minimum=0)
    size = check_choice(size, Size, "size")
    split_rule = check_choice(split, SplitRule, "split")
    validation_fraction = _check_rate(validation_fraction, "validation_fraction", open_high=True)
    missing_rate = _check_rate(missing_rate, "missing_rate")
    options = SIZE_OPTIONS[size]
    if dicom_rate is not None:
        options = CaseOptions(**{**options.__dict__, "dicom_rate": _check_rate(dicom_rate, "dicom_rate")})
    difficulty = check_choice(difficulty, Difficulty, "difficulty")
    model = model or model_for(difficulty)
    counts = _cases_per_centre(n_cases, centres)
    width = max(4, len(str(max(counts))))
    return [plan_case(centre, j, seed, model=model, development_centre=centres[0], split_rule=split_rule,
                      validation_fraction=validation_fraction, missing_rate=missing_rate, options=options,
                      id_width=width, difficulty=difficulty.value)
            for centre, count in zip(centres, counts) for j in range(count)]


# ---- rendering -----------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    """Renderer stats as plain JSON values (numpy scalars/arrays, paths, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _relative(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    return Path(os.path.relpath(path, root)).as_posix()


def render_case(plan: CasePlan, root: Path, size: Size) -> dict[str, Any]:
    """Write the images of one case with the renderers; return relative paths and renderer stats."""
    case_dir = root / CASES_DIR / plan.case_id
    out: dict[str, Any] = {"mri": None, "slides": []}
    if plan.mri_seed is not None:
        mri = write_phantom_mri(case_dir / "mri", phenotype=plan.sample.z_r,
                                tumor_size_cm=plan.sample.clinical["tumor_size_cm"], centre=plan.centre,
                                size=size.value, seed=plan.mri_seed, oblique=plan.oblique, dicom=plan.dicom,
                                difficulty=render_difficulty(plan.difficulty))
        out["mri"] = {"t2fs": _relative(mri.t2fs, root), "t1ce": _relative(mri.t1ce, root),
                      "seg": _relative(mri.seg, root), "labelmap": _relative(mri.labelmap, root),
                      "oblique": plan.oblique, "dicom": plan.dicom, "seed": plan.mri_seed,
                      "stats": _jsonable(mri.stats)}
    if plan.slides:
        for slide in plan.slides:
            path = case_dir / "slides" / f"{plan.case_id}-{slide.index}.svs"
            path.parent.mkdir(parents=True, exist_ok=True)
            rendered = write_phantom_slide(path, phenotype=plan.sample.z_p, centre=plan.centre, size=size.value,
                                           seed=slide.seed, artefacts=slide.artefacts, annotate=slide.annotate,
                                           difficulty=render_difficulty(plan.difficulty))
            out["slides"].append({"slide": _relative(rendered.slide, root),
                                  "annotation": _relative(rendered.annotation, root),
                                  "artefacts": slide.artefacts, "seed": slide.seed,
                                  "stats": _jsonable(rendered.stats)})
    return out


def _render_job(job: tuple[CasePlan, str, str]) -> dict[str, Any]:
    plan, root, size = job
    return render_case(plan, Path(root), Size(size))


# ---- manifest and truth --------------------------------------------------------------------------

def _format_clinical(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "tumor_size_cm":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:g}"  # ages are whole years: "51", not "51.0"
    return str(value)


def manifest_rows(plans: Sequence[CasePlan], files: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Manifest rows (strings) in the column order of :func:`sarcoma_risk.cohort.manifest_columns`."""
    rows = []
    for plan, rendered in zip(plans, files):
        row = {"case_id": plan.case_id, "centre": plan.centre, "split": plan.split,
               "time_months": f"{plan.sample.time_months:.2f}", "event": "1" if plan.sample.event else "0"}
        row.update({name: _format_clinical(name, plan.sample.clinical.get(name)) for name in VARIABLES})
        mri = rendered.get("mri")
        row["mri_t2fs"] = mri["t2fs"] if mri else ""
        row["mri_t1ce"] = mri["t1ce"] if mri else ""
        row["tumor_seg"] = (mri["labelmap"] if plan.use_labelmap else mri["seg"]) if mri else ""
        row["tumor_segment"] = ""
        slides = rendered.get("slides") or []
        row["slides"] = "|".join(s["slide"] for s in slides)
        row["annotations"] = "|".join(s["annotation"] for s in slides) if any(s["annotation"] for s in slides) else ""
        rows.append(row)
    return rows


def manifest_text(rows: Sequence[Mapping[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=manifest_columns(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def c_index_table(plans: Sequence[CasePlan], model: GenerativeModel) -> dict[str, Any]:
    """Harrell's C of the true LP and of partial truths, overall, per centre and per split.

    ``oracle`` uses the full true linear predictor (no model can beat it on this cohort);
    ``clinical_only``, ``clinical+mri_phenotype`` and ``clinical+pathology_phenotype`` drop the
    latent terms, showing what each modality adds with the true coefficients.
    """
    time = np.array([p.sample.time_months for p in plans])
    event = np.array([p.sample.event for p in plans], dtype=bool)
    clinical = np.array([p.sample.lp_clinical for p in plans])
    z_r = np.array([p.sample.z_r for p in plans])
    z_p = np.array([p.sample.z_p for p in plans])
    scores = {"oracle": np.array([p.sample.lp for p in plans]), "clinical_only": clinical,
              "clinical+mri_phenotype": clinical + model.b_mri * z_r,
              "clinical+pathology_phenotype": clinical + model.b_pathology * z_p}
    groups: dict[str, np.ndarray] = {"all": np.ones(len(plans), dtype=bool)}
    for centre in dict.fromkeys(p.centre for p in plans):
        groups[f"centre:{centre}"] = np.array([p.centre == centre for p in plans])
    for split in ("development", "validation"):
        mask = np.array([p.split == split for p in plans])
        if mask.any():
            groups[f"split:{split}"] = mask
    table: dict[str, Any] = {}
    for name, mask in groups.items():
        entry: dict[str, Any] = {"n": int(mask.sum()), "events": int(event[mask].sum())}
        # Only exactly equal scores are ties (tied_tol=0), as truth.json has always counted them.
        entry.update({key: undefined_as_none(harrell_c(time[mask], event[mask], score[mask], tied_tol=0.0))
                      for key, score in scores.items()})
        table[name] = entry
    return table


def truth_document(plans: Sequence[CasePlan], files: Sequence[dict[str, Any]], model: GenerativeModel,
                   settings: Mapping[str, Any]) -> dict[str, Any]:
    cases = []
    for plan, rendered in zip(plans, files):
        s = plan.sample
        cases.append({
            "case_id": plan.case_id, "centre": plan.centre, "split": plan.split,
            "z_r": s.z_r, "z_p": s.z_p, "lp": s.lp, "lp_clinical": s.lp_clinical,
            "covariates": s.covariates, "event_time_months": s.event_time_months,
            "censor_time_months": s.censor_time_months, "time_months": s.time_months, "event": s.event,
            "mri": rendered.get("mri"), "slides": rendered.get("slides") or [],
            "tumor_seg_is_labelmap": plan.use_labelmap if rendered.get("mri") else None,
        })
    table = c_index_table(plans, model)
    return {
        "format": TRUTH_FORMAT,
        "software_version": software_version(),
        "settings": dict(settings),
        "model": model.to_dict(),
        # lifelines' definition, which harrell_c with tied_tol=0 reproduces to the bit.
        "c_index": {"method": "Harrell's C on the observed (censored) outcomes, lifelines.utils.concordance_index",
                    "groups": table},
        "oracle_c_index": {name: entry["oracle"] for name, entry in table.items()},
        "cases": cases,
    }


# ---- output folder -------------------------------------------------------------------------------

def _output_failure(code: int | None, message: str) -> OutputError:
    # OutputError(message) alone keeps str(error) readable ("[Errno 28] ..." otherwise); errno is
    # still set so callers can tell "disk full" from "permission denied".
    error = OutputError(message)
    error.errno = code
    return error


def _output_error(exc: OSError, root: Path, cleaned: bool | None) -> OutputError:
    """An OS failure while writing, with what happened to the partial output (None: nothing written)."""
    reason = _OUTPUT_ERRNOS.get(exc.errno or -1, exc.strerror or str(exc))
    where = exc.filename or root
    if cleaned is None:
        after = "nothing was written"
    elif cleaned:
        after = "the partial output was removed"
    else:
        after = f"the partial output is left in {root}, marked by {INCOMPLETE_MARKER}; delete it or rerun with --overwrite"
    return _output_failure(exc.errno, f"cannot write the cohort to {root}: {reason} ({where}); {after}")


def _prepare_output(root: Path, overwrite: bool) -> bool:
    """Check/clear the output folder; returns True when the folder was created by this call."""
    if root.exists() and not root.is_dir():
        raise _output_failure(errno.ENOTDIR, f"out: {root} is a file; expected a folder (new, empty, or a previous cohort with --overwrite)")
    if root.is_dir():
        entries = sorted(p.name for p in root.iterdir())
        if entries and not overwrite:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise _output_failure(errno.EEXIST, f"out: {root} exists and is not empty ({shown}); choose a new folder "
                                            "or pass --overwrite to replace the cohort in it")
        for name in _OUR_ENTRIES:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        others = [n for n in entries if n not in _OUR_ENTRIES]
        if others:
            logger.warning("out: %s also holds %s; they are left as they are", root, ", ".join(others[:5]))
        return False
    root.mkdir(parents=True)
    return True


def _cleanup(root: Path, created: bool) -> bool:
    """Remove what this run wrote; True when it is gone."""
    try:
        if created:
            shutil.rmtree(root)
        else:
            for name in (MANIFEST_NAME, TRUTH_NAME, CASES_DIR):
                path = root / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            (root / INCOMPLETE_MARKER).unlink(missing_ok=True)
        return True
    except OSError:
        return False


# ---- the entry point -----------------------------------------------------------------------------

ProgressCallback = Callable[[int, int, str], None]


def generate_cohort(out_dir: str | Path, n_cases: int, centres: str | Sequence[str] = ("A", "B"), seed: int = 0,
                    size: Size | str = Size.TINY, *, images: bool = True, overwrite: bool = False,
                    workers: int = 1, split: SplitRule | str = SplitRule.CENTRE, validation_fraction: float = 0.3,
                    missing_rate: float = 0.0, dicom_rate: float | None = None,
                    model: GenerativeModel | None = None, progress: ProgressCallback | None = None,
                    difficulty: Difficulty | str = Difficulty.STANDARD,
                    modalities: str | Sequence[str] = MODALITIES) -> PhantomCohort:
    """Generate a phantom cohort in ``out_dir``: images, ``manifest.csv`` and ``truth.json``.

    Parameters
    ----------
    out_dir : path
        New or empty folder (or one holding a previous cohort, with ``overwrite=True``: its
        ``manifest.csv``, ``truth.json`` and ``cases/`` are replaced, other files are left alone).
    n_cases : int
        Number of cases (>= 1 per centre), spread evenly over the centres.
    centres : str or sequence of str
        Centre codes, e.g. ``"A,B"``; with ``split="centre"`` the first is the development cohort.
    seed : int
        Non-negative seed; the same seed and arguments give the same bytes in every file.
    size : {"tiny", "small", "medium"}
        Image size preset of the renderers.
    images : bool
        False writes only the manifest (without image paths) and truth.json: fast, for studying the
        generative model on thousands of cases.
    workers : int
        Processes rendering cases in parallel (the output does not depend on it).
    split, validation_fraction : see :class:`SplitRule`.
    missing_rate : float
        Fraction of cases that lack one imaging modality (MRI or slides, half each), to exercise
        missing-modality fusion. Their latent phenotypes still drive the hazard.
    dicom_rate : float or None
        Fraction of MRI written as DICOM series; default: 0 for tiny, 0.15 otherwise.
    model : GenerativeModel or None
        The generative model (None: the default model of ``difficulty``).
    progress : callable(done, total, case_id) or None
        Called after each case is written.
    difficulty : {"standard", "hard"}
        ``standard``: the original phantom (same bytes by seed as before difficulties existed);
        ``hard``: weaker, noisier, heterogeneous imaging effects and centres that differ in case mix
        and baseline hazard (:mod:`sarcoma_risk.synthetic.difficulty`).
    modalities : "mri", "slides" or both
        The images rendered (default both). Leaving one out renders only the other (e.g. an MRI-only
        cohort for the radiology models): the cases, their latents and outcomes are those of the full
        cohort, and the left-out images are simply not written (their manifest columns are empty).

    Returns
    -------
    PhantomCohort
    """
    size = check_choice(size, Size, "size")
    workers = _check_count(workers, "workers")
    difficulty = check_choice(difficulty, Difficulty, "difficulty")
    model = model or model_for(difficulty)
    modalities = _check_modalities(modalities)
    plans = plan_cohort(n_cases, centres, seed, model=model, size=size, split=split,
                        validation_fraction=validation_fraction, missing_rate=missing_rate, dicom_rate=dicom_rate,
                        difficulty=difficulty)
    if modalities != MODALITIES:
        plans = [replace(p, mri_seed=p.mri_seed if "mri" in modalities else None,
                         slides=p.slides if "slides" in modalities else ()) for p in plans]
    root = Path(out_dir).expanduser()
    try:
        created = _prepare_output(root, overwrite)
    except OutputError:
        raise
    except OSError as exc:
        raise _output_error(exc, root, cleaned=None) from exc
    settings = {"n_cases": len(plans), "centres": list(check_centres(centres)), "seed": seed, "size": size.value,
                "images": images, "split": check_choice(split, SplitRule, "split").value,
                "validation_fraction": validation_fraction, "missing_rate": missing_rate,
                "options": {**SIZE_OPTIONS[size].__dict__,
                            **({"dicom_rate": dicom_rate} if dicom_rate is not None else {})}}
    if modalities != MODALITIES:
        settings["modalities"] = list(modalities)  # only then: a full cohort's truth.json keeps its bytes
    if difficulty is not Difficulty.STANDARD:
        # Only a non-standard cohort says so: the standard truth.json keeps its bytes.
        settings["difficulty"] = difficulty.value
        settings["render_difficulty"] = render_difficulty(difficulty).to_dict()
    try:
        (root / INCOMPLETE_MARKER).write_text(
            "This folder holds a phantom cohort that is being generated, or whose generation failed.\n"
            "Delete the folder or run `sarcoma-risk synth` again with --overwrite.\n", encoding="utf-8")
        files = _render_all(plans, root, size, images, workers, progress)
        rows = manifest_rows(plans, files)
        atomic_write_json(root / TRUTH_NAME, truth_document(plans, files, model, settings), indent=1)
        atomic_write_text(root / MANIFEST_NAME, manifest_text(rows))
        (root / INCOMPLETE_MARKER).unlink()
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            _cleanup(root, created)
            raise
        raise _output_error(exc, root, cleaned=_cleanup(root, created)) from exc
    except BaseException:
        _cleanup(root, created)
        raise
    return PhantomCohort(root, root / MANIFEST_NAME, root / TRUTH_NAME, len(plans), tuple(settings["centres"]))


def _render_all(plans: Sequence[CasePlan], root: Path, size: Size, images: bool, workers: int,
                progress: ProgressCallback | None) -> list[dict[str, Any]]:
    total = len(plans)
    if not images:
        if progress:
            progress(total, total, plans[-1].case_id)
        return [{"mri": None, "slides": []} for _ in plans]
    results: list[dict[str, Any]] = []
    if workers == 1:
        for done, plan in enumerate(plans, start=1):
            results.append(render_case(plan, root, size))
            if progress:
                progress(done, total, plan.case_id)
        return results

    # spawn, not fork: the parent may hold threads (OpenSlide, BLAS) that fork would copy half-way.
    context = multiprocessing.get_context("spawn")
    jobs = [(plan, str(root), size.value) for plan in plans]
    pool = ProcessPoolExecutor(max_workers=min(workers, total), mp_context=context)
    try:
        for done, (plan, result) in enumerate(zip(plans, pool.map(_render_job, jobs)), start=1):
            results.append(result)
            if progress:
                progress(done, total, plan.case_id)
    finally:
        # On failure do not wait for the queued cases: the output is removed anyway.
        pool.shutdown(wait=True, cancel_futures=True)
    return results
