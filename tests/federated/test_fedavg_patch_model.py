"""FedAvg of the patch model (ShuffleNetV2) on Flower: one centre for one round is the local training of the
same seed; the messages hold only the model's state dict and counts; simulate writes train pathology's entry."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.fedavg import FedAvgSettings, from_record, training_data
from sarcoma_risk.federated.imaging import state_arrays
from sarcoma_risk.federated.patchmodel import PRESETS, initial_patch_model, load_pathology_centre
from sarcoma_risk.pathology.model import make_patch_model
from sarcoma_risk.pathology.pipeline import load_models
from sarcoma_risk.pathology.train import PatchTrainer, SlidePool
from sarcoma_risk.release.model_card import _federated_cnn
from sarcoma_risk.weights import WeightRegistry

from .conftest import assert_sender, simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_one_centre_for_one_round_trains_exactly_the_local_patch_model_of_the_same_seed(slide_manifest):
    centre = load_pathology_centre(slide_manifest, "A")
    federated = simulate({"A": centre}, {"model": "pathology", "min-centres": 1, "rounds": 1, "local-epochs": 2,
                                         "seed": 4, "min-centre-events": 2})
    local = PatchTrainer(replace(PRESETS["tiny"], epochs=2, patience=2, seed=4)).fit(centre.cases, SlidePool())
    fed_state, local_state = state_arrays(federated.model), state_arrays(local.model)
    assert set(fed_state) == set(local_state)
    for name in local_state:
        np.testing.assert_array_equal(fed_state[name], local_state[name], err_msg=name)
    start = state_arrays(initial_patch_model(replace(PRESETS["tiny"], seed=4)))
    assert any(not np.array_equal(start[k], local_state[k]) for k in local_state)
    assert federated.n_cases == local.n_train_cases


def test_every_patch_model_message_holds_only_its_state_dict_counts_and_signature_sums(slide_manifest):
    centres = {c: load_pathology_centre(slide_manifest, c) for c in "AB"}
    messages = []
    result = simulate(centres, {"model": "pathology", "min-centres": 2, "rounds": 1, "min-centre-events": 2},
                      on_message=lambda direction, m, size: messages.append((direction, m)))
    shapes = {k: v.shape or (1,) for k, v in state_arrays(initial_patch_model(PRESETS["tiny"])).items()}
    kinds = [(d, m.metadata.message_type) for d, m in messages]
    assert kinds[:4] == [("sent", "train")] * 2 + [("received", "train")] * 2
    assert set(kinds[4:]) == {("sent", "query.signature"), ("received", "query.signature")}
    features = 10 + 20  # the signature's histogram bins and words
    for direction, message in messages[4:]:  # the slide signature: sums sized by the signature, not by the cases
        content = message.content
        assert_sender(content)
        if direction == "sent":
            assert set(content.array_records) <= {"arrays", "model"}
            if "model" in content.array_records:
                assert {k: v.shape for k, v in from_record(content.array_records["model"]).items()} == shapes
        else:
            assert set(content.array_records) == {"arrays"} and not content.metric_records
            assert set(content.config_records["config"]) <= {"n", "events", "log_likelihood"}
            p = int(result.signature.used_.sum())  # the features the Cox model uses
            expected = {"df": (20,), "sum": (features,), "sum_squares": (features,), "gradient": (p,),
                        "hessian": (p, p), "pairs": (2,)}
            for name, array in from_record(content.array_records["arrays"]).items():
                assert array.shape == expected[name], (name, array.shape)
    assert sum(1 for d, m in messages[4:] if "model" in m.content.array_records) == 2  # the model goes once a centre
    for direction, message in messages[:4]:
        content = message.content
        assert_sender(content)
        assert set(content.array_records) == {"arrays"}
        assert {k: v.shape for k, v in from_record(content.array_records["arrays"]).items()} == shapes
        if direction == "sent":
            assert not content.metric_records
            assert all(re.fullmatch(r"model|preset|sequences|local-epochs|seed|dp-clip|dp-noise|min-centre-events|select-round|"
                                    r"server-round", k) for k in content.config_records["config"])
        else:
            assert set(content.config_records) == {"sender"}
            assert set(content.metric_records["metrics"]) == {"num-examples", "train-loss"}
    assert result.centres == 2 and result.rounds[0]["examples"] == result.n_cases
    assert result.signature.n_cases_ == 16


def test_round_selection_scores_each_average_on_the_centres_validation_shares_as_train_pathology_scores_an_epoch(
        slide_manifest):
    centre = load_pathology_centre(slide_manifest, "A")
    federated = simulate({"A": centre}, {"model": "pathology", "min-centres": 1, "rounds": 1, "local-epochs": 1,
                                         "seed": 4, "min-centre-events": 2, "select-round": True})
    # one centre, one round: the average is that centre's round, trained and validated on the run's share
    share = centre.validation_share(PRESETS["tiny"], 4)
    local = PatchTrainer(replace(PRESETS["tiny"], epochs=1, patience=1, seed=4)).fit(centre.cases, SlidePool(),
                                                                                   validation=share)
    assert local.n_val_cases == sum(share) >= 2  # a case of each outcome stratum at least
    [figures] = federated.round_validation
    assert federated.selected_round == 1 and figures["cases"] == sum(share)
    assert figures["c_index"] == pytest.approx(local.history[0]["val_cindex"], abs=1e-12)
    assert figures["loss"] == pytest.approx(local.history[0]["val_loss"], rel=1e-6)


def test_round_selection_keeps_the_best_round_and_its_messages_hold_only_the_average_and_sums(slide_manifest):
    centres = {c: load_pathology_centre(slide_manifest, c) for c in "AB"}
    messages = []
    result = simulate(centres, {"model": "pathology", "min-centres": 2, "rounds": 3, "min-centre-events": 2,
                                "select-round": True},
                      on_message=lambda direction, m, size: messages.append((direction, m)))
    shapes = {k: v.shape or (1,) for k, v in state_arrays(initial_patch_model(PRESETS["tiny"])).items()}
    evaluated = [(d, m) for d, m in messages if m.metadata.message_type == "evaluate"]
    assert len(evaluated) == 3 * 2 * 2  # three rounds, two centres, there and back
    averages = {}
    for direction, message in evaluated:
        content = message.content
        assert_sender(content)
        if direction == "sent":  # the round's average and the settings
            arrays = from_record(content.array_records["arrays"])
            assert {k: v.shape for k, v in arrays.items()} == shapes
            averages[int(content.config_records["config"]["server-round"])] = arrays
        else:  # sums over the centre's validation cases: no score, no case
            assert not content.array_records and set(content.config_records) == {"sender"}
            assert set(content.metric_records["metrics"]) == {"num-examples", "concordant", "comparable",
                                                              "loss-sum", "loss-patches"}
    figures = result.round_validation
    held_out = sum(sum(c.validation_share(PRESETS["tiny"], PRESETS["tiny"].seed)) for c in centres.values())
    assert [f["round"] for f in figures] == [1, 2, 3] and all(f["cases"] == held_out for f in figures)
    best = max(figures, key=lambda f: (f["c_index"], -f["loss"]))
    assert result.selected_round == best["round"]
    kept = state_arrays(result.model)
    for name, array in averages[best["round"]].items():
        np.testing.assert_array_equal(kept[name], array, err_msg=name)
    entry = training_data(result)
    assert entry["selected_round"] == best["round"] and entry["round_validation"] == figures
    assert f"3 rounds, round {best['round']} kept (best on the centres' validation shares)" in _federated_cnn(
        {"training_data": {"federated": entry}})


def test_round_selection_is_refused_for_the_radiology_cnn():
    with pytest.raises(InvalidInput, match="--select-round: only the patch model"):
        FedAvgSettings(model="radiology", select_round=True).check()


def test_simulate_writes_the_patch_model_as_train_pathology_registers_it(slide_manifest, tmp_path, capsys):
    weights = tmp_path / "weights"
    assert main(["federated", "simulate", "--model", "pathology", "--manifest", str(slide_manifest), "--out",
                 str(weights), "--preset", "tiny", "--rounds", "1", "--min-centre-events", "2", "--dp-clip", "5", "--dp-noise", "0.01",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    state, entry = WeightRegistry(weights).load_torch("pathology-patch")  # sha256 checked against the manifest
    assert entry["sha256"] == summary["sha256"] and entry["kind"] == "shufflenetv2-patch"
    model = make_patch_model(entry["config"]["architecture"], state=state)  # loads strictly
    assert model is not None
    models = load_models(weights)  # the patch model and its signature, as score-slide loads them
    assert models.signature.n_cases_ == 16
    federated = entry["training_data"]["federated"]
    assert federated["differential_privacy"] == {"clip": 5.0, "noise_multiplier": 0.01, "epsilon": None}
    assert federated["centres"] == 2 and federated["rounds"] == 1
    assert _federated_cnn(entry) == ("trained federated (flwr 1.32.1) across 2 centres without pooling their images: "
                                     "FedAvg, weighted by each centre's number of cases, 1 local epoch(s) a round, 1 "
                                     "rounds, updates clipped to L2 norm 5 with Gaussian noise 0.01 x clip (no epsilon "
                                     "computed)")
