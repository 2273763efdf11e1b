"""`train radiology` under torchrun: two CPU processes (gloo) train each model together; rank 0 alone writes."""

from __future__ import annotations

import json

import pytest

from sarcoma_risk.distributed import weights_sha256
from sarcoma_risk.radiology.checkpoint import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ddp_run(phantom_cohort_tiny, tmp_path_factory):
    from torchrun_helper import torchrun

    root = tmp_path_factory.mktemp("ddp-radiology")
    out = root / "out"
    result = torchrun(out, root / "audit", ["train", "radiology", "--manifest", phantom_cohort_tiny.manifest,
                                            "--out", out, "--preset", "tiny", "--folds", "2", "--epochs", "2",
                                            "--sequence-sets", "t2fs+t1ce", "--json"])
    assert result.status == 0, result.stderr[-3000:]
    return result, out


def test_two_processes_complete_the_training_and_rank_0_prints_the_one_summary(ddp_run):
    result, out = ddp_run
    summary = json.loads(result.stdout)  # one JSON document: the other rank printed nothing
    distributed = summary["runtime"]["distributed"]
    assert (distributed["world_size"], distributed["backend"]) == (2, "gloo")
    both = summary["models"]["t2fs+t1ce"]
    assert both["cases"]["development"] == 12 and len(both["validation"]["members"]) == 2
    assert result.stderr.count("sequence set t2fs+t1ce: 12 development cases") == 1  # rank 1 logs warnings only


def test_only_rank_0_writes_checkpoints_weights_scores_and_the_run_log(ddp_run):
    result, out = ddp_run
    assert result.written_by(1, out) == set()
    written = result.written_by(0, out)
    assert {"radiology-t2fs+t1ce.pt", "manifest.json", "radiology_scores.csv", "radiology_training.json",
            "checkpoints/radiology-t2fs+t1ce-fold-1.pt", "checkpoints/radiology-t2fs+t1ce-fold-2.pt"} <= written


def test_both_ranks_end_with_identical_weights_and_those_are_the_saved_ones(ddp_run):
    result, out = ddp_run
    members = json.loads((out / "radiology_training.json").read_text())["runtime"]["distributed"]["member_rank_sha256"]
    model, _ = load_model(out, "t2fs+t1ce")
    for ranks, member in zip(members["t2fs+t1ce"], model.members, strict=True):
        assert len(ranks) == 2 and ranks[0] == ranks[1] == weights_sha256(member.network_)
