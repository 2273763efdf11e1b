"""Running a ``sarcoma-risk`` command under ``torchrun`` on the CPU (gloo) for the distributed-training tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parent / "audited_cli.py"


@dataclass
class TorchrunResult:
    status: int
    stdout: str
    stderr: str
    writes: dict[int, list[str]]  # rank -> paths it wrote under the watched folder

    def written_by(self, rank: int, watched: Path) -> set[str]:
        return {str(Path(p).relative_to(watched)) for p in self.writes[rank]}


def torchrun(watched: Path, audit_dir: Path, argv: list[str], *, processes: int = 2,
             timeout: float = 300) -> TorchrunResult:
    """``torchrun --standalone --nproc-per-node N`` of ``sarcoma-risk argv``, auditing writes under ``watched``."""
    audit_dir.mkdir(parents=True, exist_ok=True)
    # one torch thread per process (torchrun's default too): two processes share this machine's cores
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(LAUNCHER), str(watched), str(audit_dir), *map(str, argv)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    writes = {}
    for rank in range(processes):
        path = audit_dir / f"rank-{rank}.json"
        writes[rank] = [target for _, target in json.loads(path.read_text())] if path.exists() else []
    return TorchrunResult(done.returncode, done.stdout, done.stderr, writes)
