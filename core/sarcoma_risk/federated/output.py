"""Where a federated fit goes: ``fusion.json`` in a weights folder, registered like ``train fusion``'s.

The registry entry (``manifest.json``) is the one ``train fusion`` writes, with ``training_data``
saying how the model was trained: ``federated`` (engine, strategy, centres, refused centres,
rounds, Newton iterations, bytes per round). ``evaluate`` and ``fuse`` read the folder as any
other; the release model card (:mod:`sarcoma_risk.release.model_card`) states the federated
training when the fusion entry has it. ``federated_run.json`` keeps the run's arguments and rounds.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping, Sequence

from sarcoma_risk.federated.fusion import FitLog
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.fusion.loading import KIND, REGISTRY_NAME
from sarcoma_risk.provenance import software_version
from sarcoma_risk.weights import WeightRegistry

MODEL_FILE = "fusion.json"
RUN_FILE = "federated_run.json"


def federated_training_data(model, fit_log: FitLog, rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``training_data`` of a federated fusion model's registry entry."""
    return {
        "split": "development",
        "n": model.n_development_, "events": model.events_development_,
        "centres": list(fit_log.centres),
        "honest_out_of_fold": True,
        "federated": {
            "engine": f"flwr {version('flwr')}",
            "strategy": "Newton-Raphson on summed per-centre gradients and Hessians of the Cox partial likelihood "
                        "(= pooled Cox model stratified by centre)",
            "centres": list(fit_log.centres),
            "refused": dict(fit_log.refused),
            "dropped_out": list(fit_log.dropped_out),
            "rounds": len(rounds),
            "newton": dict(fit_log.newton),
            "bytes_sent": int(sum(r["bytes_sent"] for r in rounds)),
            "bytes_received": int(sum(r["bytes_received"] for r in rounds)),
        },
    }


def write_federated_fusion(out: Path, model, fit_log: FitLog, rounds: Sequence[Mapping[str, Any]],
                           run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``fusion.json`` and ``federated_run.json`` into ``out`` and register the model; returns the entry."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MODEL_FILE, model.to_dict())
    training_data = federated_training_data(model, fit_log, rounds)
    entry = WeightRegistry(out).register(REGISTRY_NAME, MODEL_FILE, kind=KIND, version=software_version(),
                                         config=model.get_params(), training_data=training_data)
    atomic_write_json(out / RUN_FILE, {"run_config": {k: v for k, v in run_config.items()},
                                       "fit": fit_log.to_dict(), "rounds": list(rounds),
                                       "fusion_sha256": entry["sha256"]})
    return entry
