"""benchmarks/bench_federated.py run as a script: the CNN modes (radiology, pathology) on the smallest honest
phantom, and the fusion mode still the default. Each checks the JSON lines' structure and that the figures are finite
and in range."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_federated.py"
ALONE_FEDERATED_POOLED = {"c_index_alone_A", "c_index_alone_B", "c_index_alone_C", "c_index_federated",
                          "c_index_pooled"}
FEDERATED_MINUS = {"c_index_federated_minus_pooled", "c_index_federated_minus_alone_A",
                   "c_index_federated_minus_alone_B", "c_index_federated_minus_alone_C"}
T_975_TWO_DF = 4.302653  # Student's t, 97.5th percentile, 2 degrees of freedom (statistical tables)
# What each mode adds: the C of the true phenotype its images render, and the rounds after training.
BY_MODEL = {"radiology": ("c_index_mri_phenotype", "bytes_scores_round"),
            "pathology": ("c_index_slide_phenotype", "bytes_signature_rounds")}
# Seed 2 gives each of the first 8 cases of A, B and C, and the first 12 of D, several recurrences.
TINY = ["--train-cases", "8", "--held-out-cases", "12", "--rounds", "2", "--local-epochs", "1", "--seeds", "1",
        "--first-seed", "2", "--threads", "1", "--workers", "2"]


def bench(*args: str) -> list[dict]:
    run = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines()]  # nothing but JSON lines on stdout


# The patch model runs with round selection (its federated arm keeps the best round; the radiology CNN has none).
SELECTION = {"radiology": [], "pathology": ["--select-round"]}


@pytest.fixture(scope="module", params=sorted(BY_MODEL))
def cnn(request):
    """(model, its lines by figure): about 16 s (radiology) or 42 s (pathology) on 2 idle cores; the 36 phantom
    cases are rendered (two processes) with only the images the CNN reads."""
    model = request.param
    return model, {line["figure"]: line for line in bench("--model", model, *TINY, *SELECTION[model])}


def initial_state_bytes(model: str) -> int:
    """The raw size of the network's weights a centre receives and sends each round."""
    from sarcoma_risk.federated.imaging import initial_network, state_arrays
    from sarcoma_risk.federated.patchmodel import PRESETS, initial_patch_model
    from sarcoma_risk.radiology.config import preset

    network = initial_network(*preset("tiny")) if model == "radiology" else initial_patch_model(PRESETS["tiny"])
    return sum(a.nbytes for a in state_arrays(network).values())


@pytest.mark.slow
def test_a_cnn_mode_prints_one_line_per_figure_of_the_cnn_benchmark(cnn):
    model, lines = cnn
    phenotype, after_training = BY_MODEL[model]
    assert set(lines) == ALONE_FEDERATED_POOLED | {
        phenotype, *FEDERATED_MINUS, "federated_above_best_single_centre", "rounds",
        "bytes_sent_per_round", "bytes_received_per_round", after_training, "render_and_prepare_seconds",
        "federated_fit_seconds", "pooled_fit_seconds"} | ({"bytes_evaluate_rounds", "selected_round"}
                                                        if model == "pathology" else set())
    for figure, line in lines.items():
        assert line["bench"] == "federated" and line["model"] == model, figure
        assert line["select_round"] == (model == "pathology"), figure
        assert line["usable_cases"] == [{"A": 8, "B": 8, "C": 8, "D": 12}], figure
        assert line["rounds_x_local_epochs"] == "2x1" and line["seeds"] == 1, figure
        assert isinstance(line["value"], (int, float)) and math.isfinite(line["value"]), figure


@pytest.mark.slow
def test_every_c_index_of_a_cnn_mode_is_a_concordance_and_the_difference_is_federated_minus_pooled(cnn):
    model, lines = cnn
    for figure in ALONE_FEDERATED_POOLED | {BY_MODEL[model][0]}:
        line = lines[figure]
        assert line["unit"] == "harrell_c" and 0.0 <= line["value"] <= 1.0, figure
        assert line["min"] == line["value"] == line["max"], figure  # one seed: its mean is its worst and best
    for other in ("pooled", "alone_A", "alone_B", "alone_C"):
        line = lines[f"c_index_federated_minus_{other}"]
        assert line["value"] == pytest.approx(lines["c_index_federated"]["value"] - lines[f"c_index_{other}"]["value"],
                                              abs=2e-4), other
        assert line["ci_low"] is None and line["ci_high"] is None, other  # no interval from one seed
    best_alone = max(lines[f"c_index_alone_{c}"]["value"] for c in "ABC")
    above = lines["federated_above_best_single_centre"]
    assert above["of"] == 1 and above["value"] in (0, 1)
    if abs(lines["c_index_federated"]["value"] - best_alone) > 2e-4:  # not a tie hidden by rounding
        assert above["value"] == int(lines["c_index_federated"]["value"] > best_alone)


