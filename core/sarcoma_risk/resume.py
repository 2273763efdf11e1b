"""Training checkpoints: the whole state of one fit, written atomically after every epoch, for ``--resume``.

A checkpoint holds what the next epoch depends on: the network's and the optimizer's state, the
gradient scaler's (fp16), every random generator the trainer draws from (torch's global CPU and
CUDA generators and the trainer's own), the epoch just finished, and the trainer's bookkeeping
(history, best epoch and its weights, whether early stopping has ended the fit). Neither trainer
uses a learning-rate scheduler, so there is none to save. Continuing from it runs the remaining
epochs exactly as the uninterrupted run would have: on the CPU the final weights are bit for bit
the same (tests/radiology/test_resume.py, tests/pathology/test_resume.py).

Each checkpoint carries the identity of its fit (what was trained on what, and how: configuration,
data hash, fold, precision, number of processes); resuming from a checkpoint of another identity is
refused with the differing keys named, since it would silently mix two runs. The file is written
through a temporary file and a rename, so a crash while saving leaves the previous epoch's
checkpoint, and loaded with ``weights_only=True`` (tensors and plain values only).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_write_bytes

FORMAT = "sarcoma-risk-training-state/1"


@dataclass(frozen=True)
class TrainingCheckpoint:
    """Where one fit keeps its state, the fit's identity, and whether to continue from the file.

    Parameters
    ----------
    path : path
        The checkpoint file (``.pt``).
    identity : mapping
        JSON-able description of the fit; a file with another identity is not resumed from.
    resume : bool
        Continue from the file when it exists (else start afresh and overwrite it).
    write : bool
        Whether this process writes it (rank 0 of a distributed run; every process reads it).
    """

    path: Path
    identity: Mapping[str, Any]
    resume: bool = False
    write: bool = True

    def _identity_text(self) -> str:
        return json.dumps(self.identity, sort_keys=True, default=str)

    def load(self) -> dict[str, Any] | None:
        """The saved state to continue from, or None (not resuming, or no checkpoint yet)."""
        if not self.resume or not self.path.exists():
            return None

        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for damaged files
            # torch's own message is pages long and suggests unsafe loading; the exception's kind is enough
            raise InvalidInput(f"{self.path}: not a readable training checkpoint (damaged, or not written by "
                               f"SarcomaRisk: {type(exc).__name__}); delete it to start this fit afresh") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise InvalidInput(f"{self.path}: not a SarcomaRisk training checkpoint (expected format {FORMAT!r})")
        saved = json.loads(state["identity"])
        if saved != json.loads(self._identity_text()):
            keys = sorted(k for k in set(saved) | set(self.identity) if saved.get(k) != self.identity.get(k))
            raise InvalidInput(f"{self.path}: written by another run (it differs in {', '.join(keys)}); resume with the "
                               "same data and options, or delete the checkpoints (or leave out --resume) to start "
                               "afresh")
        return state

    def save(self, epoch: int, state: Mapping[str, Any]) -> None:
        """Write ``state`` (tensors and plain values) after ``epoch``, atomically; a no-op where ``write`` is off."""
        if not self.write:
            return

        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "identity": self._identity_text(), "epoch": epoch, **state}, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())


def rng_state(generators: Sequence["torch.Generator"]) -> dict[str, Any]:
    """torch's global generators (CPU, and CUDA when initialised) and ``generators``, as tensors."""

    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "generators": [g.get_state() for g in generators]}


def restore_rng(state: Mapping[str, Any], generators: Sequence["torch.Generator"]) -> None:
    """Put back what :func:`rng_state` saved."""

    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, saved in zip(generators, state["generators"], strict=True):
        generator.set_state(saved)
