"""The case record's pathology section, updated with one scored slide.

The section (see the data contracts) holds one entry per slide and the case score::

    {"slides": [{"slide_sha256", "score", "n_tiles", "tissue_area_mm2", "restricted_to_annotation",
                 "annotation_sha256", "mpp", "counts", "model_sha256", "signature_sha256", ...}],
     "score": <pooled case score, log relative hazard>, "provenance": {...}}

A slide scored again replaces its entry (same ``slide_sha256``); other slides stay. The case score
pools the slides the way the signature was fit (patch counts summed over the slides of a case,
:func:`sarcoma_risk.pathology.signature.pool_counts`), over the slides scored with the same patch
model and signature as this one: counts from other weights are not comparable, so such slides keep
their entry but are left out of the pooled score, and the provenance says which were pooled.
No file name enters the record: slides are named by content sha256.
"""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.provenance import Provenance


def slide_entry(result: Any, models: Any) -> dict[str, Any]:
    """The record entry of a :class:`~sarcoma_risk.pathology.pipeline.SlideResult`."""
    tiles, run = result.tiles, result.run
    return {
        "slide_sha256": tiles.slide_sha256,
        "slide_bytes": int(run.slide_fingerprint["bytes"]),
        "score": float(result.score),
        "mean_probability": float(result.mean_probability),
        "n_tiles": len(tiles),
        "tissue_area_mm2": float(tiles.tissue_area_mm2),
        "restricted_to_annotation": bool(run.restricted_to_annotation),
        "annotation_sha256": run.annotation_sha256,
        "n_annotations": int(run.n_annotations),
        "mpp": float(tiles.mpp),
        "mpp_source": run.mpp_source,
        "counts": {k: [int(v) for v in values] for k, values in result.counts.items()},
        "model_sha256": models.model_sha256,
        "signature_sha256": models.signature_sha256,
    }


def updated_section(current: Mapping[str, Any] | None, entry: Mapping[str, Any], models: Any,
                    parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The pathology section with ``entry`` added (or replacing the same slide's) and the case score pooled."""
    from sarcoma_risk.pathology.pipeline import PATCH_MODEL, SIGNATURE_MODEL
    from sarcoma_risk.pathology.signature import pool_counts

    slides = [dict(s) for s in (current or {}).get("slides", []) if s.get("slide_sha256") != entry["slide_sha256"]]
    slides.append(dict(entry))
    pooled = [s for s in slides if s.get("model_sha256") == models.model_sha256
              and s.get("signature_sha256") == models.signature_sha256 and isinstance(s.get("counts"), Mapping)]
    score = float(models.signature.predict([pool_counts([s["counts"] for s in pooled])])[0])
    provenance = Provenance(
        SIGNATURE_MODEL, models.signature_version, models.signature_sha256,
        inputs={f"slide_{i + 1}": {"sha256": s["slide_sha256"], "bytes": s.get("slide_bytes"), "files": 1}
                for i, s in enumerate(pooled)},
        parameters={**parameters, "patch_model": PATCH_MODEL, "patch_model_version": models.model_version,
                    "patch_model_sha256": models.model_sha256, "architecture": models.architecture,
                    "patch_px": models.patch_px, "spacing_um": models.spacing_um, "precision": models.precision,
                    "pooled_slides": len(pooled), "slides_not_pooled": len(slides) - len(pooled),
                    "written_by": "sarcoma-qupath"})
    return {"slides": slides, "score": score, "provenance": provenance.to_dict()}
