"""Empty inputs from the command line: a raster without data to extract from, proposals without features to score.

Each is an empty, valid result with a warning and exit code 0, so that a batch over fetched tiles goes on past a
blank one; never a traceback, never GDAL's raw "ERROR 1" (QGIS's statistics of a blank raster, issue 19).
"""

import json

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from rasterio.transform import from_origin

pytestmark = pytest.mark.e2e

NO_DATA_WARNING = "The raster holds no data in the extent"
SIZE = 512


def write_raster(path, fill, count, dtype, nodata):
    """A 0.3 m UTM GeoTIFF whose every pixel is ``fill``."""
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=count, dtype=dtype, crs="EPSG:32616",
                   transform=from_origin(740_000, 3_740_000, 0.3, 0.3), nodata=nodata)
    with rasterio.open(path, "w", **profile) as out:
        out.write(np.full((count, SIZE, SIZE), fill, dtype))
    return path


RASTERS = {
    # a fetched 11-bit tile where the scene does not reach: every pixel is the declared nodata value
    "declared_nodata": dict(fill=65535, count=3, dtype="uint16", nodata=65535),
    # a mosaic's blank: 0 in every band, no nodata declared (the engine takes it as nodata, RasterInfo.zero_is_nodata)
    "zeros_without_nodata": dict(fill=0, count=3, dtype="uint8", nodata=None),
}


def run_json(qgis_process, *args) -> dict:
    """The run's JSON (results and log) after the checks every case shares."""
    completed = qgis_process("--json", "run", *args)
    printed = completed.stdout + completed.stderr
    assert completed.returncode == 0, printed
    assert "Traceback" not in printed and "ERROR 1" not in printed, printed
    return json.loads(completed.stdout[completed.stdout.index("{"):])


def feature_count(path, layer=0) -> int:
    dataset = ogr.Open(str(path))  # held: its layers die with it
    assert dataset is not None, path
    return dataset.GetLayer(layer).GetFeatureCount()


@pytest.mark.parametrize("raster", sorted(RASTERS))
@pytest.mark.parametrize(("algorithm", "count_output"), [("extractbuildings", "BUILDING_COUNT"),
                                                         ("extractroads", "ROAD_COUNT")])
def test_a_raster_without_data_gives_empty_outputs_and_a_warning(qgis_process, tmp_path, raster, algorithm,
                                                                 count_output):
    image = write_raster(tmp_path / f"{raster}.tif", **RASTERS[raster])
    found, probability = tmp_path / "found.gpkg", tmp_path / "probability.tif"
    extra = [f"--OUTPUT_NODES={tmp_path / 'nodes.gpkg'}"] if algorithm == "extractroads" else []
    run = run_json(qgis_process, f"spacenet:{algorithm}", f"--INPUT={image}", "--DEVICE=cpu",
                   f"--OUTPUT={found}", f"--OUTPUT_PROBABILITY={probability}", *extra)

    assert any(NO_DATA_WARNING in warning for warning in run["log"].get("warning", [])), run["log"]
    assert run["results"][count_output] == 0
    assert feature_count(found) == 0
    if extra:
        assert feature_count(tmp_path / "nodes.gpkg") == 0
    with rasterio.open(probability) as src:  # a valid raster on the model's grid: nothing found anywhere
        assert src.crs.to_epsg() == 32616 and src.dtypes[0] == "float32"
        assert (src.width, src.height) == (SIZE, SIZE) and not src.read().any()
    assert not list(tmp_path.glob(".*partial"))


def empty_feature_collection(path):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    return path


def test_empty_geojson_proposals_score_f1_zero_with_a_warning(qgis_process, repo_root, tmp_path):
    truth = repo_root / "sample_data" / "sn4_atlanta_buildings.geojson"
    scored = tmp_path / "scored.gpkg"
    run = run_json(qgis_process, "spacenet:scoref1", f"--TRUTH={truth}",
                   f"--PROPOSALS={empty_feature_collection(tmp_path / 'proposals.geojson')}", f"--OUTPUT={scored}")

    assert "PROPOSALS has no features: every truth polygon is a false negative." in run["log"]["warning"]
    truth_count = feature_count(truth)
    results = run["results"]
    assert (results["TP"], results["FP"], results["FN"], results["F1"]) == (0, 0, truth_count, 0)
    assert feature_count(scored) == truth_count  # every truth polygon, marked FN


def test_empty_geojson_proposals_against_a_challenge_csv(qgis_process, repo_root, tmp_path):
    """An empty input takes the other's kind: here an empty challenge CSV, so every labelled building is an FN."""
    import shapely

    from spacenet_toolkit.core.score import challenge_csv

    truth = repo_root / "sample_data" / "SN2_sample_truth.csv"
    run = run_json(qgis_process, "spacenet:scoref1", f"--TRUTH={truth}",
                   f"--PROPOSALS={empty_feature_collection(tmp_path / 'proposals.geojson')}",
                   f"--OUTPUT={tmp_path / 'scored.gpkg'}")

    assert "PROPOSALS has no features: every truth polygon is a false negative." in run["log"]["warning"]
    # the truth's buildings: its POLYGON EMPTY rows (images without buildings) are none
    buildings = int((~shapely.is_empty(challenge_csv.read_challenge_csv(truth).geometries)).sum())
    results = run["results"]
    assert (results["TP"], results["FP"], results["FN"], results["F1"]) == (0, 0, buildings, 0)
