"""``sarcoma-risk train fusion``, ``evaluate`` and ``fuse`` called through main([...])."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.clinical.variables import VARIABLES, check_clinical
from sarcoma_risk.cohort import manifest_columns
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store
from sarcoma_risk.survival.scores import InSampleScoresWarning
from sarcoma_risk.weights import WeightRegistry

FAST = ["--penalizers", "0.01,0.1,1", "--folds", "3"]


def write_manifest(path, table: pd.DataFrame) -> None:
    columns = manifest_columns()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for case_id, row in table.iterrows():
            out = {c: "" for c in columns}
            out.update({k: ("" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                        for k, v in row.items() if k in columns})
            out["case_id"] = case_id
            writer.writerow(out)


def write_scores(folder, table: pd.DataFrame, *, development_source: str = "out_of_fold") -> list[str]:
    paths = []
    for modality in ("radiology", "pathology"):
        path = folder / f"{modality}_scores.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "split", f"{modality}_score", "source"])
            for case_id, row in table.iterrows():
                score = row[f"{modality}_score"]
                if np.isfinite(score):
                    source = development_source if row["split"] == "development" else "final_model"
                    writer.writerow([case_id, row["split"], f"{score:.5f}", source])
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, development_table, validation_table):
    folder = tmp_path_factory.mktemp("fusion_cohort")
    table = pd.concat([development_table[0].assign(centre="A"), validation_table[0].assign(centre="B")])
    write_manifest(folder / "manifest.csv", table)
    scores = write_scores(folder, table)
    weights = folder / "weights"
    assert main(["train", "fusion", "--manifest", str(folder / "manifest.csv"), *sum((["--scores", s] for s in scores), []),
                 "--out", str(weights), *FAST]) == 0
    return folder, scores, weights, table


def score_args(scores):
    return sum((["--scores", s] for s in scores), [])


def test_train_fusion_registers_the_json_model(cohort):
    folder, _, weights, _ = cohort
    entry = WeightRegistry(weights).entry("fusion")
    assert entry["kind"] == "cox-fusion" and entry["file"] == "fusion.json"
    assert entry["training_data"]["honest_out_of_fold"] is True
    assert entry["training_data"]["n"] == 240 and entry["training_data"]["centres"] == ["A"]
    data, _ = WeightRegistry(weights).load_json("fusion")
    assert data["format"] == "sarcoma-risk-cox-fusion/1" and len(data["submodels"]) == 7


def test_development_scores_that_are_not_out_of_fold_are_refused_unless_accepted(cohort, tmp_path, capsys):
    folder, _, _, table = cohort
    scores = write_scores(tmp_path, table, development_source="final_model")
    args = ["train", "fusion", "--manifest", str(folder / "manifest.csv"), *score_args(scores),
            "--out", str(tmp_path / "w"), *FAST]
    assert main(args) == 1
    assert "--allow-in-sample-scores" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    with pytest.warns(InSampleScoresWarning):
        assert main([*args, "--allow-in-sample-scores"]) == 0
    assert WeightRegistry(tmp_path / "w").entry("fusion")["training_data"]["honest_out_of_fold"] is False


def test_a_manifest_without_events_is_refused(cohort, tmp_path, capsys):
    _, _, _, table = cohort
    write_manifest(tmp_path / "manifest.csv", table.assign(event=0))
    assert main(["train", "fusion", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "w")]) == 1
    assert "development data: no events among 240 cases" in capsys.readouterr().err


def test_evaluate_writes_the_report_and_prints_a_summary(cohort, tmp_path, capsys):
    folder, scores, weights, _ = cohort
    assert main(["evaluate", "--manifest", str(folder / "manifest.csv"), "--weights", str(weights), *score_args(scores),
                 "--out", str(tmp_path / "report"), "--bootstrap", "50", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 200
    assert set(summary["harrell_c"]) == {"clinical", "radiology", "pathology", "clinical+radiology+pathology"}
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "out-of-fold development scores (cross-fitting)" in page and "NOT all out-of-fold" not in page
    assert (tmp_path / "report" / "report.json").is_file()


def test_evaluate_refuses_tampered_weights_and_hand_edited_models(cohort, tmp_path, capsys):
    folder, scores, weights, _ = cohort
    common = ["evaluate", "--manifest", str(folder / "manifest.csv"), *score_args(scores), "--out", str(tmp_path / "r")]
    model = json.loads((weights / "fusion.json").read_text())
    model["submodels"]["clinical"]["cox"]["coefficients"] = model["submodels"]["clinical"]["cox"]["coefficients"][:-1]
    edited = tmp_path / "fusion.json"
    edited.write_text(json.dumps(model))
    assert main([*common, "--model", str(edited)]) == 1
    err = capsys.readouterr().err
    assert f"{edited}: fusion.submodels.clinical.cox.coefficients: has" in err
    tampered = tmp_path / "weights"
    tampered.mkdir()
    (tampered / "manifest.json").write_text((weights / "manifest.json").read_text())
    (tampered / "fusion.json").write_text(json.dumps(model))
    assert main([*common, "--weights", str(tampered)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.fixture()
def store(tmp_path, validation_table):
    table, _ = validation_table
    path = tmp_path / "cases.sqlite"
    provenance = Provenance("test", "0", None).to_dict()
    row = table.iloc[0]
    values = check_clinical({name: row[name] for name in VARIABLES if row[name] is not None})
    with open_store(path, mode="a") as cases:
        cases.put_section("FULL-1", "clinical", {"values": values, "provenance": provenance})
        cases.put_section("FULL-1", "radiology", {"score": float(row["radiology_score"]), "provenance": provenance})
        cases.put_section("FULL-1", "pathology", {"score": float(row["pathology_score"]), "slides": [],
                                                  "provenance": provenance})
        partial = {k: v for k, v in values.items() if k != "margin"}
        cases.put_section("NOCLIN-1", "clinical", {"values": partial, "provenance": provenance})
        cases.put_section("NOCLIN-1", "radiology", {"score": 0.3, "provenance": provenance})
        cases.ensure_case("EMPTY-1")
    return path


def test_fuse_writes_the_fusion_section_with_provenance(cohort, store, capsys):
    _, _, weights, _ = cohort
    assert main(["fuse", "--case", "FULL-1", "--weights", str(weights), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "scored by the clinical+radiology+pathology sub-model" in out and "1 y:" in out and "5 y:" in out
    with open_store(store, mode="r") as cases:
        record = cases.get("FULL-1")
    fusion = record.fusion
    assert fusion["model"] == "clinical+radiology+pathology" and fusion["group"] in ("low", "high")
    assert set(fusion["survival"]) == {"12", "36", "60"}
    assert 1 > fusion["survival"]["12"] > fusion["survival"]["60"] > 0
    entry = WeightRegistry(weights).entry("fusion")
    assert fusion["provenance"]["weights_sha256"] == entry["sha256"]
    assert set(fusion["provenance"]["inputs"]) == {"clinical", "radiology", "pathology"}
    assert fusion["provenance"]["parameters"]["submodel"] == "clinical+radiology+pathology"


def test_fuse_without_complete_clinical_data_uses_an_imaging_submodel_and_says_so(cohort, store, capsys):
    _, _, weights, _ = cohort
    assert main(["fuse", "--case", "NOCLIN-1", "--weights", str(weights), "--store", str(store), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "radiology" and result["modalities_used"] == ["radiology"]
    assert "clinical not used: clinical data incomplete (missing: margin)" in result["notes"]


def test_fuse_refuses_a_case_with_no_modality_and_leaves_it_untouched(cohort, store, capsys):
    _, _, weights, _ = cohort
    with open_store(store, mode="r") as cases:
        before = cases.get("EMPTY-1").to_dict()
    assert main(["fuse", "--case", "EMPTY-1", "--weights", str(weights), "--store", str(store)]) == 1
    assert "case EMPTY-1: nothing to score" in capsys.readouterr().err
    with open_store(store, mode="r") as cases:
        assert cases.get("EMPTY-1").to_dict() == before
    assert main(["fuse", "--case", "ABSENT-1", "--weights", str(weights), "--store", str(store)]) == 1
    assert "not in the store" in capsys.readouterr().err
