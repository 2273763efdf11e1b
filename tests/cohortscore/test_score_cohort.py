"""`sarcoma-risk score-cohort` in this process (the default): every case written, bad cases reported, reruns resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sarcoma_risk.cli import main

from .runs import BAD_MASK, BAD_SLIDE, GOOD, WEIGHTS, copy_store, history_length, score_cohort_cli, sections


def test_every_case_is_written_and_the_bad_slide_and_the_bad_mask_fail_for_their_case_only(first_run):
    assert first_run.status == 1  # some failed
    records = sections(first_run.store)
    for case_id in GOOD:
        assert records[case_id]["radiology"]["score"] is not None and records[case_id]["pathology"]["slides"]
    assert records[BAD_SLIDE]["radiology"] is not None and records[BAD_SLIDE]["pathology"] is None
    assert records[BAD_MASK]["pathology"] is not None and records[BAD_MASK]["radiology"] is None
    lines = first_run.stdout.splitlines()
    assert sum(": scored " in line for line in lines) == 6
    assert f"{BAD_SLIDE} pathology: FAILED: slide 1 of 1:" in first_run.stdout
    assert "damaged.svs" in first_run.stdout
    assert f"{BAD_MASK} radiology: FAILED:" in first_run.stdout and "outside the MRI" in first_run.stdout
    assert f"2 case section(s) failed: {BAD_SLIDE} pathology, {BAD_MASK} radiology" in first_run.stderr \
        or f"2 case section(s) failed: {BAD_MASK} radiology, {BAD_SLIDE} pathology" in first_run.stderr


def test_the_sections_are_the_ones_score_mri_and_score_slide_write(first_run, small_cohort, tmp_path, capsys):
    case_id = GOOD[0]
    row = small_cohort.rows[case_id]
    alone = tmp_path / "alone.sqlite"
    mri = ["score-mri", "--case", case_id, "--image", row["mri_t2fs"], "--image2", row["mri_t1ce"],
           "--mask", row["tumor_seg"], "--store", str(alone)]
    slide = ["score-slide", "--case", case_id, "--slide", row["slides"], "--annotations", row["annotations"],
             "--out", str(tmp_path / "out"), "--no-progress", "--store", str(alone)]
    assert main(mri) == 0 and main(slide) == 0, capsys.readouterr().err
    expected, got = sections(alone)[case_id], sections(first_run.store)[case_id]

    def without_time(section: dict) -> dict:
        section = json.loads(json.dumps(section))
        section["provenance"].pop("timestamp_utc")
        section["provenance"]["parameters"].pop("written_by", None)
        for entry in section.get("slides", []):
            entry.pop("scored_utc")
        return section

    assert without_time(got["radiology"]) == without_time(expected["radiology"])
    assert without_time(got["pathology"]) == without_time(expected["pathology"])  # tile outputs' sha256 included
    assert got["pathology"]["provenance"]["parameters"]["written_by"] == "sarcoma-risk score-cohort"
    for section in ("radiology", "pathology"):  # this machine has no GPU: auto took the CPU, as score-mri did
        assert got[section]["provenance"]["parameters"]["device"] == "cpu"
        assert got[section]["provenance"]["parameters"]["precision"] == "fp32"


def test_a_device_this_machine_lacks_or_a_misspelt_one_is_refused_before_any_case(small_cohort, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, so --device cuda is not refused here")
    for device, expected in (("cuda", "error: device 'cuda': "), ("gpu", "error: device: 'gpu' is not valid")):
        run = score_cohort_cli(small_cohort.manifest, tmp_path / "cases.sqlite", tmp_path / "out", "--device", device)
        assert run.status == 1 and run.stderr.startswith(expected), run.stderr
    assert not (tmp_path / "cases.sqlite").exists() and not (tmp_path / "out").exists()


def test_the_run_metadata_hold_versions_arguments_weights_and_every_case(first_run, small_cohort):
    data = first_run.metadata
    assert data["format"] == "sarcoma-risk-score-cohort-run/1" and data["status"] == "finished"
    assert data["finished_utc"] >= data["started_utc"]
    assert data["arguments"]["manifest"] == str(small_cohort.manifest) and data["arguments"]["cluster"] is None
    assert {"python", "sarcoma-risk", "torch", "dask", "distributed"} <= set(data["versions"])
    shipped = json.loads((WEIGHTS / "manifest.json").read_text())["models"]
    assert {name: w["sha256"] for name, w in data["weights"].items()} == {
        name: shipped[name]["sha256"] for name in ("radiology-t2fs+t1ce", "radiology-t2fs", "radiology-t1ce",
                                                   "pathology-patch", "pathology-signature")}
    assert data["engine"] == {"engine": "in-process"} and data["store"] == str(first_run.store)
    assert data["counts"] == {"scored": 6, "failed": 2}
    units = first_run.units()
    assert set(units) == {(c, m) for c in small_cohort.case_ids for m in ("radiology", "pathology")}
    assert units[(GOOD[0], "radiology")]["revision"] == 1 and units[(GOOD[0], "radiology")]["score"] is not None
    failed = units[(BAD_SLIDE, "pathology")]
    assert failed["status"] == "failed" and failed["jobs"][0]["job"] == "slide 1 of 1"
    assert failed["jobs"][0]["host"] and failed["jobs"][0]["seconds"] >= 0


def test_a_rerun_skips_what_the_records_hold_and_tries_the_failures_again(first_run, small_cohort, tmp_path):
    store = copy_store(first_run.store, tmp_path / "cases.sqlite")
    before, audit = sections(store), history_length(store)
    rerun = score_cohort_cli(small_cohort.manifest, store, first_run.out)
    assert rerun.status == 1
    units = rerun.units()
    assert {k for k, u in units.items() if u["status"] == "failed"} == {(BAD_SLIDE, "pathology"),
                                                                      (BAD_MASK, "radiology")}
    assert rerun.metadata["counts"] == {"skipped": 6, "failed": 2}
    assert sections(store) == before and history_length(store) == audit  # nothing written again


def test_inputs_are_recognised_by_content_so_a_copied_file_is_skipped_and_a_new_annotation_is_scored(
        first_run, small_cohort, tmp_path):
    import shutil

    store = copy_store(first_run.store, tmp_path / "cases.sqlite")
    moved, annotated = dict(small_cohort.rows[GOOD[0]]), dict(small_cohort.rows[GOOD[1]])
    for column in ("mri_t2fs", "mri_t1ce", "tumor_seg", "slides", "annotations"):
        copy = tmp_path / "moved" / f"{column}-{Path(moved[column]).name}"
        copy.parent.mkdir(exist_ok=True)
        moved[column] = str(shutil.copy(moved[column], copy))
    annotated["annotations"] = ""  # the same slide, now scored on the whole tissue
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(moved))
        writer.writeheader()
        writer.writerows([moved, annotated])
    run = score_cohort_cli(manifest, store, tmp_path / "out")
    assert run.status == 0, run.stderr
    status = {k: u["status"] for k, u in run.units().items()}
    assert status == {(GOOD[0], "radiology"): "skipped", (GOOD[0], "pathology"): "skipped",
                      (GOOD[1], "radiology"): "skipped", (GOOD[1], "pathology"): "scored"}
    (entry,) = sections(store)[GOOD[1]]["pathology"]["slides"]  # the slide's entry was replaced, not added
    assert entry["restricted_to_annotation"] is False and entry["annotation_sha256"] is None


def test_a_cohort_without_follow_up_is_scored_and_the_annotation_class_decides_what_the_record_holds(
        first_run, small_cohort, tmp_path):
    from sarcoma_risk.pathology.regions import region_sha256
    from sarcoma_risk.provenance import sha256_file

    store = copy_store(first_run.store, tmp_path / "cases.sqlite")
    row = small_cohort.rows[GOOD[0]]
    annotation = json.loads(Path(row["annotations"]).read_text(encoding="utf-8"))
    for feature in annotation["features"]:  # the same polygons, under a centre's own class name
        feature["properties"]["classification"]["name"] = "Neoplastic"
    (tmp_path / "neoplastic.geojson").write_text(json.dumps(annotation), encoding="utf-8")
    imaging = {"case_id": GOOD[0], "mri_t2fs": row["mri_t2fs"], "mri_t1ce": row["mri_t1ce"],
               "tumor_seg": row["tumor_seg"], "slides": row["slides"],
               "annotations": str(tmp_path / "neoplastic.geojson")}  # no centre, split, outcome or clinical data
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(imaging))
        writer.writeheader()
        writer.writerow(imaging)

    default = score_cohort_cli(manifest, store, tmp_path / "out")
    assert default.status == 1
    assert {k: u["status"] for k, u in default.units().items()} == {(GOOD[0], "radiology"): "skipped",
                                                                    (GOOD[0], "pathology"): "failed"}
    assert "--annotation-class" in default.units()[GOOD[0], "pathology"]["message"]

    named = score_cohort_cli(manifest, store, tmp_path / "out", "--annotation-class", "Neoplastic")
    assert named.status == 0, named.stderr
    assert named.units()[GOOD[0], "pathology"]["status"] == "scored"
    (entry,) = sections(store)[GOOD[0]]["pathology"]["slides"]
    (before,) = sections(first_run.store)[GOOD[0]]["pathology"]["slides"]
    assert entry["annotation_sha256"] == region_sha256(sha256_file(tmp_path / "neoplastic.geojson"), ("Neoplastic",))
    assert entry["n_tiles"] == before["n_tiles"] and entry["score"] == pytest.approx(before["score"])  # same region
    again = score_cohort_cli(manifest, store, tmp_path / "out", "--annotation-class", "Neoplastic")
    assert again.units()[GOOD[0], "pathology"]["status"] == "skipped"

    refused = score_cohort_cli(manifest, store, tmp_path / "out", "--annotation-class", "Tumor:")
    assert refused.status == 1 and "--annotation-class 'Tumor:'" in refused.stderr
    assert refused.stdout == ""  # refused before any case


def test_an_interrupted_run_resumes_where_it_stopped(small_cohort, tmp_path):
    from sarcoma_risk.cohortscore.run import score_cohort

    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    seen = []

    def interrupt_after_the_first(unit):
        seen.append(unit)
        raise KeyboardInterrupt  # as Ctrl-C right after the first case was written

    with pytest.raises(KeyboardInterrupt):
        score_cohort(small_cohort.manifest, weights_dir=WEIGHTS, out_dir=out, store=store, modalities=["radiology"],
                     on_unit=interrupt_after_the_first)
    (first,) = seen
    (path,) = (out / "runs").glob("*.json")
    stopped = json.loads(path.read_text())
    assert stopped["status"] == "interrupted" and [u["case_id"] for u in stopped["units"]] == [first.case_id]
    assert [c for c, s in sections(store).items() if s["radiology"]] == [first.case_id]

    resumed = score_cohort_cli(small_cohort.manifest, store, out, "--modality", "radiology")
    status = {k[0]: u["status"] for k, u in resumed.units().items()}
    assert status[first.case_id] == "skipped"
    assert status == {first.case_id: "skipped", **{c: "scored" for c in small_cohort.case_ids
                                                   if c not in (first.case_id, BAD_MASK)}, BAD_MASK: "failed"}
    assert resumed.metadata["status"] == "finished"



def test_a_killed_run_resumes_where_it_stopped(small_cohort, tmp_path):
    import signal
    import subprocess
    import sys

    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    command = [sys.executable, "-m", "sarcoma_risk.cli", "score-cohort", str(small_cohort.manifest), "--store",
               str(store), "--out", str(out), "--modality", "radiology"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        first = process.stdout.readline()  # the first case written
        process.send_signal(signal.SIGKILL)  # no clean-up of any kind: as a crash or a power cut
        process.wait(timeout=60)
    assert ": scored " in first, first
    written = {c for c, s in sections(store).items() if s["radiology"]}
    assert first.split()[0] in written and len(written) < len(small_cohort.case_ids) - 1
    (path,) = (out / "runs").glob("*.json")
    assert json.loads(path.read_text())["status"] == "running"  # what it did before it was killed

    resumed = score_cohort_cli(small_cohort.manifest, store, out, "--modality", "radiology")
    status = {k[0]: u["status"] for k, u in resumed.units().items()}
    assert status == {**{c: "skipped" for c in written}, BAD_MASK: "failed",
                      **{c: "scored" for c in small_cohort.case_ids if c not in (*written, BAD_MASK)}}


def test_rescore_scores_again_what_the_records_hold(small_cohort, tmp_path):
    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    assert score_cohort_cli(small_cohort.manifest, store, out, "--modality", "radiology").status == 1
    again = score_cohort_cli(small_cohort.manifest, store, out, "--modality", "radiology", "--rescore")
    scored = {k[0]: u["revision"] for k, u in again.units().items() if u["status"] == "scored"}
    assert scored == {c: 2 for c in small_cohort.case_ids if c != BAD_MASK}


def test_missing_weights_stop_the_run_before_any_case_and_say_which_modality_to_leave_out(small_cohort, tmp_path):
    run = score_cohort_cli(small_cohort.manifest, tmp_path / "cases.sqlite", tmp_path / "out",
                           "--weights", str(tmp_path / "no-weights"))
    assert run.status == 1 and "error:" in run.stderr and "--modality" in run.stderr
    assert not (tmp_path / "cases.sqlite").exists() and not (tmp_path / "out").exists()


def test_a_worker_that_finds_other_weights_than_the_run_checked_fails_the_job_instead_of_using_them(
        small_cohort, tmp_path):
    from sarcoma_risk.cohort import read_manifest
    from sarcoma_risk.cohortscore.jobs import Modality, Status, plan_jobs
    from sarcoma_risk.cohortscore.worker import RunSettings, run_job

    job = plan_jobs(read_manifest(small_cohort.manifest), [Modality.RADIOLOGY])[0]
    outcome = run_job(job, RunSettings(WEIGHTS, {"radiology-t2fs+t1ce": "0" * 64}, tmp_path))
    assert outcome.status is Status.FAILED and outcome.section is None
    assert "the run started with 000000000000" in outcome.message and "changed during the run" in outcome.message



@pytest.fixture
def server(tmp_path, monkeypatch):
    """A case-record server on loopback over a new SQLite store, the user a radiologist.

    Yields (url, store path, the radiologist's name, an admin's token).
    """
    from sarcoma_risk.records import open_store
    from serverutil import server_in_thread

    served = tmp_path / "served.sqlite"
    with open_store(served, "a") as store:
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", store.add_user("r.jones", "radiologist"))
        admin = store.add_user("a.admin", "admin")
    with server_in_thread(str(served)) as url:
        yield url, served, "r.jones", admin


def test_the_store_may_be_a_case_record_server_url_as_for_every_command(server, first_run, small_cohort, tmp_path):
    url, served, _, _ = server
    run = score_cohort_cli(small_cohort.manifest, url, tmp_path / "out", "--modality", "radiology")
    assert run.metadata["store"] == url and run.metadata["arguments"]["store"] == url
    assert {k[0]: u["status"] for k, u in run.units().items()} == {
        **{c: "scored" for c in small_cohort.case_ids if c != BAD_MASK}, BAD_MASK: "failed"}
    here, there = sections(first_run.store), sections(served)
    assert {c for c, s in there.items() if s["radiology"]} == set(small_cohort.case_ids) - {BAD_MASK}
    for case_id, record in there.items():
        if record["radiology"] is not None:
            assert record["radiology"]["score"] == pytest.approx(here[case_id]["radiology"]["score"], abs=1e-6)


def test_a_section_the_servers_role_may_not_write_is_refused_before_anything_is_scored(server, small_cohort,
                                                                                     tmp_path):
    url, served, name, _ = server
    run = score_cohort_cli(small_cohort.manifest, url, tmp_path / "out")  # a radiologist, both modalities
    assert run.status == 1
    assert f"the token of {name} (role radiologist) may not write the pathology section(s)" in run.stderr
    assert "score only --modality radiology" in run.stderr
    assert not (tmp_path / "out").exists() and all(not s["radiology"] for s in sections(served).values())


def test_a_store_that_stops_accepting_writes_stops_the_run_and_keeps_what_was_written(server, small_cohort,
                                                                                      tmp_path):
    from sarcoma_risk.cohortscore.run import score_cohort
    from sarcoma_risk.errors import AuthenticationRequired
    from sarcoma_risk.records.remote import HttpStore

    url, served, name, admin = server
    written = []

    def revoke_after_the_first(unit):
        written.append(unit.case_id)
        with HttpStore(url, "a", token=admin).open() as store:  # through the server: refused from now on
            store.revoke_user(name)

    with pytest.raises(AuthenticationRequired, match="the run stopped; the sections written so far stay"):
        score_cohort(small_cohort.manifest, weights_dir=WEIGHTS, out_dir=tmp_path / "out", store=url,
                     modalities=["radiology"], on_unit=revoke_after_the_first)
    assert [c for c, s in sections(served).items() if s["radiology"]] == written
    (metadata,) = (tmp_path / "out" / "runs").glob("*.json")
    assert json.loads(metadata.read_text())["status"] == "error"
