"""A real Dask cluster on loopback for the tests: `dask scheduler` and `dask worker` processes, as a user starts
them, with the plugin on the workers' PYTHONPATH (the checkout's .build/plugins link)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")
if not DASK.exists():  # a system Python's pip puts its scripts on PATH elsewhere (/usr/local/bin: the QGIS 3.40 chroot)
    DASK = Path(shutil.which("dask") or DASK)


class DaskCluster:
    """A scheduler and its workers, each a process of its own; ``stop`` ends them all."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--scheduler-file", str(self.scheduler_file))
        self.workers: list[subprocess.Popen] = []
        self.address = self._wait_for_address()

    def add_worker(self, env: dict | None = None, threads: int = 1, resources: str = "") -> subprocess.Popen:
        """One more worker; ``env`` adds to its environment, ``resources`` is its --resources (e.g. "GPU=2").
        Returns once the scheduler has it."""
        count = len(self.workers)
        declared = ["--resources", resources] if resources else []
        worker = self._start("worker", self.address, "--nthreads", str(threads), "--nworkers", "1", "--no-dashboard",
                             "--host", "127.0.0.1", "--no-nanny", *declared, env=env)
        self.workers.append(worker)
        self._wait_for_workers(count + 1)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def _start(self, role: str, *args, env: dict | None = None) -> subprocess.Popen:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / ".build" / "plugins"), *filter(None, [environment.get("PYTHONPATH")])])
        environment.update(env or {})
        log = open(self.folder / f"{role}{len(list(self.folder.glob(role + '*.log')))}.log", "w")  # noqa: SIM115
        return subprocess.Popen([str(DASK), role, *args], env=environment, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.folder)

    def _wait_for_address(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scheduler_file.exists():
                try:
                    return json.loads(self.scheduler_file.read_text())["address"]
                except (ValueError, KeyError):
                    pass  # written as we read it
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited: see {self.folder}")
            time.sleep(0.1)
        raise RuntimeError("dask scheduler did not start")

    def _wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout="10s", set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)
