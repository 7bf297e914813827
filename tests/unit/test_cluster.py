"""Extraction on Dask (issue 20): a local cluster and a real `dask scheduler` with `dask worker` processes on
loopback give the in-process result exactly; a worker killed mid-run changes nothing; an unreachable scheduler, a
worker that cannot read the raster and a cancel each give their documented answer; model batches go to the workers
that declare a GPU."""

import os
import re
import socket
import threading
import time

import numpy as np
import pytest
import rasterio
import shapely
from dask_cluster import DaskCluster

from spacenet_toolkit.core import dependencies
from spacenet_toolkit.core.extract import cluster
from spacenet_toolkit.core.extract.extract import ExtractRequest, RoadRequest, extract_buildings, extract_roads
from spacenet_toolkit.core.extract.runtime import RuntimeUnavailableError
from spacenet_toolkit.core.progress import Canceled

pytestmark = pytest.mark.skipif(not dependencies.is_installed("distributed"), reason="make setup installs Dask")

VEGAS = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"


@pytest.fixture(scope="module", autouse=True)
def local_cluster_closed_after_the_module():
    """The session's local cluster ends with this module: its threads and worker processes must not outlive the
    QGIS application the other tiers tear down at exit."""
    yield
    cluster.close_local()


@pytest.fixture(scope="module")
def small_blocks(fixtures, repo_root):
    """A run of many tiles and blocks on a real tile: 256 px tiles, 512 px blocks."""
    return dict(raster_path=str(fixtures / VEGAS), model_path=str(repo_root / "models" / "buildings_unet_small.onnx"),
                tile_size=256, block=512, device="cpu")


@pytest.fixture(scope="module")
def in_process_probability(tmp_path_factory):
    return tmp_path_factory.mktemp("in-process") / "probability.tif"


@pytest.fixture(scope="module")
def in_process(small_blocks, in_process_probability):
    return extract_buildings(ExtractRequest(**small_blocks, scheduler="in-process",
                                            probability_path=str(in_process_probability)))


