"""Running the case-record server in tests: in a thread (fast, for API tests) or as the real
``sarcoma-risk serve`` process (for tests that kill it or stop its database)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Iterator

from pgcluster import free_port


@contextlib.contextmanager
def server_in_thread(store: str, **settings) -> Iterator[str]:
    """Serve ``store`` from a thread of this process; yields the base URL."""
    import uvicorn

    from sarcoma_risk.server.app import create_app
    from sarcoma_risk.server.service import ServerConfig

    app = create_app(ServerConfig(store=store, **settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ServerProcess:
    """``sarcoma-risk serve --store STORE`` as a child process on a free loopback port."""

    def __init__(self, store: str, log: Path, *extra: str) -> None:
        self.store = store
        self.port = free_port()
        scheme = "https" if "--ssl-certfile" in extra else "http"  # the client trusts it through SSL_CERT_FILE
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = log
        self.extra = extra
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> "ServerProcess":
        command = [sys.executable, "-m", "sarcoma_risk.cli", "serve", "--store", self.store, "--port", str(self.port),
                   *self.extra]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if health(self.url) is not None:
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def health(url: str) -> tuple[int, dict] | None:
    """(status, JSON) of ``GET /api/v1/health``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def request(url: str, method: str = "GET", *, token: str | None = None, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """One raw HTTP request (status, headers (case-insensitive), body), for tests of what the server answers."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None and "Content-Type" not in sent:
        sent["Content-Type"] = "application/json"
    call = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
