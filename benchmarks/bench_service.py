"""Case-record server throughput: 3 client processes x 500 section updates through ``sarcoma-risk serve``.

A department's tools write through the server to PostgreSQL: here three client processes (a
radiologist, a pathologist and a coordinator, each with their own API token) update their own
section of the same 50 cases at once, 500 updates each, every one a read-modify-write
(``update_section``: GET the section with its ETag, PUT it back with If-Match, again on a 412) over
keep-alive HTTP on loopback. PostgreSQL runs as a private cluster with its durable defaults (fsync,
synchronous commit). For comparison the same three writers go through the server to a SQLite file,
and straight to the SQLite file without a server (the embedded default of one computer).

Afterwards every update is looked for in the final records and in the audit log: ``lost_updates``
must be 0. Throughput depends on what else the machine runs: every update is a durable commit, so
three writers cannot go faster than three commits per disk flush (``fsync_ms``, measured in the
same folder during the run, is printed with the figures), and the clients, the server and the
database share the cores. The server's own CPU time per update is reported too (Linux), a figure
that load on the machine changes much less. Rounds alternate the three set-ups; medians are reported. Bounded: a round that takes
longer than ``--time-limit`` seconds stops the benchmark with an error.

Run: ``.venv/bin/python benchmarks/bench_service.py [--updates N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import emit, machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL cluster and server process the tests use

from pgcluster import PostgresCluster, missing_reason  # noqa: E402
from serverutil import ServerProcess  # noqa: E402

from sarcoma_risk.provenance import Provenance  # noqa: E402
from sarcoma_risk.records import open_store  # noqa: E402
from sarcoma_risk.records.remote import HttpStore  # noqa: E402

BENCH = "service"
N_CASES = 50
#: Each client: its role, and the section that role writes.
CLIENTS = (("radiologist", "radiology"), ("pathologist", "pathology"), ("coordinator", "clinical"))


def _content(section: str, update: int, current: dict | None, provenance: dict) -> dict:
    seen = list(current["updates"]) if current else []
    base = {"radiology": {"score": float(update)}, "pathology": {"slides": [], "score": float(update)},
            "clinical": {"values": {"age_years": 50.0}}}[section]
    return {**base, "updates": [*seen, update], "provenance": provenance}


def _client(location: str, token: str | None, section: str, updates: int, barrier, results) -> None:
    provenance = Provenance("bench-service", "1", None).to_dict()
    store = HttpStore(location, "r+", token=token) if token else open_store(location, "r+")
    with store:
        barrier.wait(timeout=120)
        start = time.perf_counter()
        for u in range(updates):
            store.update_section(f"STS-{u % N_CASES:04d}", section,
                                 lambda cur, u=u: _content(section, u, cur, provenance))
        results.put((section, start, time.perf_counter()))


def _prepare(database: str) -> dict[str, str]:
    """A fresh store with the cases and one token per client role."""
    with open_store(database, "a") as store, store.transaction():
        for i in range(N_CASES):
            store.ensure_case(f"STS-{i:04d}")
        return {section: store.add_user(f"bench.{role}", role) for role, section in CLIENTS}


def _fsync_ms(folder: Path, writes: int = 50) -> float:
    """Median time of an 8 KiB write + fsync in ``folder`` (what one durable commit waits for)."""
    path = folder / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(writes):
            start = time.perf_counter()
            os.write(fd, b"\0" * 8192)
            os.fsync(fd)
            times.append(1000 * (time.perf_counter() - start))
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(location: str, tokens: dict[str, str] | None, updates: int, ctx, time_limit: float) -> float:
    barrier, results = ctx.Barrier(len(CLIENTS)), ctx.Queue()
    clients = [ctx.Process(target=_client, args=(location, tokens[section] if tokens else None, section, updates,
                                                 barrier, results)) for _, section in CLIENTS]
    for c in clients:
        c.start()
    deadline = time.monotonic() + time_limit
    for c in clients:
        c.join(timeout=max(1.0, deadline - time.monotonic()))
    if any(c.is_alive() for c in clients):
        for c in clients:
            c.kill()
        raise SystemExit(f"a round took longer than {time_limit:g} s; stopped")
    if any(c.exitcode != 0 for c in clients):
        raise SystemExit(f"a client failed: exit codes {[c.exitcode for c in clients]}")
    spans = [results.get(timeout=10) for _ in clients]
    wall = max(end for _, _, end in spans) - min(start for _, start, _ in spans)
    return len(CLIENTS) * updates / wall


def _lost_updates(database: str, updates: int) -> int:
    """Updates missing from the final records or from the audit log."""
    with open_store(database, "r") as store:
        records = list(store.records())
        audit = store.history()
    lost = 0
    for _, section in CLIENTS:
        present = set()
        for record in records:
            present.update((record.section(section) or {"updates": []})["updates"])
        lost += updates - len(present & set(range(updates)))
        lost += max(0, updates - sum(1 for e in audit if e["section"] == section))
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=500, help="updates per client and round (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds a round may take (default 300)")
    args = parser.parse_args()
    reason = missing_reason()
    if reason:  # make bench goes on with the other benchmarks
        emit(BENCH, "section_updates_per_s_server_postgresql", None, "updates/s", skipped=reason)
        return
    ctx = multiprocessing.get_context("spawn")
    rates: dict[str, list[float]] = {"server_postgresql": [], "server_sqlite": [], "sqlite_file": []}
    server_cpu: dict[str, list[float]] = {"server_postgresql": [], "server_sqlite": []}
    lost = 0
    fsync: list[float] = []
    cluster = PostgresCluster(durable=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
            for r in range(args.rounds):
                fsync.append(_fsync_ms(cluster.root))
                for setup in rates:
                    if setup == "server_postgresql":
                        database = cluster.create_database(f"bench_{r}")
                    else:
                        database = str(Path(tmp) / f"{setup}-{r}.sqlite")
                    tokens = _prepare(database)
                    if setup == "sqlite_file":
                        rates[setup].append(_run(database, None, args.updates, ctx, args.time_limit))
                    else:
                        server = ServerProcess(database, Path(tmp) / "server.log").start()
                        try:
                            before = _cpu_seconds(server.process.pid)
                            rates[setup].append(_run(server.url, tokens, args.updates, ctx, args.time_limit))
                            after = _cpu_seconds(server.process.pid)
                            if before is not None and after is not None:
                                server_cpu[setup].append(1000 * (after - before) / (len(CLIENTS) * args.updates))
                        finally:
                            server.stop()
                    lost += _lost_updates(database, args.updates)
    finally:
        cluster.destroy()
    context = {**machine(), "clients": len(CLIENTS), "updates_per_client": args.updates, "cases": N_CASES,
               "rounds": args.rounds}
    for setup, label in (("server_postgresql", "through the server to PostgreSQL (fsync on), loopback"),
                         ("server_sqlite", "through the server to a SQLite file"),
                         ("sqlite_file", "straight to the SQLite file, no server")):
        values = rates[setup]
        emit(BENCH, f"section_updates_per_s_{setup}", round(statistics.median(values), 1), "updates/s",
             range=[round(min(values), 1), round(max(values), 1)], setup=label, goal=500 if setup ==
             "server_postgresql" else None, **context)
        if server_cpu.get(setup):
            emit(BENCH, f"server_cpu_ms_per_update_{setup}", round(statistics.median(server_cpu[setup]), 2),
                 "ms", note="CPU time of the server process per update (its Python is one core's worth at most)")
    flush = statistics.median(fsync)
    emit(BENCH, "durable_commit_ceiling_updates_per_s", round(len(CLIENTS) * 1000 / flush, 1), "updates/s",
         fsync_ms=round(flush, 2), note="three writers wait for at most three commits per disk flush: the most this "
                                         "disk allowed during the run, whatever the software")
    emit(BENCH, "lost_updates", lost, "updates", expected_updates=len(CLIENTS) * args.updates * args.rounds * len(rates))


if __name__ == "__main__":
    main()