@pytest.mark.slow
def test_a_cnn_mode_counts_the_two_fedavg_rounds_with_the_weights_on_the_wire_and_the_rounds_after(cnn):
    model, lines = cnn
    evaluate = 2 if model == "pathology" else 0  # round selection: an evaluate round after each of the 2 rounds
    after = lines["rounds"]["value"] - 2 - evaluate
    assert after == 1 if model == "radiology" else after >= 3  # centring; or signature summary, moments, Newton
    if model == "pathology":
        assert lines["selected_round"]["value"] in (1, 2)
        # each evaluate round sends the average to all 3 centres; they answer with five sums
        assert 2 * 3 * initial_state_bytes(model) <= lines["bytes_evaluate_rounds"]["value"] \
            <= 2 * 3.3 * initial_state_bytes(model)
    weights = initial_state_bytes(model)
    for figure in ("bytes_sent_per_round", "bytes_received_per_round"):
        # three centres, each sent / sending the network's weights, plus Flower's framing
        assert 3 * weights <= lines[figure]["value"] <= 3.3 * weights, figure
    assert lines[BY_MODEL[model][1]]["value"] > 3 * weights  # the final weights go out to every centre once more
    assert all(lines[f]["value"] > 0 for f in ("render_and_prepare_seconds", "federated_fit_seconds",
                                               "pooled_fit_seconds"))


def test_without_a_model_the_benchmark_is_still_the_federated_fusion_one():
    lines = bench("--seeds", "1", "--validation", "100")
    figures = {line["figure"] for line in lines}
    assert {"c_index_federated", "c_index_pooled", "rounds", "bytes_sent_per_round"} <= figures
    assert all("model" not in line and line["submodel"] == "clinical+radiology+pathology" for line in lines)
    assert all(0.0 <= line["value"] <= 1.0 for line in lines if line["figure"].startswith("c_index_")
               and line["figure"] not in FEDERATED_MINUS)


def test_federated_minus_each_other_arm_is_paired_by_seed_with_a_t_interval_of_its_mean():
    lines = {line["figure"]: line for line in bench("--seeds", "3", "--validation", "100")}
    federated = lines["c_index_federated"]["per_seed"]
    assert len(federated) == 3 and lines["c_index_federated"]["min"] == min(federated)
    for figure in FEDERATED_MINUS:
        other = lines[figure.replace("federated_minus_", "")]["per_seed"]
        differences = [f - o for f, o in zip(federated, other)]  # seed k of one arm against seed k of the other
        mean = sum(differences) / 3
        sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
        line = lines[figure]
        assert line["value"] == pytest.approx(mean, abs=2e-4), figure
        assert (line["min"], line["max"]) == pytest.approx((min(differences), max(differences)), abs=2e-4), figure
        half = T_975_TWO_DF * sd / math.sqrt(3)
        assert line["ci_level"] == 0.95
        assert (line["ci_low"], line["ci_high"]) == pytest.approx((mean - half, mean + half), abs=5e-4), figure


def test_round_selection_is_refused_for_the_radiology_cnn():
    run = subprocess.run([sys.executable, str(BENCH), "--model", "radiology", "--select-round"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "--select-round: only with --model pathology" in run.stderr


def test_a_centre_with_too_few_events_stops_the_fusion_benchmark_with_its_name_and_no_traceback():
    # Seed 0 gives centre A 7 recurrences among 40 cases; a Cox sub-model needs 10.
    run = subprocess.run([sys.executable, str(BENCH), "--seeds", "1", "--cases-per-centre", "40", "--validation",
                          "100"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("bench_federated: seed 0: centre A alone: no sub-model could be fitted")
    assert "7 event(s)" in run.stderr and "needs at least 10 events" in run.stderr
    assert "Traceback" not in run.stderr and "--cases-per-centre" in run.stderr
