"""Where an extraction's blocks run when not in this process: a local Dask cluster of worker processes, or any
running Dask scheduler the user names.

The client keeps what it measured once (block_tasks.BlockPlan) and submits, block by block in row order, the
model batches a block needs and the block's own task; at most a few blocks are in flight, so the workers hold
only the tile outputs those blocks read. Workers that declare a GPU (Placement) run every model batch, the others
the blocks. The client joins what block borders cut, in block order, so the result is the in-process run's. Dask
(``distributed``) is optional: without it, everything runs in this process.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from .. import dependencies
from ..progress import Canceled
from ..python_interpreter import this_python
from . import block_tasks, buildings, extract, gpu, roads, runtime, tiling, worker_check
from .tile_inference import edge_px, output_channels

# With no scheduler named, a grid of at least this many pixels runs on a local cluster when Dask is installed
# (about 3 km² at 0.3 m): below it, starting the worker processes costs more than they save. The environment
# variable SPACENET_LOCAL_CLUSTER_MIN_PIXELS sets another threshold (0: always a local cluster).
LOCAL_CLUSTER_MIN_PIXELS = 6000 * 6000
CONNECT_TIMEOUT_S = 5
WORKERS_TIMEOUT_S = 10
IN_PROCESS = ("in-process", "inprocess", "none")
LOCAL = "local"
INSTALL = 'python -m pip install "dask[distributed]"'
POLL_S = 0.05  # how often the client looks at its blocks and at the user's cancel
GPU = "GPU"  # the Dask resource a worker declares for its GPU: how many model batches it runs at once
GPU_BATCHES_AT_ONCE = 2  # a local GPU worker's: one batch is read while the other runs on the device
GPU_CHECK_S = 2.0  # how often a run on GPU workers checks that one is still there

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """A scheduler or worker that cannot run the extraction; the message says why and what to do."""


def names_another_machine(scheduler: str) -> bool:
    """Whether ``scheduler`` is a scheduler's address: its workers, not this machine, run the model."""
    choice = (scheduler or "").strip().lower()
    return bool(choice) and choice not in (*IN_PROCESS, LOCAL)


def executor_for(scheduler: str, pixels: int):
    """(the DaskExecutor for ``scheduler`` and a grid of ``pixels``, or None for this process; what to tell the
    user about where the run happens). ``scheduler``: "" (auto), "in-process", "local" or an address."""
    choice = (scheduler or "").strip()
    if choice.lower() in IN_PROCESS:
        return None, "in this process"
    installed = dependencies.is_installed("distributed")
    if not choice:
        threshold = int(os.environ.get("SPACENET_LOCAL_CLUSTER_MIN_PIXELS", LOCAL_CLUSTER_MIN_PIXELS))
        if pixels < threshold or (os.cpu_count() or 1) < 2:
            return None, "in this process"
        if not installed:
            return None, f"in this process (Dask would spread this extent over worker processes: {INSTALL})"
        return DaskExecutor(LOCAL), "on a local Dask cluster"
    if not installed:
        raise ClusterError(f"The scheduler {choice!r} needs Dask, which is not installed: {INSTALL}, or leave the "
                           "scheduler empty to run in this process.")
    if choice.lower() == LOCAL:
        return DaskExecutor(LOCAL), "on a local Dask cluster"
    return DaskExecutor(scheduler_address(choice)), f"on the Dask scheduler {scheduler_address(choice)}"


DEFAULT_SCHEDULER_PORT = 8786


def scheduler_address(text: str) -> str:
    """``text`` as a Dask address (``host:port`` gets ``tcp://``, a host alone Dask's scheduler port too);
    ClusterError when it is not one."""
    address = text if "://" in text else f"tcp://{text}"
    if not re.fullmatch(r"(tcp|tls|ws|wss|inproc|ucx)://[^\s/:]+(:\d+)?/?", address):
        raise ClusterError(f"{text!r} is not a Dask scheduler address: give one such as tcp://10.0.0.5:8786, "
                           "'local' for a cluster on this machine, or nothing to run in this process.")
    address = address.rstrip("/")
    if re.fullmatch(r"(tcp|tls|ws|wss)://[^:]+", address):
        address += f":{DEFAULT_SCHEDULER_PORT}"  # `dask scheduler`'s own default: Dask would refuse a bare host
    return address


