"""Extraction on Dask through qgis_process (issue 20): pointed at a running scheduler with two workers, from the
defaults on a large extent (a local cluster), at an address where nothing answers, and a GPU run on a worker that
declares a GPU it cannot use."""

import json
import socket

import pytest
import shapely
from dask_cluster import DaskCluster
from osgeo import ogr

from spacenet_toolkit.core import dependencies

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not dependencies.is_installed("distributed"), reason="make setup installs Dask")]


def extract(qgis_process, raster, output, *extra):
    return qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={raster}",
                        "--MODEL=buildings_unet_small", "--DEVICE=cpu", f"--OUTPUT={output}", *extra)


def footprints(path) -> list:
    dataset = ogr.Open(str(path))  # kept referenced while its layer is read
    return [(bytes(f.GetGeometryRef().ExportToWkb()), f.GetField("score")) for f in dataset.GetLayer(0)]


def log_of(completed) -> str:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return "\n".join(json.loads(completed.stdout[completed.stdout.index("{"):])["log"]["info"])


def test_a_running_scheduler_and_the_defaults_give_the_in_process_footprints(qgis_process, repo_root, tmp_path):
    raster = repo_root / "sample_data" / "sn3_vegas_rgb_bottom_half.tif"
    here, there, local = (tmp_path / f"{name}.gpkg" for name in ("here", "there", "local"))
    log_of(extract(qgis_process, raster, here, "--SCHEDULER=in-process"))
    started = DaskCluster(tmp_path)
    try:
        started.add_worker()
        started.add_worker()
        log = log_of(extract(qgis_process, raster, there, f"--SCHEDULER={started.address}"))
    finally:
        started.stop()
    assert f"Blocks run on the Dask scheduler {started.address}: 2 worker(s)" in log
    # the dialog's defaults: no scheduler named, an extent at least as large as the local-cluster threshold
    qgis_process.env["SPACENET_LOCAL_CLUSTER_MIN_PIXELS"] = "0"
    log = log_of(extract(qgis_process, raster, local))
    assert "Blocks run on a local Dask cluster:" in log
    expected = footprints(here)
    assert len(expected) > 10
    for found in (footprints(there), footprints(local)):
        assert len(found) == len(expected)
        assert all(shapely.equals_exact(shapely.from_wkb(a), shapely.from_wkb(b), 0) and sa == sb
                   for (a, sa), (b, sb) in zip(expected, found))


def test_an_unreachable_scheduler_fails_in_one_sentence_and_writes_nothing(qgis_process, repo_root, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = tmp_path / "footprints.gpkg"
    completed = extract(qgis_process, repo_root / "sample_data" / "sn4_atlanta_pan.tif", output,
                        f"--SCHEDULER=127.0.0.1:{port}")
    said = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert said.count(f"No Dask scheduler answers at tcp://127.0.0.1:{port} within 5 s") == 1
    assert "Traceback" not in said
    assert not output.exists() and list(tmp_path.iterdir()) == [tmp_path / "profile0"]


def test_a_gpu_run_on_workers_that_cannot_use_their_gpu_fails_in_one_sentence(qgis_process, repo_root, tmp_path):
    """DEVICE=gpu on a scheduler whose GPU worker has only the CPU onnxruntime: this machine has no GPU either, yet
    the run gets as far as asking the workers (they, not this machine, would run the model), and one sentence says
    which worker cannot, before any work."""
    output = tmp_path / "footprints.gpkg"
    started = DaskCluster(tmp_path)
    try:
        started.add_worker()
        started.add_worker(resources="GPU=1")
        completed = qgis_process("--json", "run", "spacenet:extractbuildings",
                                 f"--INPUT={repo_root / 'sample_data' / 'sn4_atlanta_pan.tif'}",
                                 "--MODEL=buildings_unet_small", "--DEVICE=gpu", f"--SCHEDULER={started.address}",
                                 f"--OUTPUT={output}")
    finally:
        started.stop()
    said = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert said.count("A worker that declares a GPU cannot run the model on one: tcp://127.0.0.1:") == 1, said
    assert "Traceback" not in said and not output.exists()
