"""Training: the loss falls, held-out phantoms are ranked far better than chance, determinism, weights."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from sarcoma_risk.errors import InvalidModel, TamperedWeights, WeightsNotFound
from sarcoma_risk.radiology.checkpoint import MODEL_KIND, available_sets, load_model
from sarcoma_risk.radiology.config import preset
from sarcoma_risk.radiology.ensemble import RadiologyEnsemble
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.weights import WeightRegistry


def test_a_short_training_run_lowers_the_loss_and_ranks_held_out_phantoms(phantom_set, trained):
    model, _ = trained
    assert model.final_loss_ < model.initial_loss_ - 0.1
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    held = phantom_set.held_out
    c_index = harrell_c(phantom_set.time[held], phantom_set.event[held], model.predict(phantom_set.X[held]))
    # Chance is 0.5; the phenotype itself (the oracle) reaches about 0.9 on these cases.
    assert c_index > 0.7, c_index


def test_scores_are_centred_on_the_development_cohort_and_percentiles_follow_them(phantom_set, trained):
    model, _ = trained
    development = model.predict(phantom_set.X[phantom_set.train])
    assert abs(development.mean()) < 1e-4
    assert np.allclose(np.sort(development), model.reference_scores_, atol=1e-5)
    percentiles = model.percentile(np.array([-100.0, 0.0, np.median(development), 100.0]))
    assert percentiles[0] == 0 and percentiles[-1] == 100 and percentiles[2] == pytest.approx(50, abs=3)
    assert np.all(np.diff(percentiles) >= 0)


def test_the_same_seed_and_data_give_the_same_weights(phantom_set):
    pre, net, train = preset("tiny")
    short = replace(train, epochs=2, min_epochs=1)
    X, time, event = phantom_set.X[:14], phantom_set.time[:14], phantom_set.event[:14]
    first = RadiologyCoxModel(pre, net, short).fit(X, time, event)
    second = RadiologyCoxModel(pre, net, short).fit(X, time, event)
    for key, value in first.network_.state_dict().items():
        assert torch.equal(value, second.network_.state_dict()[key]), key
    other = RadiologyCoxModel(pre, net, replace(short, seed=1)).fit(X, time, event)
    assert not np.allclose(first.predict(X), other.predict(X))
    assert np.array_equal(first.predict(X), first.predict(X))


def test_a_checkpoint_round_trips_and_the_registry_entry_describes_it(phantom_set, trained):
    model, weights = trained
    assert available_sets(weights) == ["t2fs+t1ce", "t2fs"]
    loaded, entry = load_model(weights, "t2fs+t1ce")
    X = phantom_set.X[phantom_set.held_out]
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert entry["kind"] == MODEL_KIND and entry["file"] == "radiology-t2fs+t1ce.pt"
    assert entry["config"]["preprocess"] == model.preprocess.to_dict()
    assert entry["config"]["feature_stride"] == model.model.feature_stride
    assert entry["config"]["sequence_set"] == "t2fs+t1ce" and entry["config"]["reference_scores"] == "in_sample"
    t2_only, entry = load_model(weights, "t2fs")
    assert t2_only.preprocess.sequences == ("t2fs",) and t2_only.preprocess.in_channels == 2
    assert entry["file"] == "radiology-t2fs.pt"


def test_a_tampered_weights_file_is_refused(tmp_path, trained):
    _, weights = trained
    copy = tmp_path / "weights"
    shutil.copytree(weights, copy)
    data = bytearray((copy / "radiology-t2fs.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "radiology-t2fs.pt").write_bytes(bytes(data))
    with pytest.raises(TamperedWeights, match="radiology-t2fs.pt: sha256 .* does not match"):
        load_model(copy, "t2fs")
    load_model(copy, "t2fs+t1ce")  # the other set's file is untouched


def test_an_edited_manifest_configuration_is_refused(tmp_path, trained):
    _, weights = trained
    copy = tmp_path / "weights"
    shutil.copytree(weights, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"]["radiology-t2fs+t1ce"]["config"]["preprocess"]["spacing_mm"] = 1.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidModel, match="differs from the one inside the checkpoint"):
        load_model(copy, "t2fs+t1ce")


def test_a_folder_without_a_radiology_model_says_how_to_train_them(tmp_path, trained):
    with pytest.raises(WeightsNotFound, match="holds no radiology model per sequence set; train them with "
                                              "`sarcoma-risk train radiology"):
        load_model(tmp_path, "t2fs")
    with pytest.raises(WeightsNotFound, match="no such weights folder"):
        load_model(tmp_path / "absent", "t2fs")
    with pytest.raises(WeightsNotFound, match=r"no radiology model for T1CE only \(t1ce\); it has: t2fs\+t1ce, t2fs"):
        load_model(trained[1], "t1ce")


def test_an_earlier_release_with_one_radiology_model_is_named_and_refused(tmp_path):
    (tmp_path / "radiology.pt").write_bytes(b"old")
    WeightRegistry(tmp_path).register("radiology", "radiology.pt", kind=MODEL_KIND, version="0.1.0")
    with pytest.raises(WeightsNotFound, match="earlier release, registered as 'radiology'"):
        available_sets(tmp_path)


def test_the_ensemble_scores_the_mean_of_its_members_and_its_percentiles_follow_its_reference(phantom_set, trained):
    model, _ = trained
    pre, net, train = preset("tiny")
    other = RadiologyCoxModel(pre, net, replace(train, epochs=2, min_epochs=1, seed=5)).fit(
        phantom_set.X[:14], phantom_set.time[:14], phantom_set.event[:14])
    reference = np.linspace(-1, 1, 21)
    ensemble = RadiologyEnsemble([model, other], reference[::-1])
    X = phantom_set.X[phantom_set.held_out]
    assert np.allclose(ensemble.predict(X), (model.predict(X) + other.predict(X)) / 2)
    assert ensemble.percentile(np.array([-2.0, 0.0, 2.0])).tolist() == [0.0, 50.0, 100.0]
    again = RadiologyEnsemble.from_checkpoint(ensemble.to_checkpoint())
    assert np.array_equal(again.predict(X), ensemble.predict(X))
    assert again.config_dict()["member_seeds"] == [train.seed, 5]
    with pytest.raises(InvalidModel, match="not fitted"):
        RadiologyEnsemble([model, RadiologyCoxModel(pre, net, train)], reference)
    mismatched = copy.copy(other)
    mismatched.preprocess = replace(pre, sequences=("t2fs",))
    with pytest.raises(InvalidModel, match="differ in preprocessing"):
        RadiologyEnsemble([model, mismatched], reference)


def test_an_ensemble_checkpoint_of_another_format_is_refused():
    with pytest.raises(InvalidModel, match="not a radiology model of this version .* retrain it"):
        RadiologyEnsemble.from_checkpoint({"format": "sarcoma-risk-radiology/1"}, "radiology.pt")


def test_a_checkpoint_of_another_kind_is_refused():
    with pytest.raises(InvalidModel, match="not a radiology checkpoint"):
        RadiologyCoxModel.from_checkpoint({"format": "sarcoma-risk-pathology/1"})
    with pytest.raises(InvalidModel, match="not fitted"):
        RadiologyCoxModel().predict(np.zeros((1, 3, 64, 64, 64), np.float32))
