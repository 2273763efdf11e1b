"""The whole workflow on a real slicer-core scene: nodes in, real scorer process, Grad-CAM node out.

The scorer is the real ``sarcoma-risk score-mri`` (``python -m sarcoma_risk.cli``) in a separate
process with a tiny radiology model trained on the phantom cohort; nothing is mocked.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.provenance import Provenance, sha256_file
from sarcoma_risk.records import open_store

CASE = "STS-0042"


def scoring(scene, t2, segmentation, segment, store, weights, t1ce=None, case=CASE, device="auto"):
    from SarcomaRiskLib import RadiologyScoring, ScoringInputs

    return RadiologyScoring(scene, ScoringInputs(case, t2, segmentation, segment, t1ce),
                            python_executable=sys.executable, store_path=store, weights_dir=weights, timeout_s=300,
                            device=device)


def ijk_to_ras(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def weighted_ras(node, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS positions of the voxels with weight > 0 and those weights."""
    kji = np.argwhere(weights > 0)
    matrix = ijk_to_ras(node)
    ras = kji[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
    return ras, weights[weights > 0].astype(float)


def records(store):
    with open_store(store, mode="r") as s:
        return {r.case_id: r for r in s.records()}, len(s.history())


def save_scene(scene, folder):
    """Write every storable node next to an MRML file, as Slicer's Save dialog does."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLStorableNode")):
        node = scene.GetNthNodeByClass(i, "vtkMRMLStorableNode")
        if node.GetHideFromEditors():
            continue
        storage = node.GetStorageNode()
        if storage is None:
            node.AddDefaultStorageNode()
            storage = node.GetStorageNode()
        storage.SetFileName(str(folder / f"{node.GetID()}.{storage.GetDefaultWriteFileExtension()}"))
        assert storage.WriteData(node), node.GetName()
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()


def test_a_phantom_case_is_scored_and_its_gradcam_lines_up_with_the_tumor(scene, loaded_case, segment_id,
                                                                          radiology_weights, phantom_mri, tmp_path,
                                                                          private_tempdir):
    from SarcomaRiskLib import diverging_color_table, find_gradcam_node

    t2, t1ce, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    volumes_before = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    log = []
    result = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights,
                     t1ce).run(log=log.append)

    # The result and the case record agree; the record carries provenance and the Grad-CAM's hash.
    saved, _ = records(store)
    radiology = saved[CASE].radiology
    assert radiology["score"] == result.score and np.isfinite(result.score)
    assert 0 <= result.percentile <= 100
    assert result.tumor_volume_ml == pytest.approx(phantom_mri.stats["tumor_volume_ml"], rel=0.02)
    assert result.sequences == ("t2fs", "t1ce")
    assert result.model == radiology["model"] == "radiology-t2fs+t1ce" and result.model_label == "T2FS + T1CE"
    provenance = Provenance.from_dict(radiology["provenance"])
    manifest_entry = json.loads((radiology_weights / "manifest.json").read_text())["models"]["radiology-t2fs+t1ce"]
    assert provenance.model_name == "radiology-t2fs+t1ce" and provenance.weights_sha256 == manifest_entry["sha256"]
    assert set(provenance.inputs) == {"t2fs", "t1ce", "mask"}
    assert radiology["gradcam_sha256"] == result.gradcam_sha256
    assert log[0].startswith("Exported the T2 and T1CE volume and the tumor segment")

    # The Grad-CAM node: one new volume, on the T2 grid, finite, coloured, shown over the T2.
    cam = result.gradcam_node
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == volumes_before + 1
    assert find_gradcam_node(scene, CASE) is cam
    np.testing.assert_allclose(ijk_to_ras(cam), ijk_to_ras(t2), atol=1e-6)
    assert cam.GetImageData().GetDimensions() == t2.GetImageData().GetDimensions()
    import slicer

    values = slicer.util.arrayFromVolume(cam)
    assert np.all(np.isfinite(values)) and np.abs(values).max() == pytest.approx(1.0, abs=0.05)
    assert cam.GetDisplayNode().GetColorNodeID() == diverging_color_table(scene).GetID()
    assert cam.GetStorageNode() is None  # in memory: the temporary file is gone
    assert list(private_tempdir.iterdir()) == []
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        assert (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID()) == (t2.GetID(), cam.GetID())
        assert composite.GetForegroundOpacity() == pytest.approx(0.4)

    # Where the model looked, in RAS: around the tumor (whose truth is the phantom's labelmap). The
    # same measure on the Grad-CAM mirrored in-plane (what an LPS/RAS mix-up would give) fails.
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.labelmap)))
    tumor_ras, _ = weighted_ras(t2, tumor)
    low, high = tumor_ras.min(0), tumor_ras.max(0)

    def near_tumor(cam_values):
        """Share of the Grad-CAM's mass near the tumor; distance of its support's centre from the tumor's."""
        ras, weight = weighted_ras(cam, cam_values)
        near = np.all((ras >= low - 10) & (ras <= high + 10), axis=1)
        return weight[near].sum() / weight.sum(), np.linalg.norm(ras.mean(0) - tumor_ras.mean(0))

    magnitude = np.abs(values)  # raised or lowered the risk: both are where the model looked
    share, distance = near_tumor(magnitude)
    assert share > 0.7 and distance < 15.0  # mm; the tumor is about 50-65 mm across
    mirrored_share, mirrored_distance = near_tumor(magnitude[:, ::-1, ::-1])
    assert mirrored_distance > 30.0 and mirrored_share < share - 0.2


def test_the_scene_saves_and_reloads_with_the_gradcam_and_the_parameters(scene, loaded_case, segment_id,
                                                                        radiology_weights, wrapper_parameters,
                                                                        tmp_path):
    import slicer

    t2, t1ce, segmentation = loaded_case
    tumor = segment_id(segmentation, "Tumor")
    result = scoring(scene, t2, segmentation, tumor, tmp_path / "cases.sqlite", radiology_weights, t1ce).run()

    # The parameter node, written the way the module's @parameterNodeWrapper writes it.
    parameters = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "SarcomaRisk")
    parameters.SetModuleName("SarcomaRisk")
    parameters.SetSingletonTag("SarcomaRisk")
    values = {"caseId": CASE, "t2Volume": t2, "t1ceVolume": t1ce, "segmentation": segmentation, "segmentId": tumor,
              "score": result.score, "percentile": result.percentile, "tumorVolumeMl": result.tumor_volume_ml,
              "gradcamVolume": result.gradcam_node, "gradcamSha256": result.gradcam_sha256}
    assert set(values) == set(wrapper_parameters)
    for name, kind in wrapper_parameters.items():
        if kind.startswith("vtkMRML"):
            parameters.SetParameter(name, "")
            parameters.SetNodeReferenceID(name, values[name].GetID())
        else:
            parameters.SetParameter(name, str(values[name]))

    folder = tmp_path / "saved scene"
    folder.mkdir()
    save_scene(scene, folder)
    cam_values = slicer.util.arrayFromVolume(result.gradcam_node).copy()

    reloaded = slicer.vtkMRMLScene()
    reloaded.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # as Slicer's Colors module does
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(reloaded)
    reloaded.SetURL(str(folder / "scene.mrml"))
    assert reloaded.Connect()
    node = reloaded.GetSingletonNode("SarcomaRisk", "vtkMRMLScriptedModuleNode")
    assert node.GetParameter("caseId") == CASE and node.GetParameter("segmentId") == tumor
    assert float(node.GetParameter("score")) == pytest.approx(result.score)
    cam = node.GetNodeReference("gradcamVolume")
    assert cam is not None and cam.GetAttribute("SarcomaRisk.GradCAMSha256") == result.gradcam_sha256
    assert node.GetNodeReference("t2Volume").GetName() == t2.GetName()
    np.testing.assert_allclose(ijk_to_ras(cam), ijk_to_ras(node.GetNodeReference("t2Volume")), atol=1e-6)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(cam), cam_values, rtol=0, atol=1e-6)
    assert cam.GetDisplayNode().GetColorNodeID() == result.gradcam_node.GetDisplayNode().GetColorNodeID()
    table = reloaded.GetNodeByID(cam.GetDisplayNode().GetColorNodeID())
    assert table.GetNumberOfColors() == 256 and table.GetColorName(0) == "lowers the risk"
    assert slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(cam) is not None
    colors.SetMRMLScene(None)


