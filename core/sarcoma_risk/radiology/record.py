"""The case record's radiology section, as ``score-mri`` and ``score-cohort`` write it.

:func:`radiology_section` builds the section from a scored case (score, percentile, tumor volume,
sequences, provenance, and a place for the Grad-CAM's sha256); :func:`section_is_current`
tells whether a stored section already holds the result of these inputs and weights, so a batch
can skip a case it scored before.
"""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.provenance import Provenance
from sarcoma_risk.radiology.checkpoint import model_name


def radiology_section(result: Any, fingerprints: Mapping[str, Mapping[str, Any]], entry: Mapping[str, Any], *,
                      segment: str | None, precision: str, device: str) -> dict[str, Any]:
    """The radiology section of a :class:`~sarcoma_risk.radiology.infer.RadiologyResult`.

    ``fingerprints`` are the case's input fingerprints (``MRICase.fingerprints``), ``entry`` the
    model's weights manifest entry (version, sha256), ``segment`` the segment asked for (None: the
    first one), ``precision`` the one the case was scored in (after the precision check) and
    ``device`` the torch device type it ran on. ``model`` names the sequence set's model that scored
    it (``radiology-t2fs``; :mod:`sarcoma_risk.sequences`). ``gradcam_sha256`` is None until the caller
    writes a Grad-CAM.
    """

    name = model_name(result.sequence_set)
    provenance = Provenance(
        name, entry["version"], entry["sha256"], inputs=fingerprints,
        parameters={"segment": segment, "patch_spacing_mm": round(result.patch_spacing_mm, 4),
                    "sequences": result.sequences, "precision": precision, "device": device})
    return {
        "score": result.score,
        "percentile": result.percentile,
        "tumor_volume_ml": result.tumor_volume_ml,
        "sequences": result.sequences,
        "model": name,
        "gradcam_sha256": None,  # set by score-mri when it writes the Grad-CAM
        "provenance": provenance.to_dict(),
    }


def section_is_current(section: Mapping[str, Any] | None, *, weights_sha256: str,
                       fingerprints: Mapping[str, Mapping[str, Any]], segment: str | None) -> bool:
    """Whether ``section`` was computed by these weights from these inputs (same content) and segment."""
    provenance = (section or {}).get("provenance") or {}
    return (provenance.get("weights_sha256") == weights_sha256
            and provenance.get("inputs") == {role: dict(f) for role, f in fingerprints.items()}
            and (provenance.get("parameters") or {}).get("segment") == segment)