@dataclass(frozen=True)
class DaskExecutor:
    address: str  # LOCAL or a scheduler address

    @contextmanager
    def run(self, task, prepared, options, request, report, is_canceled):
        """The extraction's blocks on the cluster; yields (the run, what it found) as extract's in-process
        runner does."""
        client = local_client() if self.address == LOCAL else connect(self.address)
        work = Path(tempfile.mkdtemp(prefix="spacenet-extract-", dir=request.work_dir))
        try:
            workers = checked_workers(client, request.raster_path, os.path.abspath(request.model_path))
            where = "a local Dask cluster" if self.address == LOCAL else f"the Dask scheduler {self.address}"
            report(0.0, f"Blocks run on {where}: {len(workers)} worker(s) ({', '.join(workers)})")
            placement = Placement.of(client, request.device)
            plan = block_plan(task, prepared, options, request, placement)
            if placement.gpu_workers:
                report(0.0, placement.describe())
                _check_gpu_workers(client, placement, plan, report)
            stitched = work / "probabilities.tif" if request.probability_path else None
            outputs, per_worker = _run_blocks(client, plan, prepared, stitched, placement, report, is_canceled)
            for worker, share in sorted(per_worker.items()):
                report(0.99, f"worker {worker}: {share}")
            devices = sorted({share.device for share in per_worker.values() if share.device})
            tiles_run = sum(share.tiles for share in per_worker.values())
            run = prepared.inferred(stitched, tiles_run, len(plan.tiles) - tiles_run,
                                    device=" and ".join(devices) or prepared.predictor.device_label,
                                    executor=f"Dask: {where}, {len(workers)} worker(s)")
            yield run, _found(plan, outputs)
        finally:
            if self.address != LOCAL:
                client.close()
            shutil.rmtree(work, ignore_errors=True)


def block_plan(task, prepared, options, request, placement: Placement) -> block_tasks.BlockPlan:
    tiles = prepared.tiles()
    # batches sized for the device that runs them: GPU workers take the requested batch, whatever this process has
    size = extract.gpu_batch_size(prepared.card, request.batch_size) if placement.gpu_workers else prepared.batch_size
    halo = buildings.HALO if task == "buildings" else roads.HALO
    return block_tasks.BlockPlan(
        task=task, info=prepared.info, model_path=os.path.abspath(request.model_path), device=request.device,
        cpu_threads=request.cpu_threads or 1, bands=prepared.bands, grid=prepared.grid, stretch=prepared.stretch,
        tiles=tuple(tiles), batches=tuple(tuple(range(first, min(first + size, len(tiles))))
                                          for first in range(0, len(tiles), size)),
        tile_size=prepared.tile_size, overlap=prepared.overlap, channels=tuple(output_channels(prepared.card)),
        margin_px=edge_px(prepared.grid),
        blocks=tuple(tiling.halo_blocks(prepared.grid.height, prepared.grid.width, request.block, halo)),
        options=options, keep_probability=bool(request.probability_path),
    )