def test_scoring_again_updates_the_record_and_reuses_the_overlay_node(scene, loaded_case, segment_id,
                                                                      radiology_weights, tmp_path):
    store = tmp_path / "cases.sqlite"
    t2, t1ce, segmentation = loaded_case
    first = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights, t1ce).run()
    second = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights, t1ce).run()
    assert second.gradcam_node is first.gradcam_node
    assert second.score == first.score  # fixed weights, same input: the same score
    saved, _ = records(store)
    assert saved[CASE].revision("radiology") == 2


def test_a_t2_under_a_transform_gets_its_gradcam_under_the_same_transform(scene, loaded_case, segment_id,
                                                                         radiology_weights, tmp_path):
    import vtk

    t2, t1ce, segmentation = loaded_case
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Table shift")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(2, 3, 25.0)
    transform.SetMatrixTransformToParent(matrix)
    for node in (t2, t1ce, segmentation):
        node.SetAndObserveTransformNodeID(transform.GetID())
    result = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), tmp_path / "c.sqlite",
                     radiology_weights, t1ce).run()
    assert result.gradcam_node.GetTransformNodeID() == transform.GetID()
    np.testing.assert_allclose(ijk_to_ras(result.gradcam_node), ijk_to_ras(t2), atol=1e-6)


