"""`train pathology` under torchrun: two CPU processes (gloo) train one patch model and share the slides to score."""

from __future__ import annotations

import json

import pytest

from sarcoma_risk.distributed import weights_sha256
from sarcoma_risk.pathology.pipeline import load_models

pytestmark = pytest.mark.slow

TINY = ["--folds", "0", "--architecture", "shufflenet_v2_x0_5", "--init", "random", "--patch-px", "64",
        "--spacing", "2.0", "--epochs", "1", "--patches-per-epoch", "128", "--batch-size", "16",
        "--val-fraction", "0.25", "--val-patches-per-slide", "8", "--bins", "4", "--words", "4", "--no-progress"]


@pytest.fixture(scope="module")
def ddp_run(slide_cohort, tmp_path_factory):
    from torchrun_helper import torchrun

    root = tmp_path_factory.mktemp("ddp-pathology")
    out = root / "out"
    result = torchrun(out, root / "audit", ["train", "pathology", "--manifest", slide_cohort.manifest, "--out", out,
                                            *TINY, "--json"])
    assert result.status == 0, result.stderr[-3000:]
    return result, out


def test_two_processes_complete_the_training_and_rank_0_prints_the_one_summary(ddp_run, slide_cohort):
    result, out = ddp_run
    run = json.loads(result.stdout)  # one JSON document: the other rank printed nothing
    assert (run["runtime"]["distributed"]["world_size"], run["runtime"]["distributed"]["backend"]) == (2, "gloo")
    assert result.stderr.count("final model: training on all 20 development cases") == 1  # rank 1 logs warnings only
    rows = (out / "pathology_scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # header and every validation case, each scored on one of the two ranks


def test_only_rank_0_writes_the_models_scores_checkpoints_and_run_log(ddp_run):
    result, out = ddp_run
    assert {"pathology-patch.pt", "pathology-signature.json", "manifest.json", "pathology_scores.csv",
            "train_pathology_run.json", "checkpoints/pathology-final.pt"} <= result.written_by(0, out)
    # rank 1 writes only the tile caches of the slides it scored
    assert all(path.split("/")[0] == "tile-cache" for path in result.written_by(1, out))


def test_both_ranks_end_with_identical_weights_and_those_are_the_registered_ones(ddp_run):
    result, out = ddp_run
    ranks = json.loads((out / "train_pathology_run.json").read_text())["runtime"]["distributed"]["final_model_rank_sha256"]
    registered = load_models(out, need_signature=False).runner.model
    assert len(ranks) == 2 and ranks[0] == ranks[1] == weights_sha256(registered)