@dataclass(frozen=True)
class Placement:
    """Which workers run what. Workers that declare the GPU resource (``dask worker --resources GPU=2``: how many
    model batches at once) run every model batch, so one CUDA session per GPU is fed without waiting; the other
    workers stitch and vectorise the blocks. With no GPU declared, or a run on the CPU, any task goes anywhere."""

    gpu_workers: tuple = ()
    cpu_workers: tuple = ()

    @classmethod
    def of(cls, client, device: str) -> Placement:
        if device == "cpu":
            return cls()
        gpu_workers = gpu_workers_of(client)
        if not gpu_workers:
            return cls()
        return cls(tuple(gpu_workers), tuple(sorted(set(client.nthreads()) - set(gpu_workers))))

    def batch(self) -> dict:
        """Dask's placement options for a model batch."""
        return {"resources": {GPU: 1}} if self.gpu_workers else {}

    def block(self) -> dict:
        """For a block task: on the CPU workers while there are any (loosely: if they all leave, anywhere)."""
        if self.gpu_workers and self.cpu_workers:
            return {"workers": list(self.cpu_workers), "allow_other_workers": True}
        return {}

    def describe(self) -> str:
        blocks = f"blocks on {len(self.cpu_workers)} other worker(s)" if self.cpu_workers else "blocks there too"
        return f"Model batches run on the worker(s) that declare a GPU ({', '.join(self.gpu_workers)}); {blocks}"


def gpu_workers_of(client) -> list:
    """The addresses of the workers that declare the GPU resource."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(address for address, facts in workers.items() if facts.get("resources", {}).get(GPU, 0) >= 1)


def _check_gpu_workers(client, placement: Placement, plan, report) -> None:
    """Each GPU worker loads the model as its batches will; one that cannot run it on a GPU is said, and with
    device "gpu" refused before any work."""
    answers = client.run(block_tasks.model_device, plan.model_path, plan.device, plan.cpu_threads,
                         workers=list(placement.gpu_workers))
    refused = {worker: why for worker, (device, why) in answers.items() if device is None}
    if refused:
        raise ClusterError("A worker that declares a GPU cannot run the model on one: " + "; ".join(
            f"{worker}: {why}" for worker, why in sorted(refused.items())))
    for worker, (device, why) in sorted(answers.items()):
        if why:
            report(0.0, f"worker {worker} declares a GPU, but the model runs on its {device}: {why}")


def _gpu_still_there(client, placement: Placement) -> None:
    """ClusterError when every worker declaring a GPU has left: the model batches would wait for one forever."""
    if not placement.gpu_workers or set(placement.gpu_workers) & set(client.nthreads()) or gpu_workers_of(client):
        return
    raise ClusterError(f"The worker(s) with a GPU left the cluster ({', '.join(placement.gpu_workers)}) and no "
                       f"other worker declares one: start one with `dask worker <scheduler> --resources {GPU}=2`, "
                       "or run on the CPU (device cpu).")


@dataclass
class WorkerShare:
    """What one worker did in a run."""

    device: str = ""  # what ran its model batches ("" when it ran none)
    tiles: int = 0
    seconds: float = 0.0  # of model batches
    blocks: int = 0

    def __str__(self) -> str:
        batches = f"{self.tiles} tile(s) on {self.device}, {self.seconds:.1f} s of model batches" if self.device \
            else "no model batch"
        return f"{batches}; {self.blocks} block(s) vectorised"


def _run_blocks(client, plan, prepared, stitched, placement, report, is_canceled) -> tuple:
    """Every block's output, in block order, and what each worker did (WorkerShare)."""
    try:
        shared = client.scatter(plan, broadcast=True, hash=False)
    except OSError as error:  # distributed's CommClosedError: a worker went away as the plan was sent
        raise ClusterError(f"A Dask worker left as the run started ({error}): run it again.") from None
    needs = [plan.batches_of(block) for block in plan.blocks]
    reporter, last_use = {}, {}  # the first block that needs a batch reports it; after the last, it is released
    for number, batches in enumerate(needs):
        for batch in batches:
            reporter.setdefault(batch, number)
            last_use[batch] = number
    window = 2 * max(1, sum(client.nthreads().values()))
    outputs = [None] * len(plan.blocks)
    batch_futures, in_flight, submitted, done = {}, {}, 0, 0
    gpu_checked = time.monotonic()
    per_worker = defaultdict(WorkerShare)
    writer = _ProbabilityWriter(stitched, prepared, len(plan.channels)) if stitched else None
    try:
        while done < len(plan.blocks):
            while submitted < len(plan.blocks) and len(in_flight) < window:
                for batch in needs[submitted]:
                    if batch not in batch_futures:
                        batch_futures[batch] = client.submit(block_tasks.infer_batch, shared, batch, pure=False,
                                                             **placement.batch())
                reported = tuple(b for b in needs[submitted] if reporter[b] == submitted)
                in_flight[submitted] = client.submit(
                    block_tasks.vectorise_block, shared, submitted, tuple(needs[submitted]), reported,
                    *[batch_futures[b] for b in needs[submitted]], pure=False, **placement.block())
                # a batch no later block needs is released here: Dask keeps it until its blocks are done
                for batch in needs[submitted]:
                    if last_use[batch] == submitted:
                        del batch_futures[batch]
                submitted += 1
            finished = [n for n, future in in_flight.items() if future.done()]
            if is_canceled and is_canceled():
                raise Canceled("extraction canceled")  # the finally below takes the cluster's work back
            if not finished:
                time.sleep(POLL_S)
                if time.monotonic() - gpu_checked > GPU_CHECK_S:
                    _gpu_still_there(client, placement)
                    gpu_checked = time.monotonic()
            for number in finished:
                output = in_flight.pop(number).result()  # a task's error is raised here, as in this process
                for device, worker, run, _skipped, seconds in output.batches:
                    share = per_worker[worker]
                    share.device, share.tiles, share.seconds = device, share.tiles + run, share.seconds + seconds
                per_worker[output.worker].blocks += 1
                if writer:
                    writer.write(plan.blocks[number], output.probability)
                    output.probability = None
                outputs[number] = output
                done += 1
                report(0.99 * done / len(plan.blocks), None)
        if writer:
            writer.close()
    finally:
        client.cancel([*in_flight.values(), *batch_futures.values()], force=True)
    return outputs, dict(per_worker)