def test_a_t2_alone_is_scored_by_the_t2fs_model_and_the_result_and_the_record_say_so(scene, loaded_case, segment_id,
                                                                                    radiology_weights, tmp_path):
    t2, _, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    log = []
    result = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights).run(
        log=log.append)
    assert result.sequences == ("t2fs",) and result.model == "radiology-t2fs" and result.model_label == "T2FS only"
    saved, _ = records(store)
    assert saved[CASE].radiology["model"] == "radiology-t2fs" and saved[CASE].radiology["sequences"] == ["t2fs"]
    assert log[0].startswith("Exported the T2 volume and the tumor segment")


def test_a_t1ce_alone_is_scored_by_the_t1ce_model_and_its_gradcam_lies_on_the_t1ce(scene, loaded_case, segment_id,
                                                                                    radiology_weights, phantom_mri,
                                                                                    tmp_path, private_tempdir):
    """No T2 selected: the T1CE is the reference. It sits under a registration shift that the T2 does
    not share, so a Grad-CAM put on the T2's grid or frame would not line up with it."""
    import slicer
    import vtk

    _, t1ce, segmentation = loaded_case
    matrix = vtk.vtkMatrix4x4()
    t1ce.GetIJKToRASMatrix(matrix)
    shift = vtk.vtkMatrix4x4()
    for row in range(3):
        shift.SetElement(row, 3, 3 * matrix.GetElement(row, 0))  # 3 voxel columns
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T1CE registration")
    transform.SetMatrixTransformToParent(shift)
    t1ce.SetAndObserveTransformNodeID(transform.GetID())
    store = tmp_path / "cases.sqlite"
    log = []
    result = scoring(scene, None, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights,
                     t1ce).run(log=log.append)

    assert log[0].startswith("Exported the T1CE volume and the tumor segment")
    assert result.sequences == ("t1ce",) and result.model == "radiology-t1ce" and result.model_label == "T1CE only"
    radiology = records(store)[0][CASE].radiology
    assert radiology["model"] == "radiology-t1ce" and radiology["sequences"] == ["t1ce"]
    assert radiology["score"] == result.score and np.isfinite(result.score)
    assert result.tumor_volume_ml == pytest.approx(phantom_mri.stats["tumor_volume_ml"], rel=0.02)
    provenance = Provenance.from_dict(radiology["provenance"])
    manifest_entry = json.loads((radiology_weights / "manifest.json").read_text())["models"]["radiology-t1ce"]
    assert provenance.model_name == "radiology-t1ce" and provenance.weights_sha256 == manifest_entry["sha256"]
    assert set(provenance.inputs) == {"t1ce", "mask"}

    # The Grad-CAM: on the T1CE's grid, under its transform, shown over it.
    cam = result.gradcam_node
    assert result.reference_node is t1ce
    np.testing.assert_allclose(ijk_to_ras(cam), ijk_to_ras(t1ce), atol=1e-6)
    assert cam.GetImageData().GetDimensions() == t1ce.GetImageData().GetDimensions()
    assert cam.GetTransformNodeID() == transform.GetID()
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        assert (composite.GetBackgroundVolumeID(), composite.GetForegroundVolumeID()) == (t1ce.GetID(), cam.GetID())
    assert list(private_tempdir.iterdir()) == []

    # In the world (the T1CE's frame moved by its transform), the Grad-CAM lies around the tumor,
    # which stays where the segmentation (on the T2's grid, untransformed) puts it.
    values = np.abs(slicer.util.arrayFromVolume(cam))
    cam_ras, weight = weighted_ras(cam, values)
    cam_ras = cam_ras + np.array([shift.GetElement(row, 3) for row in range(3)])
    tumor_ras, _ = weighted_ras(loaded_case[0], sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_mri.labelmap))))
    low, high = tumor_ras.min(0), tumor_ras.max(0)
    near = np.all((cam_ras >= low - 10) & (cam_ras <= high + 10), axis=1)
    assert weight[near].sum() / weight.sum() > 0.7


