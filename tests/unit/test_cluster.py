"""Extraction on Dask (issue 20): a local cluster and a real `dask scheduler` with `dask worker` processes on
loopback give the in-process result exactly; a worker killed mid-run changes nothing; an unreachable scheduler, a
worker that cannot read the raster and a cancel each give their documented answer."""

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


def test_a_named_scheduler_with_two_workers_gives_the_in_process_result(small_blocks, in_process, dask_cluster):
    dask_cluster.add_worker()
    dask_cluster.add_worker()
    found = extract_buildings(ExtractRequest(**small_blocks, scheduler=dask_cluster.address))
    assert_same_footprints(in_process, found)
    assert found.settings["executor"] == f"Dask: the Dask scheduler {dask_cluster.address}, 2 worker(s)"


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
    with pytest.raises(cluster.ClusterError, match="is not a Dask scheduler address: give one such as tcp://"):
        cluster.executor_for("http://10.0.0.5:8786", small)
    monkeypatch.setattr(dependencies, "is_installed", lambda module: module != "distributed")
    assert cluster.executor_for("", large) == (
        None, 'in this process (Dask would spread this extent over worker processes: python -m pip install '
              '"dask[distributed]")')
    with pytest.raises(cluster.ClusterError, match=r"'local' needs Dask, which is not installed: python -m pip "
                                                   r"install \"dask\[distributed\]\""):
        cluster.executor_for("local", small)
