"""A phantom cohort on disk: files open with the libraries users have, truth matches the manifest,
same seed gives the same bytes. (The renderers' own tests check each format in depth.)"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.cohort import read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.synthetic import generate_cohort


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def manifest(phantom_cohort_tiny):
    return read_manifest(phantom_cohort_tiny.manifest, require_clinical=True)


@pytest.fixture(scope="module")
def truth(phantom_cohort_tiny):
    return phantom_cohort_tiny.load_truth()


def test_manifest_is_read_by_the_cohort_reader_with_valid_clinical_data(manifest, phantom_cohort_tiny):
    assert len(manifest.cases) == phantom_cohort_tiny.n_cases == 24
    assert {(c.centre, c.split.value) for c in manifest.cases} == {("A", "development"), ("B", "validation")}
    for case in manifest.cases:
        assert case.has_mri and case.has_slides and case.mri_t1ce is not None
        assert case.clinical_problems == ()
        assert case.time_months > 0
    with phantom_cohort_tiny.manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # paths are relative to the manifest's folder
        for column in ("mri_t2fs", "mri_t1ce", "tumor_seg", "slides"):
            assert row[column] and not Path(row[column]).is_absolute()


def test_every_mri_and_mask_opens_with_simpleitk(manifest):
    directions = set()
    for case in manifest.cases:
        t2 = sitk.ReadImage(str(case.mri_t2fs))
        t1 = sitk.ReadImage(str(case.mri_t1ce))
        seg = sitk.ReadImage(str(case.tumor_seg))
        assert t2.GetDimension() == 3 and t2.GetSize()[2] >= 10
        assert t1.GetDimension() == 3
        assert sitk.GetArrayViewFromImage(seg).any()
        spacing = t2.GetSpacing()
        assert spacing[2] > 2 * spacing[0]  # anisotropic like clinical scans
        directions.add(np.allclose(np.reshape(t2.GetDirection(), (3, 3)), np.eye(3)))
        if case.tumor_seg.name.endswith(".seg.nrrd"):
            assert seg.HasMetaDataKey("Segment0_ID") and seg.HasMetaDataKey("Segment0_Extent")
    assert directions == {True, False}  # some cases are oblique, some are not


def test_every_slide_opens_with_openslide_with_mpp_and_objective_power(manifest):
    import openslide

    for case in manifest.cases:
        for path in case.slides:
            with openslide.OpenSlide(str(path)) as slide:
                assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
                assert slide.properties[openslide.PROPERTY_NAME_OBJECTIVE_POWER] == "20"
                assert slide.level_count >= 2
                assert slide.dimensions == (4000, 3000)


def test_annotations_are_qupath_tumor_annotations_inside_their_slide(manifest):
    annotated = unannotated = 0
    for case in manifest.cases:
        for slide, annotation in zip(case.slides, case.annotations):
            if annotation is None:
                unannotated += 1
                continue
            annotated += 1
            data = json.loads(annotation.read_text())
            features = data["features"] if data.get("type") == "FeatureCollection" else [data]
            assert features
            for feature in features:
                props = feature["properties"]
                assert props["objectType"] == "annotation"
                assert props["classification"]["name"] == "Tumor" and len(props["classification"]["color"]) == 3
                xy = np.array([p for ring in feature["geometry"]["coordinates"] for p in ring])
                assert xy.min() >= 0 and xy[:, 0].max() <= 4000 and xy[:, 1].max() <= 3000
    assert annotated > unannotated > 0  # most slides annotated, some to be read as whole tissue


def test_truth_matches_the_manifest_case_by_case(manifest, truth):
    by_id = {c["case_id"]: c for c in truth["cases"]}
    assert list(by_id) == [c.case_id for c in manifest.cases]
    for case in manifest.cases:
        t = by_id[case.case_id]
        assert t["time_months"] == case.time_months and t["event"] == case.event
        assert t["split"] == case.split.value and t["centre"] == case.centre
        # The renderers were driven by the case's latents and tumor size.
        assert t["mri"]["stats"]["phenotype"] == pytest.approx(t["z_r"])
        assert t["mri"]["stats"]["tumor_size_cm"] == pytest.approx(case.clinical["tumor_size_cm"])
        assert [s["stats"]["phenotype"] for s in t["slides"]] == pytest.approx([t["z_p"]] * len(case.slides))
        assert case.tumor_seg.name == Path(t["mri"]["labelmap" if t["tumor_seg_is_labelmap"] else "seg"]).name
    assert truth["model"]["b_mri"] > 0 and truth["model"]["b_pathology"] > 0
    assert set(truth["oracle_c_index"]) == {"all", "centre:A", "centre:B", "split:development", "split:validation"}
    # The fixture's seed gives both centres enough recurrences for the training tests.
    assert all(truth["c_index"]["groups"][g]["events"] >= 5 for g in ("centre:A", "centre:B"))


def test_image_content_follows_the_latent_phenotypes_across_the_cohort(truth):
    from scipy.stats import spearmanr

    z_r = [c["z_r"] for c in truth["cases"]]
    z_p = [c["z_p"] for c in truth["cases"]]
    necrosis = [c["mri"]["stats"]["necrotic_fraction"] for c in truth["cases"]]
    density = [c["slides"][0]["stats"]["nuclear_density_per_mm2"] for c in truth["cases"]]
    assert spearmanr(z_r, necrosis).statistic > 0.5
    assert spearmanr(z_p, density).statistic > 0.5


def test_same_seed_gives_the_same_bytes_whatever_the_number_of_workers(tmp_path):
    one = generate_cohort(tmp_path / "one", 4, "A,B", seed=5, size="tiny", workers=1, dicom_rate=0.5)
    two = generate_cohort(tmp_path / "two", 4, "A,B", seed=5, size="tiny", workers=2, dicom_rate=0.5)
    digest_one, digest_two = tree_digest(one.root), tree_digest(two.root)
    assert len(digest_one) >= 4 * 6  # manifest, truth, and per case 4 MRI files + slide (+ annotation)
    assert any(name.endswith(".dcm") or "/t2fs/" in name for name in digest_one)  # DICOM series are covered too
    assert digest_one == digest_two


def test_missing_rate_one_leaves_every_case_with_exactly_one_imaging_modality(tmp_path):
    cohort = generate_cohort(tmp_path / "c", 6, "A,B", seed=2, size="tiny", missing_rate=1.0)
    cases = read_manifest(cohort.manifest).cases
    assert all(c.has_mri != c.has_slides for c in cases)
    assert {c.has_mri for c in cases} == {True, False}
    truth = cohort.load_truth()
    assert all((t["mri"] is None) == (not c.has_mri) for t, c in zip(truth["cases"], cases))


def test_a_one_modality_cohort_has_the_full_cohorts_cases_and_those_images_alone(tmp_path):
    full = generate_cohort(tmp_path / "full", 2, "A,B", seed=2, size="tiny")
    mri = generate_cohort(tmp_path / "mri", 2, "A,B", seed=2, size="tiny", modalities=("mri",))
    slides = generate_cohort(tmp_path / "slides", 2, "A,B", seed=2, size="tiny", modalities="slides")
    whole, digest = read_manifest(full.manifest).cases, tree_digest(full.root)
    for cohort, has_mri in ((mri, True), (slides, False)):
        cases = read_manifest(cohort.manifest).cases
        assert [(c.case_id, c.time_months, c.event) for c in cases] == [(c.case_id, c.time_months, c.event)
                                                                          for c in whole]
        assert all(c.has_mri == has_mri and c.has_slides != has_mri for c in cases)
        images = {name: sha for name, sha in tree_digest(cohort.root).items() if name.startswith("cases/")}
        assert images and all(digest[name] == sha for name, sha in images.items())  # the full cohort's bytes
        assert all(("/slides/" in name) != has_mri for name in images)
        truth = cohort.load_truth()
        assert truth["settings"]["modalities"] == (["mri"] if has_mri else ["slides"])
        assert [t["z_r"] for t in truth["cases"]] == [t["z_r"] for t in full.load_truth()["cases"]]
    assert "modalities" not in full.load_truth()["settings"]  # a full cohort's truth.json keeps its bytes
    for bad in ("ct", "", ()):
        with pytest.raises(InvalidInput, match="modalities: .*choose one or both of mri, slides"):
            generate_cohort(tmp_path / "bad", 2, "A,B", seed=2, modalities=bad)


def test_dicom_option_writes_mri_as_a_dicom_series_folder(tmp_path):
    cohort = generate_cohort(tmp_path / "c", 2, "A,B", seed=2, size="tiny", dicom_rate=1.0)
    for case in read_manifest(cohort.manifest).cases:
        assert case.mri_t2fs.is_dir()
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(case.mri_t2fs)))
        image = reader.Execute()
        assert image.GetDimension() == 3 and image.GetSize()[2] >= 10


def test_table_only_cohort_has_no_image_paths_and_writes_no_images(tmp_path):
    cohort = generate_cohort(tmp_path / "c", 10, "A,B", seed=2, images=False)
    assert sorted(p.name for p in cohort.root.iterdir()) == ["manifest.csv", "truth.json"]
    cases = read_manifest(cohort.manifest).cases
    assert not any(c.has_mri or c.has_slides for c in cases)
