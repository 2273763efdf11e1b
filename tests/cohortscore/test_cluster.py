"""`score-cohort --cluster ADDRESS` on a real Dask LocalCluster: two worker processes on 127.0.0.1.

The command connects to the cluster's scheduler by its address, as it would to a scheduler started
with `dask scheduler` on another machine.
"""

from __future__ import annotations

import socket
import time

import pytest

from .runs import BAD_MASK, WEIGHTS, score_cohort_cli, sections


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two single-threaded worker processes on the loopback interface; any dashboard on a free port."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as local:  # None would mean Dask's fixed port 8787
        yield local


def scheduler_tasks(address: str) -> int:
    """How many tasks the scheduler still holds."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def test_the_cluster_scores_every_case_as_this_process_does_and_reports_the_bad_ones(cluster, first_run,
                                                                                       small_cohort, tmp_path):
    run = score_cohort_cli(small_cohort.manifest, tmp_path / "cases.sqlite", tmp_path / "out",
                           "--cluster", cluster.scheduler_address)
    assert run.status == 1
    here, there = first_run.units(), run.units()
    assert {k: u["status"] for k, u in there.items()} == {k: u["status"] for k, u in here.items()}
    for key, unit in there.items():
        if unit["status"] == "scored":
            assert unit["score"] == pytest.approx(here[key]["score"], abs=1e-5), key
    workers = sorted(cluster.scheduler_info["workers"])
    assert run.metadata["engine"] == {"engine": "dask", "scheduler": cluster.scheduler_address, "workers": workers}
    used = {job["worker"] for unit in there.values() for job in unit["jobs"]}
    assert used == set(workers)  # the jobs were spread over both workers
    records = sections(run.store)
    assert records[BAD_MASK]["radiology"] is None and records[BAD_MASK]["pathology"] is not None


def test_an_interrupted_cluster_run_cancels_its_jobs_and_the_next_run_resumes(cluster, small_cohort, tmp_path):
    from sarcoma_risk.cohortscore.run import score_cohort

    store, out = tmp_path / "cases.sqlite", tmp_path / "out"
    seen = []

    def interrupt_after_the_first(unit):
        seen.append(unit.case_id)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_cohort(small_cohort.manifest, weights_dir=WEIGHTS, out_dir=out, store=store, modalities=["radiology"],
                     cluster=cluster.scheduler_address, on_unit=interrupt_after_the_first)
    assert [c for c, s in sections(store).items() if s["radiology"]] == seen
    deadline = time.monotonic() + 30
    while scheduler_tasks(cluster.scheduler_address) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scheduler_tasks(cluster.scheduler_address) == 0  # the jobs left were cancelled

    resumed = score_cohort_cli(small_cohort.manifest, store, out, "--modality", "radiology",
                               "--cluster", cluster.scheduler_address)
    status = {k[0]: u["status"] for k, u in resumed.units().items()}
    assert status == {seen[0]: "skipped", **{c: "scored" for c in small_cohort.case_ids if c not in (*seen, BAD_MASK)},
                      BAD_MASK: "failed"}


def test_a_scheduler_that_cannot_be_reached_is_a_clear_error_and_nothing_is_written(small_cohort, tmp_path):
    import dask
    import distributed  # noqa: F401  its config defaults first: leaving dask.config.set removes keys it added

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        run = score_cohort_cli(small_cohort.manifest, tmp_path / "cases.sqlite", tmp_path / "out",
                               "--modality", "radiology", "--cluster", f"tcp://127.0.0.1:{port}")
    assert run.status == 1
    assert f"--cluster tcp://127.0.0.1:{port}: cannot reach a Dask scheduler there" in run.stderr
    assert not (tmp_path / "cases.sqlite").exists()


def test_a_worker_killed_during_the_run_is_replaced_and_every_case_is_still_scored(cluster, small_cohort, tmp_path):
    """Last in this file: the killed worker comes back under another address."""
    import os
    import signal

    from distributed import Client

    from sarcoma_risk.cohortscore.run import score_cohort

    killed = []

    def kill_a_busy_worker(unit):
        if killed:
            return
        with Client(cluster.scheduler_address, set_as_default=False) as client:
            pids = client.run(os.getpid)
            # A worker that holds jobs of this run, so that they must go to another one.
            busy = client.run_on_scheduler(lambda dask_scheduler: [
                w.address for w in dask_scheduler.workers.values() if w.processing])
        killed.append(busy[0])
        os.kill(pids[busy[0]], signal.SIGKILL)

    run = score_cohort(small_cohort.manifest, weights_dir=WEIGHTS, out_dir=tmp_path / "out",
                       store=tmp_path / "cases.sqlite", modalities=["radiology"], cluster=cluster.scheduler_address,
                       on_unit=kill_a_busy_worker)
    assert killed
    assert {u.case_id: u.status.value for u in run.units} == {
        **{c: "scored" for c in small_cohort.case_ids if c != BAD_MASK}, BAD_MASK: "failed"}
    assert {c for c, s in sections(tmp_path / "cases.sqlite").items() if s["radiology"]} == \
        set(small_cohort.case_ids) - {BAD_MASK}
