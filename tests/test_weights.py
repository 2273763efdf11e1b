"""WeightRegistry: register and load round trips, sha256 verification, weights-only torch loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sarcoma_risk.errors import InvalidModel, TamperedWeights, WeightsError, WeightsNotFound
from sarcoma_risk.weights import MANIFEST_FORMAT, WeightRegistry


@pytest.fixture
def registry(tmp_path: Path) -> WeightRegistry:
    return WeightRegistry(tmp_path / "weights")


def register_json(registry: WeightRegistry, data: dict, name: str = "fusion") -> dict:
    registry.directory.mkdir(parents=True, exist_ok=True)
    (registry.directory / f"{name}.json").write_text(json.dumps(data))
    return registry.register(name, f"{name}.json", kind="cox-fusion", version="1.0.0",
                             config={"penalizer": 0.1}, training_data={"cases": 120}, validation={"c_index": 0.7})


def test_a_registered_json_model_loads_back_with_its_entry(registry):
    entry = register_json(registry, {"coef": [0.1, 0.2]})
    data, loaded = registry.load_json("fusion")
    assert data == {"coef": [0.1, 0.2]}
    assert loaded == entry and entry["kind"] == "cox-fusion" and entry["file"] == "fusion.json"
    assert registry.names() == ["fusion"]
    manifest = json.loads(registry.manifest_path.read_text())
    assert manifest["format"] == MANIFEST_FORMAT and manifest["models"]["fusion"]["sha256"] == entry["sha256"]


def test_a_registered_torch_state_dict_loads_back_weights_only(registry):
    import torch

    registry.directory.mkdir(parents=True)
    state = {"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "step": 3}
    torch.save(state, registry.directory / "radiology.pt")
    registry.register("radiology", "radiology.pt", kind="radiology-cbam3d", version="0.1.0")
    loaded, entry = registry.load_torch("radiology")
    assert torch.equal(loaded["conv.weight"], state["conv.weight"]) and loaded["step"] == 3
    assert entry["kind"] == "radiology-cbam3d"


def test_a_single_changed_byte_is_refused_as_tampered(registry):
    register_json(registry, {"coef": [0.1, 0.2]})
    path = registry.directory / "fusion.json"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedWeights, match="does not match .* recorded in .*manifest.json"):
        registry.load_json("fusion")


class _Payload:
    """Unpickling this would call open(marker, "w"): the kind of object a booby-trapped checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_with_arbitrary_objects_is_refused_and_never_runs_them(registry, tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    registry.directory.mkdir(parents=True)
    torch.save({"weight": torch.zeros(2), "extra": _Payload(marker)}, registry.directory / "evil.pt")
    registry.register("pathology-patch", "evil.pt", kind="shufflenetv2-patch", version="0.1.0")
    with pytest.raises(InvalidModel, match="not a loadable weights-only checkpoint.*UnpicklingError"):
        registry.load_torch("pathology-patch")
    assert not marker.exists()
    # The payload is live: a plain (not weights-only) load would have run it.
    torch.load(registry.directory / "evil.pt", weights_only=False)["extra"].close()
    assert marker.exists()


def test_a_file_that_is_not_json_is_an_invalid_model(registry):
    registry.directory.mkdir(parents=True)
    (registry.directory / "sig.json").write_bytes(b"\x80not json")
    registry.register("pathology-signature", "sig.json", kind="slide-signature", version="1")
    with pytest.raises(InvalidModel, match="not valid JSON"):
        registry.load_json("pathology-signature")


def test_an_unknown_model_lists_the_available_ones(registry):
    register_json(registry, {})
    with pytest.raises(WeightsNotFound, match="no model 'radiology' \\(available: fusion\\)"):
        registry.load_json("radiology")


def test_a_listed_file_that_is_gone_is_reported(registry):
    register_json(registry, {})
    (registry.directory / "fusion.json").unlink()
    with pytest.raises(WeightsNotFound, match="listed in .* is missing"):
        registry.load_json("fusion")


def test_a_manifest_pointing_outside_its_folder_is_refused(registry, tmp_path):
    register_json(registry, {})
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    manifest = json.loads(registry.manifest_path.read_text())
    manifest["models"]["fusion"]["file"] = "../secret.json"
    registry.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="lies outside"):
        registry.load_json("fusion")


def test_registering_a_file_outside_the_folder_or_missing_is_refused(registry, tmp_path):
    registry.directory.mkdir(parents=True)
    (tmp_path / "elsewhere.json").write_text("{}")
    with pytest.raises(WeightsError, match="must lie inside"):
        registry.register("fusion", tmp_path / "elsewhere.json", kind="cox-fusion", version="1")
    with pytest.raises(WeightsNotFound, match="no such weights file"):
        registry.register("fusion", "absent.json", kind="cox-fusion", version="1")
    assert not registry.manifest_path.exists()


@pytest.mark.parametrize("text", ["not json", json.dumps({"format": "other/1", "models": {}}),
                                  json.dumps({"format": MANIFEST_FORMAT, "models": []})])
def test_a_malformed_manifest_is_a_weights_error(registry, text):
    registry.directory.mkdir(parents=True)
    registry.manifest_path.write_text(text)
    with pytest.raises(WeightsError, match="manifest.json"):
        registry.names()


def test_a_folder_without_a_manifest_is_an_empty_registry(registry):
    assert registry.names() == []
