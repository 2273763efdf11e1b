"""Checkpoints and --resume of radiology training: an interrupted run continues to the very same weights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sarcoma_risk.cli import main
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.resume import TrainingCheckpoint

from checkpointcrash import Crash, crash_after_epoch_of  # noqa: I001

#: Four short epochs with early stopping possible from the second one.
SHORT = {"epochs": 4, "min_epochs": 2, "patience": 2}


@pytest.fixture
def crash_after_epoch(monkeypatch):
    """``crash_after_epoch(k)``: every fit dies just after saving its checkpoint of epoch k (once)."""
    return lambda k: crash_after_epoch_of(monkeypatch, k)


def fit(phantom_set, checkpoint, **train):
    pre, net, config = preset("tiny")
    X, time, event = phantom_set.X[:16], phantom_set.time[:16], phantom_set.event[:16]
    return RadiologyCoxModel(pre, net, replace(config, **{**SHORT, **train})).fit(X, time, event, checkpoint=checkpoint)


def same_weights(a: RadiologyCoxModel, b: RadiologyCoxModel) -> bool:
    first, second = a.network_.state_dict(), b.network_.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_fit_resumed_after_a_crash_ends_with_the_same_weights_as_an_uninterrupted_one(phantom_set, tmp_path,
                                                                                         crash_after_epoch):
    whole = fit(phantom_set, TrainingCheckpoint(tmp_path / "whole.pt", {"fit": "a"}))
    crash_after_epoch(2)
    with pytest.raises(Crash):
        fit(phantom_set, TrainingCheckpoint(tmp_path / "split.pt", {"fit": "a"}))
    assert torch.load(tmp_path / "split.pt", weights_only=True)["epoch"] == 2
    resumed = fit(phantom_set, TrainingCheckpoint(tmp_path / "split.pt", {"fit": "a"}, resume=True))
    assert same_weights(whole, resumed)
    assert resumed.history_ == whole.history_ and resumed.best_epoch_ == whole.best_epoch_
    assert resumed.initial_loss_ == whole.initial_loss_ and resumed.final_loss_ == whole.final_loss_
    assert (resumed.reference_scores_ == whole.reference_scores_).all()


def test_without_resume_an_existing_checkpoint_is_overwritten_not_continued(phantom_set, tmp_path):
    checkpoint = TrainingCheckpoint(tmp_path / "fit.pt", {"fit": "a"})
    first = fit(phantom_set, checkpoint)
    again = fit(phantom_set, checkpoint)  # starts at epoch 1 again, and so ends where the first did
    assert same_weights(first, again) and len(again.history_) == len(first.history_)


def test_a_checkpoint_of_another_configuration_is_not_resumed_from(phantom_set, tmp_path):
    fit(phantom_set, TrainingCheckpoint(tmp_path / "fit.pt", {"fit": "a", "learning_rate": 0.003}))
    with pytest.raises(InvalidInput, match=r"fit.pt: written by another run \(it differs in learning_rate\)"):
        fit(phantom_set, TrainingCheckpoint(tmp_path / "fit.pt", {"fit": "a", "learning_rate": 0.01}, resume=True),
            learning_rate=0.01)


def test_a_damaged_checkpoint_is_refused_with_what_to_do(phantom_set, tmp_path):
    (tmp_path / "fit.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInput, match="not a readable training checkpoint .*delete it"):
        fit(phantom_set, TrainingCheckpoint(tmp_path / "fit.pt", {"fit": "a"}, resume=True))


def train(manifest: Path, out: Path, *extra: str) -> int:
    return main(["train", "radiology", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny",
                 "--folds", "0", "--epochs", "3", "--threads", "1", "--sequence-sets", "t2fs+t1ce", *extra])


def test_train_radiology_resume_after_a_crash_writes_the_same_weights(phantom_cohort_tiny, tmp_path, capsys,
                                                                      crash_after_epoch):
    assert train(phantom_cohort_tiny.manifest, tmp_path / "whole") == 0
    crash_after_epoch(2)
    with pytest.raises(Crash):
        train(phantom_cohort_tiny.manifest, tmp_path / "split")
    assert not (tmp_path / "split" / "radiology-t2fs+t1ce.pt").exists()
    assert (tmp_path / "split" / "checkpoints" / "radiology-t2fs+t1ce.pt").is_file()
    assert train(phantom_cohort_tiny.manifest, tmp_path / "split", "--resume") == 0
    assert "resuming after epoch 2" in capsys.readouterr().err
    assert sha256_file(tmp_path / "split" / "radiology-t2fs+t1ce.pt") == \
        sha256_file(tmp_path / "whole" / "radiology-t2fs+t1ce.pt")
    run = json.loads((tmp_path / "split" / "radiology_training.json").read_text())
    assert run["runtime"]["resumed"] is True and run["runtime"]["device"] == "cpu"


def test_train_radiology_refuses_to_resume_with_other_options(phantom_cohort_tiny, tmp_path, capsys):
    assert train(phantom_cohort_tiny.manifest, tmp_path / "out") == 0
    capsys.readouterr()
    assert train(phantom_cohort_tiny.manifest, tmp_path / "out", "--resume", "--seed", "5") == 1
    err = capsys.readouterr().err
    assert "radiology-t2fs+t1ce.pt: written by another run (it differs in train)" in err and "leave out --resume" in err
