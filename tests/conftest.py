"""Session fixtures shared by every test folder: the tiny phantom cohort, and running code as an unprivileged user."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import warnings

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The pytest-xdist workers share the cores: torch's default of one thread per core in each of
    # them would oversubscribe the machine (the commands a test starts inherit this too).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

#: Seed of the shared tiny cohort, chosen by scanning seeds with the table-only planner
#: (``plan_cohort``) so that each centre has 8 recurrences among its 12 cases (training and Cox tests
#: need events in both splits) and an oracle C-index near the population value of about 0.81
#: (0.78 development, 0.75 validation, 0.79 overall) rather than a lucky or unlucky draw.
PHANTOM_TINY_SEED = 126
PHANTOM_TINY_CASES = 24


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (``make test``), send each test folder to one worker as a whole.

    A folder's session fixtures (a trained model, a rendered slide cohort) are then built once, not
    once per worker. Each file at the top of tests/ is a unit of its own. (pytest-xdist's
    ``--dist loadgroup`` would do this with markers, but its group names never reach the scheduler
    under pytest 9, whose node IDs it can no longer rewrite.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class FolderScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0].split("/")
            return path[1] if len(path) > 2 else path[-1]

    return FolderScheduling(config, log)


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test():
    """Drop the root log handlers a test's command added.

    ``main([...])`` points the root logger at that call's stderr (``logging.basicConfig(force=True)``),
    which under capsys is the test's capture: closed after the test, so every later record would
    fail on it and print a traceback, from whichever thread logged.
    """
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler and h not in before]:
        root.removeHandler(handler)


@pytest.fixture(scope="session")
def phantom_cohort_tiny(tmp_path_factory):
    """A tiny two-centre phantom cohort on disk, generated once per session by two processes (about 6 s; the
    bytes do not depend on the number of processes).

    24 cases (12 from centre A = development, 12 from centre B = validation), every case with a
    T2FS and T1CE MRI (NIfTI; some oblique; some pointing at the labelmap instead of the .seg.nrrd),
    a tumor segmentation and one Aperio slide (some with pen marks/debris, most with a QuPath tumor
    annotation). Returns a :class:`sarcoma_risk.synthetic.PhantomCohort`: ``.manifest`` is the
    manifest path, ``.root`` its folder, ``.load_truth()`` the truth.json content.

    Treat it as read-only: every test of the session shares it.
    """
    from sarcoma_risk.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("phantom_tiny"), PHANTOM_TINY_CASES, ("A", "B"),
                           seed=PHANTOM_TINY_SEED, size="tiny", workers=2)


def _as_unprivileged_user(action):
    """Run ``action()`` where file modes apply: here, or (as root) in a child that drops to 'nobody'.

    Root ignores chmod, so as root the action runs in a forked child after setuid; its result (or
    error text) comes back through a pipe. Returns the action's JSON-able result.
    """
    if os.geteuid() != 0:
        return action()
    if not hasattr(os, "fork"):
        pytest.skip("running as root without os.fork: cannot drop privileges, and root ignores chmod")
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (a library may have started
        # some); the child only runs SQLite and plain Python, and the parent gives up after 60 s.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 0
        try:
            os.close(read_end)
            os.setgid(gid)
            os.setuid(uid)
            payload = {"result": action()}
        except BaseException as exc:  # report anything to the parent, which fails the test
            payload = {"error": f"{type(exc).__name__}: {exc}"}
            status = 1
        with os.fdopen(write_end, "w") as pipe:
            json.dump(payload, pipe)
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        ready, _, _ = select.select([pipe], [], [], 60)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the unprivileged child did not answer within 60 s")
        payload = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    if "error" in payload:
        raise AssertionError(f"unprivileged child failed: {payload['error']}")
    return payload["result"]


@pytest.fixture
def run_unprivileged():
    """``run_unprivileged(action)``: ``action()`` where file modes apply (as root: in a child run as 'nobody')."""
    return _as_unprivileged_user


@pytest.fixture(scope="session")
def qupath_export():
    """A function writing annotations as QuPath 0.5's File > Export objects as GeoJSON does, by hand.

    ``write(path, [(class, (x0, y0, x1, y1)), ...])``: each rectangle becomes an annotation Feature
    with a UUID ``id``, ``objectType`` and a ``classification`` in QuPath's own spelling: ``name`` for a
    plain class, ``names`` for a derived one ("Tumour: Necrosis" -> ["Tumour", "Necrosis"]), none for
    None. Written as JSON text here, not by SarcomaRisk's GeoJSON writer, so reading real exports is tested.
    """
    import uuid

    colours = {}

    def write(path, annotations):
        features = []
        for name, (x0, y0, x1, y1) in annotations:
            properties = {"objectType": "annotation"}
            if name is not None:
                parts = [p.strip() for p in name.split(":")]
                colour = colours.setdefault(name, [(37 * len(colours)) % 256, 120, 200])
                properties["classification"] = ({"name": parts[0]} if len(parts) == 1 else {"names": parts}) | {
                    "color": colour}
            features.append({"type": "Feature", "id": str(uuid.UUID(int=len(features) + 1)),
                             "geometry": {"type": "Polygon",
                                          "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
                             "properties": properties})
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=2))
        return path

    return write


@pytest.fixture(scope="session")
def postgres_cluster():
    """A private PostgreSQL server for the session (skips, saying what to install, when there is none)."""
    from pgcluster import PostgresCluster, missing_reason

    reason = missing_reason()
    if reason is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            reason = "psycopg is not installed; install the server extra: pip install -e '.[server]'"
    if reason is not None:
        pytest.skip(reason)
    cluster = PostgresCluster().start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster):
    """A new empty database on the session's PostgreSQL server, dropped after the test."""
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    if not postgres_cluster.running():  # a test that stopped it and failed before starting it again
        postgres_cluster.start()
    url = postgres_cluster.create_database(name)
    yield url
    if postgres_cluster.running():
        with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
