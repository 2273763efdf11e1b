"""Where the jobs of a cohort run are computed: in this process (the default) or on a Dask cluster.

Both engines take the jobs and yield one :class:`~.jobs.JobOutcome` per job as it finishes.

- :class:`InProcess`: one job after another in the client process. One machine needs nothing
  more: torch already spreads one slide over every core, and one job at a time keeps memory to one
  slide or one MRI.
- :class:`DaskCluster`: the jobs go to the workers of an existing Dask scheduler
  (``tcp://host:port``). Workers need the same SarcomaRisk version (checked on connecting) and
  the same paths to the manifest's files, the weights and the output folder (a shared file
  system); they never open the case store. A worker that dies (killed, out of memory, a crash in a
  C library) is restarted by its nanny and its jobs go to other workers; a job that kills every
  worker it runs on (``distributed.scheduler.allowed-failures`` + 1 times, 4 by default) becomes
  that job's failure. Leaving the loop early (an error, Ctrl-C) cancels the jobs not yet done, so
  the cluster is free again at once.

Dask is imported only by :class:`DaskCluster` (the ``cluster`` extra).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, Iterator, Sequence

import torch

from sarcoma_risk.cohortscore.jobs import Job, JobOutcome, Status
from sarcoma_risk.cohortscore.worker import RunSettings, run_job
from sarcoma_risk.errors import ClusterError, MissingDependency
from sarcoma_risk.provenance import software_version

#: How long to wait for a scheduler without workers to get one.
WORKER_WAIT_S = 60.0


class InProcess:
    """Jobs run one after another in this process."""

    def describe(self) -> dict[str, Any]:
        return {"engine": "in-process"}

    def run(self, jobs: Sequence[Job], settings: RunSettings) -> Iterator[JobOutcome]:
        for job in jobs:
            yield run_job(job, settings)

    def close(self) -> None:
        """Nothing to release."""


class DaskCluster:
    """Jobs run on the workers of the Dask scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``).

    Connecting waits up to Dask's connect timeout (``distributed.comm.timeouts.connect``, or the
    environment variable ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``).
    """

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client  # lazy: Dask is the optional `cluster` extra
        except ImportError:
            raise MissingDependency("--cluster needs Dask distributed: pip install 'sarcoma-risk[cluster]' (on the "
                                    "workers too)") from None
        self.address = address
        try:
            self.client = Client(address, set_as_default=False)
        except (OSError, ValueError) as exc:  # unreachable (OSError, TimeoutError) or a malformed address
            raise ClusterError(f"--cluster {address}: cannot reach a Dask scheduler there ({exc}); start one with "
                               f"`dask scheduler` and workers with `dask worker {address}`") from None
        try:
            self.versions = self._check_workers()
        except BaseException:
            self.client.close()
            raise

    def _check_workers(self) -> dict[str, str]:
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise ClusterError(f"--cluster {self.address}: the scheduler has no workers after {WORKER_WAIT_S:.0f} s; "
                               f"start some with `dask worker {self.address}`") from None
        try:
            versions = self.client.run(software_version)
        except ImportError as exc:  # the function cannot be unpickled where SarcomaRisk is missing
            raise ClusterError(f"--cluster {self.address}: a worker cannot import SarcomaRisk ({exc}); install "
                               "the same version on every worker") from None
        mine = software_version()
        other = {worker: v for worker, v in versions.items() if v != mine}
        if other:
            raise ClusterError(f"--cluster {self.address}: these workers run another SarcomaRisk version than this "
                               f"computer ({mine}): " + ", ".join(f"{w} ({v})" for w, v in sorted(other.items()))
                               + "; install the same version everywhere")
        return versions

    def describe(self) -> dict[str, Any]:
        return {"engine": "dask", "scheduler": self.address, "workers": sorted(self.versions)}

    def run(self, jobs: Sequence[Job], settings: RunSettings) -> Iterator[JobOutcome]:
        from distributed import as_completed  # lazy: Dask is the optional `cluster` extra

        run_id = uuid.uuid4().hex[:8]
        # Readable task keys: the Dask dashboard then names the case and the job it is running.
        pending = {self.client.submit(_run_on_worker, job, settings, pure=False,
                                      key=f"score-cohort-{run_id}-{n}-{job.case_id}-{job.modality.value}"): job
                   for n, job in enumerate(jobs)}
        try:
            for future in as_completed(list(pending), loop=self.client.loop):
                job = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died or the task could not run: the job's failure, not the run's
                    outcome = JobOutcome(job, Status.FAILED, message=f"the Dask worker running it failed "
                                                                     f"({type(exc).__name__}: {exc})")
                future.release()
                yield outcome
        finally:
            if pending:
                self.client.cancel(list(pending))

    def close(self) -> None:
        self.client.close()


def _run_on_worker(job: Job, settings: RunSettings) -> JobOutcome:
    """:func:`~.worker.run_job` on a Dask worker, with torch on as many threads as the worker has.

    Dask starts worker processes with one OpenMP thread (``OMP_NUM_THREADS=1``), meant for many
    small tasks in parallel; here a process runs one job at a time, so its threads go to that job.
    """
    from distributed import get_worker  # lazy: Dask is the optional `cluster` extra

    worker = get_worker()
    torch.set_num_threads(max(1, worker.state.nthreads))
    return replace(run_job(job, settings), worker=worker.address)


def connect(cluster: str | None) -> InProcess | DaskCluster:
    """The engine for ``--cluster``: None runs in this process."""
    return InProcess() if cluster is None else DaskCluster(cluster)
