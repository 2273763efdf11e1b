"""Running the federated fit over Flower's gRPC transport: a SuperLink for the server, a SuperNode per centre.

``sarcoma-risk federated server`` starts ``flower-superlink``, writes a Flower App (a
``pyproject.toml`` naming :mod:`sarcoma_risk.federated.apps`) and submits it with ``flwr run``,
which waits for the run to end; ``sarcoma-risk federated client`` runs ``flower-supernode`` with
the centre's manifest in its node config. These are Flower's own commands, so TLS and SuperNode
authentication are configured as Flower documents them (https://flower.ai/docs/framework/
how-to-enable-tls-connections.html): ``--ssl-certfile/--ssl-keyfile/--ssl-ca-certfile`` on the
server, ``--root-certificates`` on each client; ``--insecure`` (plain gRPC) is for loopback tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from sarcoma_risk.errors import InvalidInput

APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "sarcoma-risk-federated"
version = "1.0.0"
description = "SarcomaRisk federated Cox fusion (the code is the installed sarcoma_risk package)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "sarcomarisk"

[tool.flwr.app.components]
serverapp = "sarcoma_risk.federated.apps:server_app"
clientapp = "sarcoma_risk.federated.apps:client_app"

[tool.flwr.app.config]
{config}
"""


class FlowerCommandError(InvalidInput):
    """A Flower command (flower-superlink, flower-supernode, flwr) is missing or failed."""


def flower_command(name: str) -> str:
    """Path of a Flower console script: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FlowerCommandError(f"{name}: not found; install the federated extra: pip install 'sarcoma-risk[federated]'")
    return found


def flower_environment(**extra: str) -> dict[str, str]:
    """This environment with Flower's scripts first on PATH: the SuperLink and SuperNode start
    ``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp`` by name."""
    scripts = str(Path(flower_command("flower-superlink")).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")]), **extra}


@dataclass(frozen=True)
class Tls:
    """TLS files (all None: plain gRPC, only for loopback tests)."""

    certfile: Path | None = None
    keyfile: Path | None = None
    ca_certfile: Path | None = None

    @property
    def insecure(self) -> bool:
        return self.certfile is None


def _toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else ("true" if value is True else "false" if value is False
                                                             else repr(value))


def write_app(directory: Path, run_config: Mapping[str, Any]) -> Path:
    """The Flower App folder ``flwr run`` submits; its config lists every run-config key (defaults)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = "\n".join(f"{k} = {_toml_value(v)}" for k, v in run_config.items())
    (directory / "pyproject.toml").write_text(APP_PYPROJECT.format(config=config), encoding="utf-8")
    (directory / "README.md").write_text("SarcomaRisk federated Cox fusion (written by sarcoma-risk federated server)\n",
                                         encoding="utf-8")
    return directory


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise FlowerCommandError(f"the SuperLink did not open {host}:{port} within {timeout:g}s")


def run_server(out: Path, work: Path, run_config: Mapping[str, Any], *, address: str = "0.0.0.0",
               fleet_port: int = 9092, control_port: int = 9093, serverappio_port: int = 9091, tls: Tls = Tls(),
               timeout: float = 3600.0) -> Path:
    """Start a SuperLink, submit the federated fit with ``flwr run`` and wait; returns the weights folder.

    Logs go to ``work/superlink.log`` and ``work/run.log``. The SuperLink is stopped at the end.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = {**run_config, "out": str(out.resolve())}
    app = write_app(work / "app", config)
    env = flower_environment(FLWR_HOME=str((work / "flwr-home").resolve()))
    (work / "flwr-home").mkdir(exist_ok=True)
    link = [flower_command("flower-superlink"), "--fleet-api-address", f"{address}:{fleet_port}",
            "--control-api-address", f"127.0.0.1:{control_port}", "--serverappio-api-address",
            f"127.0.0.1:{serverappio_port}", "--database", ":flwr-in-memory:"]
    link += ["--insecure"] if tls.insecure else ["--ssl-certfile", str(tls.certfile), "--ssl-keyfile",
                                                 str(tls.keyfile), "--ssl-ca-certfile", str(tls.ca_certfile)]
    connection = {"address": f"127.0.0.1:{control_port}"}
    connection.update({"insecure": True} if tls.insecure else {"root-certificates": str(tls.ca_certfile)})
    (work / "flwr-home" / "config.toml").write_text(
        '[superlink]\ndefault = "sarcoma-risk"\n\n[superlink.sarcoma-risk]\n'
        + "".join(f"{k} = {_toml_value(v)}\n" for k, v in connection.items()), encoding="utf-8")
    with open(work / "superlink.log", "wb") as link_log, open(work / "run.log", "wb") as run_log:
        # its own process group: the SuperLink starts flower-superexec and flwr-serverapp, stopped with it
        superlink = subprocess.Popen(link, stdout=link_log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_for_port("127.0.0.1", control_port, 60.0)
            overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in config.items())
            result = subprocess.run([flower_command("flwr"), "run", str(app), "sarcoma-risk", "--run-config", overrides,
                                     "--stream"], stdout=run_log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        finally:
            stop_group(superlink)
    if result.returncode != 0 or not (out / "manifest.json").is_file():
        raise FlowerCommandError(f"the federated run did not write {out / 'manifest.json'} (flwr run exit "
                                 f"{result.returncode}); see {work / 'run.log'} and {work / 'superlink.log'}")
    return out


def stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: SIGTERM, then
    SIGKILL after ``grace`` seconds (a SuperNode whose SuperLink is gone can spend longer saying goodbye)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def client_command(manifest: Path, centre: str, server: str, *, scores: Sequence[Path] = (),
                   clientappio_port: int = 9094, root_certificates: Path | None = None) -> list[str]:
    """The ``flower-supernode`` command line of one centre (plain gRPC without root certificates)."""
    node_config = {"manifest": str(manifest.resolve()), "centre": centre,
                   "scores": ",".join(str(Path(s).resolve()) for s in scores)}
    command = [flower_command("flower-supernode"), "--superlink", server, "--clientappio-api-address",
               f"127.0.0.1:{clientappio_port}", "--node-config",
               " ".join(f"{k}={_toml_value(v)}" for k, v in node_config.items())]
    command += ["--insecure"] if root_certificates is None else ["--root-certificates", str(root_certificates)]
    return command
