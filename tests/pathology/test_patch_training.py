"""`sarcoma-risk train pathology` on phantom slides: it learns, it is honest, it registers what it made."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.pathology.pipeline import load_models
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.weights import WeightRegistry


def test_training_lowers_the_loss_of_every_model(trained_pathology):
    run = trained_pathology.run
    for model in [*run["fold_models"], run["final_model"]]:
        losses = [h["train_loss"] for h in model["history"]]
        assert min(losses[1:]) < losses[0], losses
        assert model["history"][model["best_epoch"] - 1]["val_cindex"] == model["best_val_cindex"]


def read_scores(trained_pathology):
    with open(trained_pathology.weights / "pathology_scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_out_of_fold_and_validation_scores_beat_chance(trained_pathology, slide_cohort):
    rows = read_scores(trained_pathology)
    outcomes = slide_cohort.outcomes()
    for split, source, floor in (("development", "out_of_fold", 0.7), ("validation", "final_model", 0.65)):
        part = [r for r in rows if r["split"] == split]
        assert {r["source"] for r in part} == {source}
        time = np.array([outcomes[r["case_id"]][0] for r in part])
        event = np.array([outcomes[r["case_id"]][1] for r in part])
        c = harrell_c(time, event, np.array([float(r["pathology_score"]) for r in part]))
        assert c > floor, (split, c)  # 0.5 is chance; validation is held-out centre B with another stain


def test_the_scores_file_follows_the_fusion_contract(trained_pathology, slide_cohort):
    rows = read_scores(trained_pathology)
    assert list(rows[0]) == ["case_id", "split", "pathology_score", "source"]
    expected = {r["case_id"]: r["split"] for r in slide_cohort.rows}
    assert {r["case_id"]: r["split"] for r in rows} == expected
    assert all(np.isfinite(float(r["pathology_score"])) for r in rows)


def test_models_are_registered_with_sha256_config_and_data_hash(trained_pathology):
    registry = WeightRegistry(trained_pathology.weights)
    manifest = registry.manifest()["models"]
    patch, signature = manifest["pathology-patch"], manifest["pathology-signature"]
    assert patch["kind"] == "shufflenetv2-patch" and signature["kind"] == "slide-signature"
    assert patch["sha256"] == sha256_file(trained_pathology.weights / patch["file"])
    assert patch["config"]["architecture"] == "shufflenet_v2_x0_5"
    assert (patch["config"]["patch_px"], patch["config"]["spacing_um"]) == (64, 2.0)
    assert patch["training_data"]["data_sha256"] == trained_pathology.run["data_sha256"]
    assert signature["config"]["patch_model_sha256"] == patch["sha256"]
    assert signature["config"]["fitted_on"] == "out_of_fold tile scores"
    models = load_models(trained_pathology.weights)
    assert models.model_sha256 == patch["sha256"] and models.signature is not None
    run_log = json.loads((trained_pathology.weights / "train_pathology_run.json").read_text())
    assert run_log["final_model"]["sha256"] == patch["sha256"] and len(run_log["fold_models"]) == 2


def test_scores_are_deterministic_for_fixed_weights(trained_pathology, slide_cohort):
    from sarcoma_risk.pathology.pipeline import score_slide

    models = load_models(trained_pathology.weights)
    first = score_slide(slide_cohort.slide("PX-021"), models, progress=False)
    again = score_slide(slide_cohort.slide("PX-021"), load_models(trained_pathology.weights), progress=False)
    np.testing.assert_array_equal(first.tiles.probabilities, again.tiles.probabilities)
    assert first.score == again.score


def test_the_signature_can_be_refit_for_an_existing_patch_model(trained_pathology, slide_cohort, tmp_path, capsys):
    status = main(["train", "pathology-signature", "--manifest", str(slide_cohort.manifest),
                   "--weights", str(trained_pathology.weights), "--out", str(tmp_path), "--penalizer", "2.0",
                   "--no-progress", "--json"])
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_development_cases"] == 20
    models = load_models(tmp_path)  # a self-contained folder: patch model copied beside the new signature
    assert models.model_sha256 == WeightRegistry(trained_pathology.weights).entry("pathology-patch")["sha256"]
    assert models.signature.penalizer == 2.0


def test_a_horizon_no_case_reaches_is_a_clear_error(slide_cohort, tmp_path, capsys):
    status = main(["train", "pathology", "--manifest", str(slide_cohort.manifest), "--out", str(tmp_path),
                   "--folds", "0", "--init", "random", "--horizon-months", "100000", "--epochs", "1"])
    assert status == 1
    assert "followed beyond it" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_too_many_folds_for_the_cohort_is_refused(slide_cohort, tmp_path, capsys):
    assert main(["train", "pathology", "--manifest", str(slide_cohort.manifest), "--out", str(tmp_path),
                 "--folds", "15", "--init", "random"]) == 1
    assert "too few for 15 folds" in capsys.readouterr().err


@pytest.mark.parametrize("folds", ["1", "-2"])
def test_one_fold_is_not_cross_fitting(slide_cohort, tmp_path, capsys, folds):
    assert main(["train", "pathology", "--manifest", str(slide_cohort.manifest), "--out", str(tmp_path),
                 "--folds", folds, "--init", "random"]) == 1
    assert "K >= 2" in capsys.readouterr().err


def test_a_damaged_slide_in_the_cohort_is_named_by_its_case(slide_cohort, odd_slides, tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    rows = [dict(r) for r in slide_cohort.rows]
    for row in rows:
        row["slides"] = str(slide_cohort.root / row["slides"])
        row["annotations"] = str(slide_cohort.root / row["annotations"]) if row["annotations"] else ""
    rows[3]["slides"], rows[3]["annotations"] = str(odd_slides["blank"]), ""
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    status = main(["train", "pathology", "--manifest", str(manifest), "--out", str(tmp_path / "out"), "--folds", "0",
                   "--init", "random", "--epochs", "1", "--patch-px", "64", "--spacing", "2.0"])
    err = capsys.readouterr().err
    assert status == 1 and f"case {rows[3]['case_id']}:" in err and "no tissue" in err
