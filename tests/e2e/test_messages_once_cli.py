"""Every message once from the command line (issue 19).

An error raised while an algorithm runs reached qgis_process's console three times: QGIS logs it when it catches
the exception and again when the feedback reports it, qgis_process echoes both log entries, and its console
feedback prints it as "ERROR:<tab>...". With --json the feedback prints nothing and the two echoes were left. Now
the sentence is printed once in either mode; a warning is printed once too. A failed fetch leaves no empty folder.
"""

import socket

import numpy as np
import pytest
import rasterio
from affine import Affine

pytestmark = pytest.mark.e2e


@pytest.fixture
def refusing_endpoint():
    """An address on loopback where nothing listens: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/spacenet-dataset"


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["text", "json"])
def test_a_run_time_error_is_printed_once(qgis_process, refusing_endpoint, tmp_path, mode):
    work = tmp_path / "work"
    work.mkdir()
    output = work / "new" / "tiles"  # neither folder is there: the run makes both, and must take them back
    completed = qgis_process(*mode, "run", "spacenet:fetchtiles", "--DATASET=SN2_buildings", "--AOI=AOI_2_Vegas",
                             "--SPLIT=train", "--PRODUCTS=PS-RGB", f"--ENDPOINT={refusing_endpoint}", "--TIMEOUT=2",
                             "--LOAD_OUTPUTS=false", f"--OUTPUT_FOLDER={output}")
    text = completed.stdout + completed.stderr
    message = f"Cannot reach {refusing_endpoint}: connection refused."
    assert completed.returncode != 0, text
    assert text.count(message) == 1, text
    assert "Traceback" not in text, text
    if not mode:
        assert f"ERROR:\t{message}" in completed.stderr, text  # qgis_process's own mark of an error
    assert list(work.iterdir()) == [], text  # no empty folder of the run's own left behind


def test_a_failed_fetch_keeps_a_folder_that_was_there(qgis_process, refusing_endpoint, tmp_path):
    output = tmp_path / "tiles"
    (output / "mine").mkdir(parents=True)
    completed = qgis_process("run", "spacenet:fetchtiles", "--PRODUCTS=PS-RGB", f"--ENDPOINT={refusing_endpoint}",
                             "--LOAD_OUTPUTS=false", f"--OUTPUT_FOLDER={output}")
    assert completed.returncode != 0, completed.stdout + completed.stderr
    assert [path.name for path in output.iterdir()] == ["mine"]


def test_a_warning_is_printed_once(qgis_process, tmp_path):
    image = tmp_path / "blank.tif"
    with rasterio.open(image, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint16",
                       crs="EPSG:32616", transform=Affine(0.3, 0, 740_000, 0, -0.3, 3_740_000), nodata=65535) as out:
        out.write(np.full((3, 256, 256), 65535, "uint16"))
    completed = qgis_process("run", "spacenet:extractbuildings", f"--INPUT={image}", "--DEVICE=cpu",
                             f"--OUTPUT={tmp_path / 'found.gpkg'}")
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert text.count("The raster holds no data in the extent") == 1, text
    assert "WARNING:\tThe raster holds no data in the extent" in text, text
    assert "Traceback" not in text, text
