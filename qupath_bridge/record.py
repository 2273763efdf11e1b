"""The case record's pathology section, updated with one slide scored through QuPath.

``sarcoma-risk score-slide`` and the bridge write the same section, so the bridge builds the slide
entry and merges it exactly as score-slide does (:mod:`sarcoma_risk.cli.score_slide`): a slide
scored again replaces its entry (same ``slide_sha256``), other slides stay, and the case score
pools the tile counts of every slide scored with the same patch model and signature. The bridge
adds ``n_annotations`` (how many Tumor annotations restricted the tiling) and names itself in the
provenance. No file name enters the record: slides and annotations are named by content sha256.
"""

from __future__ import annotations

from typing import Any, Mapping


def slide_entry(result: Any, models: Any) -> dict[str, Any]:
    """The record entry of a :class:`~sarcoma_risk.pathology.pipeline.SlideResult` (score-slide's keys)."""
    from sarcoma_risk.cli.score_slide import _slide_entry

    entry = _slide_entry(result, models, {})  # the results went into QuPath, not into output files
    entry["n_annotations"] = int(result.run.n_annotations)
    return entry


def section_provenance(result: Any, models: Any) -> dict[str, Any]:
    """The provenance block of the section, in score-slide's form, naming sarcoma-qupath as the writer."""
    from sarcoma_risk.provenance import Provenance

    inputs: dict[str, Any] = {"slide": dict(result.run.slide_fingerprint)}
    if result.run.annotation_sha256 is not None:
        inputs["annotation"] = {"sha256": result.run.annotation_sha256, "tumor_annotations": result.run.n_annotations}
    return Provenance(
        model_name="pathology", model_version=models.model_version, weights_sha256=models.model_sha256,
        inputs=inputs,
        parameters={"architecture": models.architecture, "patch_px": models.patch_px,
                    "spacing_um": models.spacing_um, "precision": models.precision,
                    "signature_sha256": models.signature_sha256, "signature_version": models.signature_version,
                    "mpp": result.tiles.mpp, "mpp_source": result.run.mpp_source,
                    "restricted_to_annotation": result.run.restricted_to_annotation,
                    "written_by": "sarcoma-qupath"}).to_dict()


def updated_section(current: Mapping[str, Any] | None, result: Any, models: Any) -> dict[str, Any]:
    """The pathology section with this slide merged in and the case score pooled (as score-slide does)."""
    from sarcoma_risk.cli.score_slide import merge_slide

    return merge_slide(dict(current) if current else None, slide_entry(result, models), models,
                       section_provenance(result, models))