def _found(plan, outputs) -> dict:
    """What the blocks found, joined across their borders in block order: the fields of an Extraction."""
    from .extract import footprint_keeper

    grid = plan.grid
    if plan.task == "buildings":
        whole = [footprint for output in outputs for footprint in output.footprints]
        pieces = [(number, piece) for number, output in enumerate(outputs) for piece in output.pieces]
        return {"footprints": whole + buildings.joined_pieces(pieces, footprint_keeper(plan.options, grid))}
    rows, cols, near = (np.concatenate([np.zeros(0, dtype)] + [output.skeleton[i] for output in outputs])
                        for i, dtype in enumerate((np.int32, np.int32, bool)))
    pixel_m = float(np.sqrt(grid.pixel_area_m2))
    network = roads.network_from_skeleton(rows, cols, grid.width, plan.options, pixel_m, near_nodata=near)
    return {"network": roads.network_on_map(network, grid.transform)}


class _ProbabilityWriter:
    """The blocks' stitched probabilities into the temporary uint8 GeoTIFF the probability output is made from."""

    def __init__(self, path, prepared, channels):
        from .extract import stitched_profile

        self._dataset = rasterio.open(path, "w", **stitched_profile(prepared, channels))

    def write(self, block, values) -> None:
        (r0, r1), (c0, c1) = block.rows, block.cols
        self._dataset.write(values, window=rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0))

    def close(self) -> None:
        self._dataset.close()


# --- clients ------------------------------------------------------------------------------------------------------

_LOCAL = None
_LOCAL_LOCK = threading.Lock()


def local_client():
    """A client of this session's local cluster (local_workers), started on first use and kept for the next runs
    (Dask closes it when Python exits; the plugin when it unloads)."""
    global _LOCAL
    with _LOCAL_LOCK:
        if _LOCAL is not None and _LOCAL.status == "running":
            return _LOCAL
        gpus = gpu.nvidia_gpu_count() if runtime.gpu_may_run() else 0
        _LOCAL = start_local(local_workers(os.cpu_count() or 1, gpus))
        return _LOCAL