def test_a_scorer_error_is_reported_and_nothing_is_written(scene, loaded_case, segment_id, radiology_weights,
                                                           tmp_path, private_tempdir):
    import shutil

    from SarcomaRiskLib import ScoringFailed

    t2, t1ce, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    with open_store(store, mode="a") as s:
        s.put_section(CASE, "clinical", {"values": {"age": 70}, "provenance": Provenance("t", "0", None).to_dict()})
    before = records(store)
    tampered = tmp_path / "tampered"
    shutil.copytree(radiology_weights, tampered)
    with open(tampered / "radiology-t2fs+t1ce.pt", "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    nodes_before = scene.GetNumberOfNodes()
    run = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, tampered, t1ce)
    with pytest.raises(ScoringFailed, match=r"^Radiology scoring failed: .*sha256") as info:
        run.run()
    # Weights with only the model of both sequences, run with one of them: the message says which models there are.
    only_both = tmp_path / "only_both"
    shutil.copytree(radiology_weights, only_both)
    manifest = json.loads((only_both / "manifest.json").read_text())
    del manifest["models"]["radiology-t2fs"], manifest["models"]["radiology-t1ce"]
    (only_both / "manifest.json").write_text(json.dumps(manifest))
    run = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, only_both)
    with pytest.raises(ScoringFailed, match=r"no radiology model for the sequence\(s\) given \(t2fs\).*T2FS \+ T1CE"):
        run.run()
    # The same for a T1CE alone.
    run = scoring(scene, None, segmentation, segment_id(segmentation, "Tumor"), store, only_both, t1ce)
    with pytest.raises(ScoringFailed, match=r"no radiology model for the sequence\(s\) given \(t1ce\).*T2FS \+ T1CE"):
        run.run()
    assert any(line.startswith("error: ") for line in info.value.log)
    assert records(store)[0][CASE].revisions == before[0][CASE].revisions
    assert records(store)[1] == before[1]
    assert scene.GetNumberOfNodes() == nodes_before
    assert list(private_tempdir.iterdir()) == []
    assert sha256_file(radiology_weights / "radiology-t2fs+t1ce.pt") != sha256_file(tampered / "radiology-t2fs+t1ce.pt")


def test_the_chosen_device_reaches_the_scorer_and_its_record(scene, loaded_case, segment_id, radiology_weights,
                                                              tmp_path):
    from sarcoma_risk.errors import InvalidInput

    t2, t1ce, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights, t1ce,
            device="cpu").run()
    assert records(store)[0][CASE].radiology["provenance"]["parameters"]["device"] == "cpu"
    with pytest.raises(InvalidInput, match=r"device: 'gpu' is not one of auto, cpu, cuda, mps"):
        scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights, t1ce,
                device="gpu")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_gpu_chosen_where_there_is_none_fails_naming_the_device_setting_and_writes_nothing(
        scene, loaded_case, segment_id, radiology_weights, tmp_path, private_tempdir):
    from SarcomaRiskLib import ScoringFailed

    t2, t1ce, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    nodes_before = scene.GetNumberOfNodes()
    run = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights, t1ce,
                  device="cuda")
    with pytest.raises(ScoringFailed, match=r"^Radiology scoring failed: .*device 'cuda': .*set Device \(Advanced\) "
                                            r"to cpu or auto"):
        run.run()
    assert not store.exists() or records(store)[0] == {}
    assert scene.GetNumberOfNodes() == nodes_before
    assert list(private_tempdir.iterdir()) == []


def test_cancelling_a_run_leaves_the_record_and_the_scene_as_they_were(scene, loaded_case, segment_id,
                                                                       radiology_weights, tmp_path, private_tempdir):
    from SarcomaRiskLib import ScoringCancelled

    t2, _, segmentation = loaded_case
    store = tmp_path / "cases.sqlite"
    nodes_before = scene.GetNumberOfNodes()
    run = scoring(scene, t2, segmentation, segment_id(segmentation, "Tumor"), store, radiology_weights)
    with pytest.raises(ScoringCancelled, match="cancelled. The case record was not changed"):
        run.run(should_cancel=lambda: True)
    assert not store.exists() or CASE not in records(store)[0]
    assert scene.GetNumberOfNodes() == nodes_before
    assert list(private_tempdir.iterdir()) == []


def test_fusion_failure_comes_back_as_the_fuse_commands_message(tmp_path, radiology_weights):
    from SarcomaRiskLib import ScoringFailed, start_fusion

    store = tmp_path / "cases.sqlite"
    with open_store(store, mode="a") as s:
        s.put_section(CASE, "clinical", {"values": {"age": 70}, "provenance": Provenance("t", "0", None).to_dict()})
    process = start_fusion(CASE, python_executable=sys.executable, store_path=store, weights_dir=radiology_weights)
    try:
        process.wait()
        with pytest.raises(ScoringFailed, match=r"^Fusion failed: .*fusion"):
            process.json()
    finally:
        process.close()
