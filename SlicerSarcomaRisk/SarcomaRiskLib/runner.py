"""Run a ``sarcoma-risk`` command in a separate Python process and stream its log.

The model must never freeze or take down Slicer's GUI, so scoring runs as
``PythonSlicer -m sarcoma_risk.cli ...`` in its own process (as TotalSegmentator and
MONAIAuto3DSeg do). Two reader threads move the process's output into a queue; the caller polls
it (from a Qt timer inside Slicer, from a loop in tests) and is never blocked. The process gets a
time limit and can be cancelled; a failure becomes a :class:`ScoringFailed` whose message is the
command's own ``error: ...`` line, which already names the file or field and the fix.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from .errors import ScoringCancelled, ScoringFailed, ScoringTimeout

#: Lines of output kept for the details of an error message.
LOG_TAIL = 200
#: Seconds a process gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_S = 5.0


class CliProcess:
    """One ``python -m sarcoma_risk.cli <arguments>`` run.

    Parameters
    ----------
    python_executable : str
        ``PythonSlicer`` inside Slicer; any Python with ``sarcoma_risk`` installed elsewhere.
    arguments : sequence of str
        The command line after ``-m sarcoma_risk.cli``.
    title : str
        What the process does, for messages ("Radiology scoring").
    timeout_s : float or None
        Wall-clock limit; the process is stopped when it runs longer.
    python_path : sequence of str
        Folders put in front of ``PYTHONPATH`` (where an installed extension keeps ``sarcoma_risk``).
    env : mapping or None
        Extra environment variables.
    """

    def __init__(self, python_executable: str, arguments: Sequence[str], *, title: str = "sarcoma-risk",
                 timeout_s: float | None = None, python_path: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.command = [str(python_executable), "-m", "sarcoma_risk.cli", *map(str, arguments)]
        self.title = title
        self.timeout_s = timeout_s
        self.python_path = [str(p) for p in python_path]
        self.env = dict(env or {})
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._open_streams = 0
        self._stdout: list[str] = []
        self._log: list[str] = []
        self._started_at = 0.0
        self._stopped_because: str | None = None  # "cancelled" or "timeout"
        self._terminated_at: float | None = None

    # ---- running -----------------------------------------------------------------------------

    def start(self) -> "CliProcess":
        env = dict(os.environ)
        env.update(self.env)
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join([*self.python_path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONUNBUFFERED"] = "1"  # log lines arrive as they are written, not at exit
        env["PYTHONIOENCODING"] = "utf-8"
        # Its own process group, so cancelling also stops anything the scorer started.
        group = ({"start_new_session": True} if os.name == "posix"
                 else {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP})
        try:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, text=True, encoding="utf-8", errors="replace", bufsize=1, **group)
        except OSError as exc:
            raise ScoringFailed(
                f"{self.title} could not start {self.command[0]!r} ({exc.strerror or exc}); "
                "check that the Python executable exists (PythonSlicer inside Slicer)") from None
        self._started_at = time.monotonic()
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            thread = threading.Thread(target=self._read, args=(name, stream), daemon=True,
                                      name=f"sarcoma-risk-{name}")
            thread.start()
            self._threads.append(thread)
        self._open_streams = 2
        return self

    def _read(self, name: str, stream: Any) -> None:
        try:
            for line in stream:
                self._queue.put((name, line.rstrip("\r\n")))
        finally:
            self._queue.put((name, None))

    def poll(self) -> list[str]:
        """New log lines since the last call (never blocks); stops the process past its time limit."""
        lines = []
        while True:
            try:
                name, line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._open_streams -= 1
            elif name == "stdout":
                self._stdout.append(line)
            else:
                lines.append(line)
        self._log.extend(lines)
        del self._log[:-LOG_TAIL]
        if (self.timeout_s is not None and self.running and not self._stopped_because
                and time.monotonic() - self._started_at > self.timeout_s):
            self._stop("timeout")
        elif (self._terminated_at is not None and self.running
              and time.monotonic() - self._terminated_at > TERMINATE_GRACE_S):
            self._signal(kill=True)  # it ignored SIGTERM
        return lines

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def finished(self) -> bool:
        """True once the process has exited and all of its output has been read."""
        return self._process is not None and self._process.poll() is not None and self._open_streams == 0

    def cancel(self) -> None:
        """Stop the process (the result then raises :class:`ScoringCancelled`)."""
        if self.running and not self._stopped_because:
            self._stop("cancelled")

    def _stop(self, reason: str) -> None:
        """Ask the process (group) to stop; :meth:`poll` kills it if it is still there after a grace time.

        Never blocks, so a GUI polling from a timer stays responsive.
        """
        self._stopped_because = reason
        self._terminated_at = time.monotonic()
        self._signal(kill=False)

    def _signal(self, kill: bool) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            elif kill:
                process.kill()
            else:
                process.terminate()
        except ProcessLookupError:  # it exited on its own meanwhile
            pass

    def wait(self, log: Callable[[str], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, interval_s: float = 0.05) -> "CliProcess":
        """Block until the process ends, passing each log line to ``log``; for scripts and tests."""
        while not self.finished:
            for line in self.poll():
                if log is not None:
                    log(line)
            if should_cancel is not None and should_cancel():
                self.cancel()
            time.sleep(interval_s)
        for line in self.poll():
            if log is not None:
                log(line)
        return self

    def close(self) -> None:
        """Stop the process if it still runs (waiting for it) and release its pipes."""
        if self.running:
            self._stop(self._stopped_because or "cancelled")
            try:
                self._process.wait(TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(kill=True)
                self._process.wait()
        if self._process is not None:
            for thread in self._threads:
                thread.join(timeout=TERMINATE_GRACE_S)
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()

    # ---- outcome -----------------------------------------------------------------------------

    @property
    def log(self) -> list[str]:
        """The last :data:`LOG_TAIL` lines the process wrote to stderr."""
        return list(self._log)

    def stdout(self) -> str:
        """Everything the process printed on stdout, once it succeeded; else the failure is raised."""
        if not self.finished:
            raise ScoringFailed(f"{self.title} is still running; wait for it to finish")
        code = self._process.returncode
        if self._stopped_because == "cancelled":
            raise ScoringCancelled(f"{self.title} was cancelled.", self.log)
        if self._stopped_because == "timeout":
            raise ScoringTimeout(
                f"{self.title} took longer than {self.timeout_s:g} s and was stopped; "
                "raise the time limit in the Advanced section or check the log", self.log)
        if code != 0:
            errors = [line[len("error: "):] for line in self._log if line.startswith("error: ")]
            if errors:
                raise ScoringFailed(f"{self.title} failed: {errors[-1]}", self.log)
            tail = "\n".join(self._log[-5:]) or "(no output)"
            hint = " (killed: out of memory?)" if code in (-9, 137) else ""
            raise ScoringFailed(f"{self.title} stopped with exit code {code}{hint}. Last output:\n{tail}", self.log)
        return "\n".join(self._stdout)

    def json(self) -> Any:
        """The JSON document the command printed with ``--json``."""
        text = self.stdout()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScoringFailed(f"{self.title} printed no valid JSON result ({exc}); output began with "
                                f"{text[:200]!r}", self.log) from None


def default_python_executable() -> str:
    """``PythonSlicer`` beside the running interpreter when there is one, else this interpreter.

    Inside Slicer the GUI process is ``Slicer`` and ``sys.executable`` may not be a usable Python;
    ``PythonSlicer`` is Slicer's command-line Python with the same packages.
    """
    import shutil

    folder = os.path.dirname(sys.executable)
    for name in ("PythonSlicer", "PythonSlicer.exe"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return shutil.which("PythonSlicer") or sys.executable
