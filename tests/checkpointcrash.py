"""A training run that dies right after writing a checkpoint, for the --resume tests of both models."""

from __future__ import annotations

import pytest

from sarcoma_risk.resume import TrainingCheckpoint


class Crash(Exception):
    """The process dying right after a checkpoint was written."""


def crash_after_epoch_of(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """Every fit dies just after saving its checkpoint of epoch ``k`` (once)."""
    save = TrainingCheckpoint.save
    fired = []

    def save_then_die(self, epoch, state):
        save(self, epoch, state)
        if epoch == k and not fired:
            fired.append(epoch)
            raise Crash(f"killed after epoch {epoch}")

    monkeypatch.setattr(TrainingCheckpoint, "save", save_then_die)
