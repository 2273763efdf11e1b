"""The case record's pathology section: one entry per slide and a pooled case score.

``sarcoma-risk score-slide`` and the QuPath bridge write the same section through these functions:
a slide scored again replaces its entry (same ``slide_sha256``), other slides stay, and the case
score pools the tile counts of every slide scored with the same patch model and signature. No file
name enters the record: slides, annotations and outputs are named by content sha256.
"""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.pathology.signature import pool_counts
from sarcoma_risk.provenance import Provenance, utc_now

POOLING = "patch-level: tile counts of all slides scored by the same models are summed, then scored"


def slide_entry(result: Any, models: Any, outputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The record entry of a :class:`~sarcoma_risk.pathology.pipeline.SlideResult`.

    ``outputs`` maps an output kind (e.g. ``tiles_csv_sha256``) to the sha256 of the file written.
    """

    tiles = result.tiles
    return {
        "slide_sha256": result.run.slide_fingerprint["sha256"],
        "score": result.score,
        "n_tiles": len(tiles),
        "tissue_area_mm2": round(tiles.tissue_area_mm2, 4),
        "restricted_to_annotation": result.run.restricted_to_annotation,
        "annotation_sha256": result.run.annotation_sha256,
        "n_annotations": int(result.run.n_annotations),
        "mpp": tiles.mpp,
        "mpp_source": result.run.mpp_source,
        "mean_probability": result.mean_probability,
        "patch_model_sha256": models.model_sha256,
        "signature_sha256": models.signature_sha256,
        "counts": result.counts,
        "outputs": dict(outputs or {}),
        "scored_utc": utc_now(),
    }


def section_provenance(result: Any, models: Any, *, annotation_fingerprint: Mapping[str, Any] | None = None,
                       written_by: str = "sarcoma-risk score-slide") -> dict[str, Any]:
    """The provenance block of the section for the slide just scored."""

    inputs: dict[str, Any] = {"slide": dict(result.run.slide_fingerprint)}
    if annotation_fingerprint is not None:
        inputs["annotation"] = dict(annotation_fingerprint)
    elif result.run.annotation_sha256 is not None:
        inputs["annotation"] = {"sha256": result.run.annotation_sha256, "tumor_annotations": result.run.n_annotations}
    if "annotation" in inputs:  # which QuPath classes of the file made the tumor region
        inputs["annotation"]["classes"] = list(result.run.annotation_classes)
    return Provenance(
        model_name="pathology", model_version=models.model_version, weights_sha256=models.model_sha256,
        inputs=inputs,
        parameters={"architecture": models.architecture, "patch_px": models.patch_px,
                    "spacing_um": models.spacing_um, "precision": models.precision,
                    "device": models.runner.device.type,
                    "signature_sha256": models.signature_sha256, "signature_version": models.signature_version,
                    "mpp": result.tiles.mpp, "mpp_source": result.run.mpp_source,
                    "restricted_to_annotation": result.run.restricted_to_annotation,
                    "written_by": written_by}).to_dict()


def merge_slide(current: Mapping[str, Any] | None, entry: Mapping[str, Any], models: Any,
                provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The new pathology section: ``entry`` added (replacing the same slide) and the case score pooled.

    Only slides scored with the current patch model and signature are pooled; others stay listed
    (with their own scores) and are named in ``not_pooled`` so nobody mixes models unknowingly.
    """

    slides = [s for s in (current or {}).get("slides", []) if s.get("slide_sha256") != entry["slide_sha256"]]
    slides.append(dict(entry))
    same = [s for s in slides if s.get("patch_model_sha256") == models.model_sha256
            and s.get("signature_sha256") == models.signature_sha256 and s.get("counts")]
    score = float(models.signature.predict([pool_counts([s["counts"] for s in same])])[0])
    return {
        "slides": slides,
        "score": score,
        "pooled_slides": [s["slide_sha256"] for s in same],
        "not_pooled": [s["slide_sha256"] for s in slides if s not in same],
        "pooling": POOLING,
        "provenance": dict(provenance),
    }


def holds_slide(section: Mapping[str, Any] | None, *, slide_sha256: str, annotation_sha256: str | None,
                models: Any) -> bool:
    """Whether ``section`` already pools this slide, tiled within this annotation (None: whole tissue)
    and scored by these models, so that scoring it again would give the same entry."""
    pooled = set((section or {}).get("pooled_slides") or ())
    return any(s.get("slide_sha256") == slide_sha256 and s.get("annotation_sha256") == annotation_sha256
               and s.get("patch_model_sha256") == models.model_sha256
               and s.get("signature_sha256") == models.signature_sha256 and slide_sha256 in pooled
               for s in (section or {}).get("slides") or ())
