"""A throwaway PostgreSQL server for the tests and benchmarks: initdb in a temporary folder, loopback only.

PostgreSQL refuses to run as root, so as root the server runs as an unprivileged OS user: the
``postgres`` account of the Debian package when there is one, else a ``sarcoma-pg`` system user made
for it. Its data folder and socket live in a temporary folder that user owns; it listens on
127.0.0.1 on a free port, with ``trust`` authentication (nobody else can reach a loopback server
in a private folder through the socket, and the port is open only for the test's lifetime).

``PostgresCluster.find()`` says why it cannot run (no binaries) so tests can skip with that reason;
``.ci/run`` installs Debian's ``postgresql`` package.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin", "/opt/homebrew/bin", "/usr/local/bin", "/usr/bin")
USER = "sarcoma"  # the database superuser the cluster is made with


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (newest PostgreSQL first), or None."""
    found = shutil.which("pg_ctl")
    candidates = [Path(p) for pattern in SEARCH for p in sorted(glob.glob(pattern), reverse=True)]
    if found:
        candidates.insert(0, Path(found).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def missing_reason() -> str | None:
    """Why no test cluster can start here, or None when it can."""
    if find_binaries() is None:
        return ("PostgreSQL is not installed (initdb/pg_ctl not found); install it, e.g. 'apt-get install "
                "postgresql' on Debian (.ci/run does)")
    if os.geteuid() == 0 and not hasattr(os, "setuid"):
        return "running as root on a system without setuid: PostgreSQL refuses to run as root"
    return None


def _os_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as when we are root (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "sarcoma-pg"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "sarcoma-pg"],
                   check=True, capture_output=True)
    return pwd.getpwnam("sarcoma-pg")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """One private PostgreSQL server. ``start()``, then ``url(database)``; ``stop()``/``start()`` again
    to take it away and bring it back; ``destroy()`` stops it and removes its folder.

    ``durable=False`` (tests) turns off fsync: a killed process still loses nothing committed, only a
    power cut could; benchmarks keep the defaults.
    """

    def __init__(self, *, durable: bool = False) -> None:
        binaries = find_binaries()
        if binaries is None:
            raise RuntimeError(missing_reason())
        self.bin = binaries
        self.durable = durable
        self.owner = _os_user()
        # mkdtemp makes the folder 0700 and ours; as root it is handed to the server's user, and
        # /tmp itself is traversable, unlike pytest's own temporary folders.
        self.root = Path(tempfile.mkdtemp(prefix="sarcoma-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                  "--no-locale", "--no-instructions")
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{self.root}'",
            "max_connections": "60", "shared_buffers": "32MB", "log_min_messages": "warning",
        }
        if not durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        extra = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []} if self.owner else {}
        result = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True, timeout=timeout,
                                cwd=self.root, **extra)
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def start(self) -> "PostgresCluster":
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients, roll back their transactions)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
        except (OSError, ValueError):
            return False
        return True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg  # the server extra's driver; tests that get here have it

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)
