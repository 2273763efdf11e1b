"""benchmarks/bench_mri_oracle.py run as a script, at a size that only checks what it prints.

Its figures at a meaningful size (800 cases, tens of epochs) take minutes and are quoted in README;
here 16 cases and one or two epochs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from sarcoma_risk.synthetic import generate_cohort

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_mri_oracle.py"
FIGURES = {"seconds_prepare", "validation_r_radiology", "train_loss_radiology", "seconds_train"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)


def _figures(run: subprocess.CompletedProcess) -> dict[str, dict]:
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # nothing but JSON lines on stdout
    assert all(line["bench"] == "mri_oracle" for line in lines)
    return {line["figure"]: line for line in lines}


def test_it_renders_mri_only_and_prints_r_loss_and_times_with_progress_on_stderr():
    figures = _figures(run := _run("--cases", "16", "--epochs", "2"))
    assert set(figures) == FIGURES | {"seconds_render"}
    r = figures["validation_r_radiology"]
    assert -1 <= r["value"] <= 1 and r["best"] >= r["value"] and r["best_epoch"] in (1, 2)
    assert r["train_cases"] == 8 and r["validation_cases"] == 8 and r["input_shape"] == [3, 32, 32, 32]
    assert r["preset"] == "tiny" and r["difficulty"] == "hard" and r["epochs"] == 2
    assert figures["train_loss_radiology"]["unit"] == "mse" and figures["train_loss_radiology"]["value"] > 0
    assert run.stderr.count("validation r") == 2


def test_a_given_cohort_is_read_with_its_phenotypes_and_not_rendered_again(tmp_path):
    cohort = generate_cohort(tmp_path / "cohort", 16, seed=3, difficulty="hard", modalities="mri")
    figures = _figures(_run("--cohort", str(cohort.root), "--epochs", "1"))
    assert set(figures) == FIGURES and figures["validation_r_radiology"]["cohort"] == "given"

    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_mri_oracle import _inputs
    finally:
        sys.path.remove(str(BENCH.parent))
    x, z, x_val, z_val = _inputs(cohort.root, "tiny")
    truth = cohort.load_truth()["cases"]
    assert sorted(np.concatenate([z, z_val]).tolist()) == sorted(np.float32(c["z_r"]).item() for c in truth)
    assert x.shape == (8, 3, 32, 32, 32) and x_val.shape == (8, 3, 32, 32, 32)
    assert x[:, 2].min() == 0.0 and x[:, 2].max() == 1.0  # the last channel is the tumor mask (partial volume)


def test_bad_arguments_are_refused_before_anything_is_rendered(tmp_path):
    run = _run("--epochs", "0")
    assert run.returncode == 2 and "--epochs 0" in run.stderr and run.stdout == ""
    run = _run("--device", "gpu", "--cases", "16")
    assert run.returncode == 2 and run.stdout == ""
    assert "device: 'gpu' is not valid; expected one of auto, cpu, cuda, mps" in run.stderr
    run = _run("--cohort", str(tmp_path))
    assert run.returncode == 2 and f"--cohort {tmp_path}: no truth.json there" in run.stderr and run.stdout == ""


def test_a_cohort_whose_truth_lacks_the_mri_phenotype_is_named_and_refused(tmp_path):
    cohort = generate_cohort(tmp_path / "cohort", 8, seed=3, difficulty="hard", images=False)
    truth = cohort.load_truth()
    for case in truth["cases"]:
        del case["z_r"]
    cohort.truth.write_text(json.dumps(truth), encoding="utf-8")
    run = _run("--cohort", str(cohort.root), "--epochs", "1")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    expected = f"{cohort.truth}: expected a phantom truth file whose cases each have a case_id and a numeric z_r"
    assert expected in run.stderr


def test_a_truth_file_of_another_cohort_or_not_json_is_named_and_refused(tmp_path):
    cohort = generate_cohort(tmp_path / "cohort", 8, seed=3, difficulty="hard", images=False)
    truth = cohort.load_truth()
    truth["cases"] = truth["cases"][1:]
    cohort.truth.write_text(json.dumps(truth), encoding="utf-8")
    run = _run("--cohort", str(cohort.root), "--epochs", "1")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{cohort.truth}: no z_r for 1 case(s) of {cohort.manifest}" in run.stderr
    cohort.truth.write_text("{not json", encoding="utf-8")
    run = _run("--cohort", str(cohort.root), "--epochs", "1")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{cohort.truth}: expected a phantom truth file" in run.stderr