@pytest.fixture
def dask_cluster(tmp_path):
    started = DaskCluster(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def free_port():
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_same_footprints(expected, found):
    assert len(found.footprints) == len(expected.footprints) > 10
    for a, b in zip(expected.footprints, found.footprints):
        assert shapely.equals_exact(a.geometry, b.geometry, 0) and a.score == b.score and a.area_m2 == b.area_m2


def test_a_local_cluster_gives_the_in_process_result(small_blocks, in_process, in_process_probability, tmp_path):
    messages = []
    probability = tmp_path / "probability.tif"
    found = extract_buildings(ExtractRequest(**small_blocks, scheduler="local", probability_path=str(probability)),
                              report=lambda fraction, message=None: messages.append(message))
    assert_same_footprints(in_process, found)
    assert (found.tiles_run, found.tiles_skipped) == (in_process.tiles_run, in_process.tiles_skipped)
    with rasterio.open(probability) as ours, rasterio.open(in_process_probability) as theirs:
        assert np.array_equal(ours.read(), theirs.read()) and ours.tags() == theirs.tags()
    assert found.settings["executor"].startswith("Dask: a local Dask cluster")
    # the log names the executor, the workers and each one's device
    assert any(m and m.startswith("Blocks run on a local Dask cluster: ") for m in messages)
    assert sum(bool(m and m.startswith("worker tcp://127.0.0.1:") and " on CPU" in m) for m in messages) >= 1


def test_roads_on_a_local_cluster_are_the_in_process_network(fixtures, repo_root):
    request = dict(raster_path=str(fixtures / VEGAS), model_path=str(repo_root / "models" / "roads_effnet_lite0.onnx"),
                   tile_size=256, block=512, device="cpu")
    here = extract_roads(RoadRequest(**request, scheduler="in-process")).network
    there = extract_roads(RoadRequest(**request, scheduler="local")).network
    assert len(there.edges) == len(here.edges) > 10
    assert all(shapely.equals_exact(a.geometry, b.geometry, 0) and (a.start, a.end, a.length_m) ==
               (b.start, b.end, b.length_m) for a, b in zip(here.edges, there.edges))
    assert here.nodes == there.nodes


def test_a_named_scheduler_with_two_workers_gives_the_in_process_result(small_blocks, in_process, dask_cluster,
                                                                        tmp_path):
    dask_cluster.add_worker()
    dask_cluster.add_worker()
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    found = extract_buildings(ExtractRequest(**small_blocks, scheduler=dask_cluster.address, work_dir=str(work_dir)))
    assert_same_footprints(in_process, found)
    assert found.settings["executor"] == f"Dask: the Dask scheduler {dask_cluster.address}, 2 worker(s)"
    assert list(work_dir.iterdir()) == []  # the run's temporary folder is gone


def worker_shares(messages) -> dict:
    """worker address -> what the log says it did."""
    return dict(match.groups() for match in (re.fullmatch(r"worker (tcp://\S+): (.*)", m or "") for m in messages)
                if match)


def declared_gpu_workers(messages) -> list:
    """The GPU workers the log names."""
    said = [m for m in messages if m and m.startswith("Model batches run on the worker(s) that declare a GPU (")]
    assert len(said) == 1, messages
    return re.findall(r"tcp://[\d.]+:\d+", said[0].split(";")[0])


def test_model_batches_run_on_the_worker_that_declares_a_gpu(small_blocks, in_process, dask_cluster):
    """A user's GPU worker (`dask worker --resources GPU=2`) beside CPU workers: every model batch runs there, the
    blocks elsewhere (Dask's work stealing may hand the GPU worker a block while it has no batch to run). This
    machine has no GPU, so that worker runs its batches on the CPU: the placement is tested."""
    dask_cluster.add_worker()
    dask_cluster.add_worker()
    dask_cluster.add_worker(threads=2, resources="GPU=2")
    messages = []
    found = extract_buildings(ExtractRequest(**{**small_blocks, "device": "auto"}, scheduler=dask_cluster.address),
                              report=lambda fraction, message=None: messages.append(message))
    assert_same_footprints(in_process, found)
    [gpu_worker] = declared_gpu_workers(messages)
    assert f"worker {gpu_worker} declares a GPU, but the model runs on its CPU: the installed onnxruntime is the " \
           "CPU build (no CUDA provider); install onnxruntime-gpu (and remove onnxruntime) to use an NVIDIA GPU" \
           in messages
    shares = worker_shares(messages)
    gpu_share = re.fullmatch(rf"{found.tiles_run} tile\(s\) on CPU, [\d.]+ s of model batches; (\d+) block\(s\) "
                             "vectorised", shares.pop(gpu_worker))
    assert gpu_share, shares
    blocks = [int(re.fullmatch(r"no model batch; (\d+) block\(s\) vectorised", share)[1]) for share in shares.values()]
    assert sum(blocks) > 2 and sum(blocks) > int(gpu_share[1]), shares  # on one or both CPU workers, as Dask sees fit


def test_a_run_whose_gpu_worker_leaves_says_so_within_seconds(small_blocks, dask_cluster):
    dask_cluster.add_worker()
    gpu_worker = dask_cluster.add_worker(resources="GPU=1")

    def kill_at_first_block(fraction, message=None):
        if fraction > 0 and gpu_worker.poll() is None:
            gpu_worker.kill()  # at the first block done: the later blocks' batches wait for a GPU worker

    started = time.monotonic()
    with pytest.raises(cluster.ClusterError, match=r"The worker\(s\) with a GPU left the cluster \(tcp://.*\) and "
                                                   r"no other worker declares one: start one with `dask worker"):
        extract_buildings(ExtractRequest(**{**small_blocks, "device": "auto"}, scheduler=dask_cluster.address),
                          report=kill_at_first_block)
    assert time.monotonic() - started < 30


def test_a_gpu_run_on_a_worker_whose_gpu_cannot_run_the_model_is_refused_before_any_work(small_blocks, dask_cluster):
    dask_cluster.add_worker()
    dask_cluster.add_worker(resources="GPU=1")
    fractions = []
    with pytest.raises(cluster.ClusterError, match=r"A worker that declares a GPU cannot run the model on one: "
                                                   r"tcp://127\.0\.0\.1:\d+: A GPU was requested but cannot be used: "
                                                   r"the installed onnxruntime is the CPU build"):
        extract_buildings(ExtractRequest(**{**small_blocks, "device": "gpu"}, scheduler=dask_cluster.address),
                          report=lambda fraction, message=None: fractions.append(fraction))
    assert max(fractions) == 0  # not one block
    with pytest.raises(RuntimeUnavailableError):  # where this machine would run the model, it says so itself
        extract_buildings(ExtractRequest(**{**small_blocks, "device": "gpu"}, scheduler="local"))


def test_a_run_on_the_cpu_ignores_declared_gpus(small_blocks, in_process, dask_cluster):
    dask_cluster.add_worker()
    dask_cluster.add_worker(resources="GPU=1")
    messages = []
    found = extract_buildings(ExtractRequest(**small_blocks, scheduler=dask_cluster.address),
                              report=lambda fraction, message=None: messages.append(message))
    assert_same_footprints(in_process, found)
    assert not any(m and m.startswith("Model batches run on") for m in messages)


def test_the_local_cluster_gives_each_gpu_a_worker_of_its_own():
    specs = cluster.local_workers(cores=16, gpus=2)
    options = {name: spec["options"] for name, spec in specs.items()}
    assert [name for name in options if name.startswith("gpu-")] == ["gpu-0", "gpu-1"]
    assert [options[f"gpu-{i}"]["env"] for i in range(2)] == [{"CUDA_VISIBLE_DEVICES": "0"},
                                                              {"CUDA_VISIBLE_DEVICES": "1"}]
    assert all(options[f"gpu-{i}"]["resources"] == {"GPU": 2} and options[f"gpu-{i}"]["nthreads"] == 2
               for i in range(2))
    cpu = [o for name, o in options.items() if name.startswith("cpu-")]
    assert len(cpu) == 12 and all(o["nthreads"] == 1 and "resources" not in o for o in cpu)
    assert list(cluster.local_workers(cores=2, gpus=0)) == ["cpu-0", "cpu-1"]
    assert list(cluster.local_workers(cores=2, gpus=1)) == ["gpu-0", "cpu-0"]  # at least one CPU worker

    client = cluster.start_local(cluster.local_workers(cores=2, gpus=1))  # started for real, though no GPU is here
    try:
        [gpu_worker] = cluster.gpu_workers_of(client)
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert seen.pop(gpu_worker) == "0" and list(seen.values()) == [None]
        placement = cluster.Placement.of(client, "auto")
        assert placement.gpu_workers == (gpu_worker,) and placement.cpu_workers == tuple(seen)
        assert cluster.Placement.of(client, "cpu") == cluster.Placement()
    finally:
        client.cluster.close()
        client.close()


def test_a_worker_killed_mid_run_changes_nothing(small_blocks, in_process, dask_cluster):
    dask_cluster.add_worker()
    doomed = dask_cluster.add_worker()

    def kill_once(fraction, message=None):
        if 0 < fraction < 0.5 and doomed.poll() is None:
            doomed.kill()  # as a machine that goes away: no goodbye to the scheduler

    found = extract_buildings(ExtractRequest(**small_blocks, scheduler=dask_cluster.address), report=kill_once)
    assert doomed.poll() is not None, "the worker was never killed: the run finished before any block"
    assert_same_footprints(in_process, found)


def test_an_unreachable_scheduler_is_said_within_seconds(small_blocks, free_port):
    address = f"tcp://127.0.0.1:{free_port}"
    started = time.monotonic()
    with pytest.raises(cluster.ClusterError, match=rf"No Dask scheduler answers at {address} within 5 s"):
        extract_buildings(ExtractRequest(**small_blocks, scheduler=address))
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:notaport", "tcp://[::1", "tcp://"])
def test_a_malformed_address_is_said_at_once(address):
    """Dask's ValueError came out as a traceback, and the half-made client stalled the exit by 10 s."""
    started = time.monotonic()
    with pytest.raises(cluster.ClusterError, match=f"'{re.escape(address)}' is not a Dask scheduler address"):
        cluster.connect(address)
    assert time.monotonic() - started < 2


def test_a_worker_that_cannot_read_the_raster_is_named_before_any_work(small_blocks, dask_cluster):
    dask_cluster.add_worker()
    blind = dask_cluster.add_worker(env={"GDAL_SKIP": "GTiff"})  # a worker whose GDAL lacks the format
    assert blind.poll() is None
    with pytest.raises(cluster.ClusterError, match=r"Not every Dask worker can run this extraction: tcp://127\.0\.0\."
                                                   r"1:\d+: it cannot read the raster .*RGB-PanSharpen_AOI_2_Vegas"):
        extract_buildings(ExtractRequest(**small_blocks, scheduler=dask_cluster.address))


def test_cancel_stops_the_cluster_and_writes_nothing(small_blocks, tmp_path):
    probability = tmp_path / "probability.tif"
    canceled = threading.Event()

    def cancel_at_first_block(fraction, message=None):
        if fraction > 0:
            canceled.set()

    with pytest.raises(Canceled):
        extract_buildings(ExtractRequest(**small_blocks, scheduler="local", probability_path=str(probability),
                                         work_dir=str(tmp_path)),
                          report=cancel_at_first_block, is_canceled=canceled.is_set)
    assert list(tmp_path.iterdir()) == []  # neither the probability raster nor the run's temporary folder


def test_where_a_run_happens(monkeypatch):
    monkeypatch.delenv("SPACENET_LOCAL_CLUSTER_MIN_PIXELS", raising=False)
    small, large = 1000 * 1000, 20_000 * 20_000
    assert cluster.executor_for("", small) == (None, "in this process")
    assert cluster.executor_for("in-process", large) == (None, "in this process")
    executor, where = cluster.executor_for("", large)
    assert executor.address == cluster.LOCAL and where == "on a local Dask cluster"
    assert cluster.executor_for("10.0.0.5:8786", small)[0].address == "tcp://10.0.0.5:8786"
    assert cluster.executor_for("10.0.0.5", small)[0].address == "tcp://10.0.0.5:8786"  # Dask's port
    assert cluster.executor_for("tls://scheduler.lan/", small)[0].address == "tls://scheduler.lan:8786"
    # only another machine's workers may have the GPU this process lacks
    assert [cluster.names_another_machine(s) for s in ("", " in-process", "LOCAL", "10.0.0.5:8786")] == [
        False, False, False, True]
    with pytest.raises(cluster.ClusterError, match="is not a Dask scheduler address: give one such as tcp://"):
        cluster.executor_for("http://10.0.0.5:8786", small)
    monkeypatch.setattr(dependencies, "is_installed", lambda module: module != "distributed")
    assert cluster.executor_for("", large) == (
        None, 'in this process (Dask would spread this extent over worker processes: python -m pip install '
              '"dask[distributed]")')
    with pytest.raises(cluster.ClusterError, match=r"'local' needs Dask, which is not installed: python -m pip "
                                                   r"install \"dask\[distributed\]\""):
        cluster.executor_for("local", small)
