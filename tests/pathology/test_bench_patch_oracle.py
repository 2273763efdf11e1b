"""benchmarks/bench_patch_oracle.py run as a script, at a size that only checks what it prints.

Its figures at a meaningful size (120-400 slides, tens of epochs) take minutes and are quoted in
README; here ten slides and one short epoch per network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_patch_oracle.py"
TINY = ["--slides", "10", "--epochs", "1", "--control-epochs", "1", "--patches-per-epoch", "64"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_outcome_labels_print_their_phenotype_r_and_a_cross_entropy_per_network():
    run = _run(*TINY, "--label", "outcome")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    figures = {line["figure"]: line for line in lines}
    assert set(figures) == {"seconds_render", "label_phenotype_r", "validation_r_patch_model", "train_loss_patch_model",
                            "seconds_patch_model", "validation_r_control", "train_loss_control", "seconds_control"}
    assert all(line["bench"] == "patch_oracle" and line["label"] == "outcome" for line in lines)
    drawn = figures["label_phenotype_r"]
    assert 1 <= drawn["positives"] <= 5 and -1 <= drawn["value"] <= 1  # 6 training slides, both classes drawn
    for network in ("patch_model", "control"):
        assert figures[f"train_loss_{network}"]["unit"] == "bce" and figures[f"train_loss_{network}"]["value"] > 0
        assert -1 <= figures[f"validation_r_{network}"]["value"] <= 1
        assert figures[f"validation_r_{network}"]["validation_slides"] == 4


def test_outcome_labels_follow_the_phenotype_as_weakly_as_recurrence_does():
    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_patch_oracle import outcome_labels
    finally:
        sys.path.remove(str(BENCH.parent))
    phenotypes = np.random.default_rng(0).standard_normal(20000)
    labels = outcome_labels(phenotypes, seed=1)
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert 0.18 < labels.mean() < 0.26  # the hard cohort's development cases: 83 of 373 recur within 36 months
    assert 0.15 < np.corrcoef(labels, phenotypes)[0, 1] < 0.25  # theirs: 0.18
    assert np.array_equal(labels, outcome_labels(phenotypes, seed=1))


def test_too_few_patches_an_epoch_is_refused_before_anything_is_rendered():
    run = _run("--slides", "10", "--patches-per-epoch", "0")
    assert run.returncode == 2 and "--patches-per-epoch 0" in run.stderr and "seconds_render" not in run.stdout


def test_outcome_labels_all_alike_are_refused_before_anything_is_rendered():
    # seed 5 draws no positive label among the 6 training slides of 10
    run = _run("--slides", "10", "--seed", "5", "--label", "outcome")
    assert run.returncode == 2 and "--seed 5: every training slide drew the same label" in run.stderr
    assert "seconds_render" not in run.stdout
