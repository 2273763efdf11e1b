"""The shipped weights/: every file loads through manifest.json, a changed byte is refused, the card is honest,
and a validation figure of the manifest is recomputed from the shipped files themselves."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.errors import TamperedWeights
from sarcoma_risk.weights import WeightRegistry

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
RADIOLOGY = ("radiology-t2fs+t1ce", "radiology-t2fs", "radiology-t1ce")  # one model per MRI sequence set
SHIPPED = ("radiology-t2fs+t1ce", "radiology-t2fs", "radiology-t1ce", "pathology-patch", "pathology-signature",
           "fusion", "validation-cohort")
COMBINED = "clinical+radiology[t2fs+t1ce]+pathology"


def load_through_its_loader(directory: Path, name: str):
    """Load one shipped model with the loader the product uses for it (each verifies the sha256 first)."""
    if name in RADIOLOGY:
        from sarcoma_risk.radiology.checkpoint import load_model

        return load_model(directory, name.removeprefix("radiology-"))[0]
    if name == "pathology-patch":
        from sarcoma_risk.pathology.pipeline import load_models

        return load_models(directory, need_signature=False)
    if name == "pathology-signature":
        from sarcoma_risk.pathology.pipeline import load_models

        return load_models(directory).signature
    if name == "fusion":
        from sarcoma_risk.fusion.loading import load_fusion

        return load_fusion(weights=directory)[0]
    from sarcoma_risk.release.validation_cohort import load_validation_cohort

    return load_validation_cohort(directory)[0]


def test_the_manifest_lists_every_shipped_model_and_nothing_else_is_in_the_folder():
    registry = WeightRegistry(WEIGHTS)
    assert sorted(registry.names()) == sorted(SHIPPED)
    files = {registry.entry(name)["file"] for name in SHIPPED}
    assert {p.name for p in WEIGHTS.iterdir()} == files | {"manifest.json", "MODEL_CARD.md"}
    total = sum(p.stat().st_size for p in WEIGHTS.iterdir())
    assert total < 20 * 2**20, f"weights/ holds {total / 2**20:.1f} MiB; keep it small enough for git"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_weight_file_loads_through_the_manifest_with_its_loader(name):
    registry = WeightRegistry(WEIGHTS)
    data, entry = registry.read_verified(name)
    assert len(data) == entry["bytes"]
    if entry["file"].endswith(".pt"):
        state, _ = registry.load_torch(name)  # weights_only=True: tensors and plain containers only
        assert isinstance(state, dict) and state
    else:
        assert isinstance(registry.load_json(name)[0], dict)
    assert load_through_its_loader(WEIGHTS, name) is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_one_changed_byte_in_a_shipped_weight_file_is_refused(name, tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(WEIGHTS, copy)
    path = copy / WeightRegistry(copy).entry(name)["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedWeights, match="sha256"):
        load_through_its_loader(copy, name)
    load_through_its_loader(WEIGHTS, name)  # the original is untouched and still loads


def test_every_manifest_entry_records_sha256_version_config_training_data_and_validation_with_cis():
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest["models"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), name
        assert entry["version"] and entry["kind"] and isinstance(entry["config"], dict), name
        assert entry["training_data"]["cohort"]["source"].startswith("phantom cohort"), name
    for name in (*RADIOLOGY, "pathology-patch", "pathology-signature"):
        figures = manifest["models"][name]["validation"]["centre_B"]
        c = figures["harrell_c"]
        assert c["low"] <= c["estimate"] <= c["high"] and figures["n"] > 100, name
    validation = manifest["release"]["validation"]
    assert set(validation["models"]) == {"clinical", "radiology[t2fs+t1ce]", "pathology", COMBINED}
    assert validation["combined"] == COMBINED
    assert set(validation["sequence_sets"]["models"]) == {
        f"{prefix}radiology[{s}]{suffix}" for s in ("t2fs+t1ce", "t2fs", "t1ce")
        for prefix, suffix in (("", ""), ("clinical+", "+pathology"))}
    for name, figures in validation["models"].items():
        slope = figures["calibration_slope"]
        if slope["estimate"] is not None or name == COMBINED:  # undefined (n/a) when the likelihood has no maximum
            assert slope["low"] <= slope["estimate"] <= slope["high"], name
    ratio = validation["oracle"]["combined_to_oracle_ratio"]
    assert ratio["low"] <= ratio["estimate"] <= ratio["high"]
    assert manifest["release"]["phantom"] is True and manifest["release"]["clinical_validity"] == "none"


def test_the_model_card_says_phantom_data_and_no_clinical_validity_and_quotes_the_manifest():
    card = (WEIGHTS / "MODEL_CARD.md").read_text(encoding="utf-8")
    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    first = card.split("\n\n")[1]
    assert "phantom" in first and "no clinical validity" in first
    for heading in ("## Intended use", "## Data", "## Predictors and models", "## Validation", "## Limitations"):
        assert heading in card
    ratio = manifest["release"]["validation"]["oracle"]["combined_to_oracle_ratio"]
    assert f"{ratio['estimate']:.3f} ({ratio['low']:.3f}-{ratio['high']:.3f})" in card
    for entry in manifest["models"].values():
        assert entry["sha256"] in card


def test_the_shipped_fusion_model_is_written_back_exactly_as_it_was_read():
    from sarcoma_risk.fusion.model import CoxFusion

    text = (WEIGHTS / "fusion.json").read_text(encoding="utf-8")
    data = CoxFusion.from_dict(json.loads(text)).to_dict()
    data["versions"] = json.loads(text)["versions"]  # the library versions of this environment, not the file's
    assert json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n" == text


def test_the_manifests_validation_c_index_is_recomputed_from_the_shipped_validation_cohort():
    """The centre B Harrell's C of the fusion model, as deployed, from validation-cohort.json.

    ``train all`` wrote the manifest's figure from the fused risks of the held-out validation cases and
    the same risks (rounded to 6 decimals, times to 2) into validation-cohort.json, so the file must
    give the figure back. lifelines computes it, independently of the suite's own metrics code.
    """
    from lifelines.utils import concordance_index

    from sarcoma_risk.release.validation_cohort import load_validation_cohort

    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    deployed = manifest["models"]["fusion"]["validation"]["centre_B"]["deployed"]
    cohort, entry = load_validation_cohort(WEIGHTS)  # sha256-verified against the manifest
    assert entry["validation"] == {"n": cohort.risk.size, "events": int(cohort.event.sum())}

    recomputed = concordance_index(cohort.time_months, -cohort.risk, cohort.event)  # lifelines: higher = longer
    assert recomputed == pytest.approx(deployed["harrell_c"]["estimate"], abs=1e-4)
    assert manifest["release"]["validation"]["deployed"]["harrell_c"] == deployed["harrell_c"]
    shuffled = np.random.default_rng(0).permutation(cohort.risk)
    assert abs(concordance_index(cohort.time_months, -shuffled, cohort.event) - recomputed) > 0.1


def test_the_validation_cohorts_risk_groups_follow_the_shipped_fusion_cutoff_and_the_manifests_log_rank():
    """Groups in validation-cohort.json = fused risk above fusion.json's cutoff; counts and log-rank as recorded."""
    from lifelines.statistics import logrank_test

    from sarcoma_risk.release.validation_cohort import load_validation_cohort

    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    centre_b = manifest["models"]["fusion"]["validation"]["centre_B"]
    assert centre_b["modalities_available"] == {"clinical+radiology+pathology": 400}  # one sub-model scored all
    fusion, _ = WeightRegistry(WEIGHTS).load_json("fusion")
    cutoff = fusion["submodels"][COMBINED]["cutoff"]["value"]
    cohort, _ = load_validation_cohort(WEIGHTS)
    high = cohort.group == "high"
    np.testing.assert_array_equal(high, cohort.risk > cutoff)

    groups = centre_b["deployed"]["risk_groups"]
    assert groups["n"] == {"high": int(high.sum()), "low": int((~high).sum())}
    assert groups["events"] == {"high": int(cohort.event[high].sum()), "low": int(cohort.event[~high].sum())}
    test = logrank_test(cohort.time_months[high], cohort.time_months[~high], cohort.event[high], cohort.event[~high])
    assert test.test_statistic == pytest.approx(groups["logrank_chi2"], rel=1e-3)


def test_the_manifests_calibration_slope_is_recomputed_from_the_shipped_validation_cohort():
    """The deployed fusion's calibration slope on centre B: the Cox coefficient of the fused risk refitted
    on validation-cohort.json's cases, by lifelines (independently of the suite's own Newton iteration)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    from sarcoma_risk.release.validation_cohort import load_validation_cohort

    manifest = json.loads((WEIGHTS / "manifest.json").read_text(encoding="utf-8"))
    slope = manifest["models"]["fusion"]["validation"]["centre_B"]["deployed"]["calibration_slope"]
    cohort, _ = load_validation_cohort(WEIGHTS)
    frame = pd.DataFrame({"risk": cohort.risk, "time": cohort.time_months, "event": cohort.event.astype(int)})
    refitted = CoxPHFitter().fit(frame, "time", "event").params_["risk"]
    assert refitted == pytest.approx(slope["estimate"], abs=2e-3)  # Efron (lifelines) vs Breslow on tied times
    assert slope["low"] <= slope["estimate"] <= slope["high"]
    assert manifest["release"]["validation"]["deployed"]["calibration_slope"] == slope