def local_workers(cores: int, gpus: int) -> dict:
    """The local cluster's Dask worker specs: one worker process per GPU, seeing only its own GPU and running
    GPU_BATCHES_AT_ONCE model batches at once, then one single-threaded worker per core left (at least one)."""
    from distributed import Nanny

    def worker(threads: int, **options) -> dict:
        return {"cls": Nanny, "options": {"nthreads": threads, "host": "127.0.0.1", "silence_logs": logging.ERROR,
                                          **options}}

    specs = {f"gpu-{index}": worker(GPU_BATCHES_AT_ONCE, resources={GPU: GPU_BATCHES_AT_ONCE},
                                    env={"CUDA_VISIBLE_DEVICES": str(index)}) for index in range(gpus)}
    cpu_workers = max(1, cores - GPU_BATCHES_AT_ONCE * gpus)
    specs.update({f"cpu-{index}": worker(1) for index in range(cpu_workers)})
    return specs


def start_local(workers: dict):
    """A client of a new cluster of ``workers`` (local_workers) on this machine, with a scheduler on loopback."""
    from distributed import Client, Scheduler, SpecCluster

    _use_a_python_for_workers()
    cluster = SpecCluster(workers=workers, silence_logs=logging.ERROR,
                          # no dashboard; its HTTP server (health, metrics) on a free loopback port, not on 8787
                          scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False,
                                                                   "dashboard_address": "127.0.0.1:0"}})
    return Client(cluster, set_as_default=False)


def close_local() -> None:
    """Stop the local cluster, if one runs (plugin unload, Python exit)."""
    global _LOCAL
    with _LOCAL_LOCK:
        if _LOCAL is not None:
            cluster = _LOCAL.cluster
            _LOCAL.close()
            if cluster is not None:
                cluster.close()
            _LOCAL = None


def connect(address: str):
    """A client of the scheduler at ``address`` with at least one worker; ClusterError within seconds when the
    scheduler does not answer or has no worker."""
    from distributed import Client
    from distributed.comm import get_address_host_port

    logging.getLogger("distributed").setLevel(logging.ERROR)
    try:  # before a Client exists: one given a malformed address lingers, and stalls the exit closing itself
        get_address_host_port(address)
    except ValueError as error:  # no port, an unknown protocol: Dask's parser says which
        raise ClusterError(f"'{address}' is not a Dask scheduler address ({error}): give one such as "
                           "tcp://10.0.0.5:8786, 'local' or 'in-process', or leave it empty.") from None
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"No Dask scheduler answers at {address} within {CONNECT_TIMEOUT_S} s ({error}): check the "
                           "address and that `dask scheduler` runs there, or leave the scheduler empty to run in "
                           "this process.") from None
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError(f"The Dask scheduler at {address} has no worker: start some with `dask worker {address}` "
                           "(with the plugin on their PYTHONPATH).") from None
    return client


def checked_workers(client, raster_path: str, model_path: str) -> list:
    """The workers' addresses; ClusterError naming each worker that cannot run the tasks, and why."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(worker_check)  # the check runs even where the plugin is missing
    answers = client.run(worker_check.check, str(raster_path), str(model_path), block_tasks.PROTOCOL)
    refused = {worker: why for worker, why in answers.items() if why}
    if refused:
        raise ClusterError("Not every Dask worker can run this extraction: " + "; ".join(
            f"{worker}: {why}" for worker, why in sorted(refused.items())) + ".")
    return sorted(answers)


def _use_a_python_for_workers() -> None:
    """Worker processes start this Python's interpreter (core.python_interpreter: not always sys.executable)."""
    import multiprocessing

    try:
        multiprocessing.set_executable(this_python())
    except FileNotFoundError:
        raise ClusterError(f"No Python interpreter found for Dask's worker processes in {sys.exec_prefix}: name a "
                           "running scheduler instead, or leave the scheduler empty to run in this process.") from None
