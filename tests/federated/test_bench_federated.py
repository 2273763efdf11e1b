"""benchmarks/bench_federated.py run as a script: the radiology CNN mode on the smallest honest phantom, and the
fusion mode still the default. Each checks the JSON lines' structure and that the figures are finite and in range."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_federated.py"
HARRELL = {"c_index_mri_phenotype", "c_index_alone_A", "c_index_alone_B", "c_index_alone_C", "c_index_federated",
           "c_index_pooled", "c_index_federated_minus_pooled"}
# Seed 2 gives each of the first 8 cases of A, B and C, and the first 12 of D, several recurrences.
TINY = ["--model", "radiology", "--train-cases", "8", "--held-out-cases", "12", "--rounds", "2", "--local-epochs", "1",
        "--seeds", "1", "--first-seed", "2", "--threads", "1", "--workers", "1"]


def bench(*args: str) -> list[dict]:
    run = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines()]  # nothing but JSON lines on stdout


@pytest.fixture(scope="module")
def radiology():
    """The radiology mode's lines by figure (about 40 s on 2 idle cores, most of it rendering 36 phantom cases)."""
    return {line["figure"]: line for line in bench(*TINY)}


@pytest.mark.slow
def test_the_radiology_mode_prints_one_line_per_figure_of_the_cnn_benchmark(radiology):
    assert set(radiology) == HARRELL | {
        "federated_above_best_single_centre", "rounds", "bytes_sent_per_round", "bytes_received_per_round",
        "bytes_scores_round", "render_and_prepare_seconds", "federated_fit_seconds", "pooled_fit_seconds"}
    for figure, line in radiology.items():
        assert line["bench"] == "federated" and line["model"] == "radiology", figure
        assert line["usable_cases"] == [{"A": 8, "B": 8, "C": 8, "D": 12}], figure
        assert line["rounds_x_local_epochs"] == "2x1" and line["seeds"] == 1, figure
        assert isinstance(line["value"], (int, float)) and math.isfinite(line["value"]), figure


@pytest.mark.slow
def test_every_c_index_of_the_radiology_mode_is_a_concordance_and_the_difference_is_federated_minus_pooled(radiology):
    for figure in HARRELL - {"c_index_federated_minus_pooled"}:
        line = radiology[figure]
        assert line["unit"] == "harrell_c" and 0.0 <= line["value"] <= 1.0, figure
        assert line["min"] == line["value"] == line["max"], figure  # one seed: its mean is its worst and best
    gap = radiology["c_index_federated_minus_pooled"]["value"]
    assert gap == pytest.approx(radiology["c_index_federated"]["value"] - radiology["c_index_pooled"]["value"],
                                abs=2e-4)
    best_alone = max(radiology[f"c_index_alone_{c}"]["value"] for c in "ABC")
    above = radiology["federated_above_best_single_centre"]
    assert above["of"] == 1 and above["value"] in (0, 1)
    if abs(radiology["c_index_federated"]["value"] - best_alone) > 2e-4:  # not a tie hidden by rounding
        assert above["value"] == int(radiology["c_index_federated"]["value"] > best_alone)


@pytest.mark.slow
def test_the_radiology_mode_counts_two_fedavg_rounds_and_the_scores_round_with_the_state_dict_on_the_wire(radiology):
    from sarcoma_risk.federated.imaging import initial_network, state_arrays
    from sarcoma_risk.radiology.config import preset

    assert radiology["rounds"]["value"] == 3
    state_bytes = sum(a.nbytes for a in state_arrays(initial_network(*preset("tiny"))).values())
    for figure in ("bytes_sent_per_round", "bytes_received_per_round"):
        # three centres, each sent / sending the network's weights, plus Flower's framing
        assert 3 * state_bytes <= radiology[figure]["value"] <= 3.3 * state_bytes, figure
    assert radiology["bytes_scores_round"]["value"] > 3 * state_bytes  # the final weights go out once more
    assert all(radiology[f]["value"] > 0 for f in ("render_and_prepare_seconds", "federated_fit_seconds",
                                                    "pooled_fit_seconds"))


def test_without_a_model_the_benchmark_is_still_the_federated_fusion_one():
    lines = bench("--seeds", "1", "--validation", "100")
    figures = {line["figure"] for line in lines}
    assert {"c_index_federated", "c_index_pooled", "rounds", "bytes_sent_per_round"} <= figures
    assert all("model" not in line and line["submodel"] == "clinical+radiology+pathology" for line in lines)
    assert all(0.0 <= line["value"] <= 1.0 for line in lines if line["figure"].startswith("c_index_")
               and line["figure"] != "c_index_federated_minus_pooled")
