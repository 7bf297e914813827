"""spacenet:extractroads and spacenet:scoreapls from the command line: the shipped roads model on the real
SpaceNet 3 Vegas RGB tile, scored against its labels."""

import json
import re

import pytest
from osgeo import ogr

pytestmark = pytest.mark.e2e

VEGAS = "spacenet/sn3_vegas_rgb_roads"


def results_of(completed) -> dict:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def test_the_shipped_roads_model_extracted_and_scored(qgis_process_factory, plugin_path, fixtures, tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    roads, nodes = tmp_path / "roads.gpkg", tmp_path / "nodes.gpkg"
    extracted = results_of(qgis_process(
        "--json", "run", "spacenet:extractroads", f"--INPUT={fixtures / VEGAS / 'RGB-PanSharpen_AOI_2_Vegas_img0.tif'}",
        "--MODEL=roads_effnet_lite0", f"--OUTPUT={roads}", f"--OUTPUT_NODES={nodes}",
    ))
    assert extracted["MODEL_NAME"] == "roads_effnet_lite0" and extracted["ROAD_COUNT"] > 5
    dataset = ogr.Open(str(roads))  # held: its layers die with it
    layer = dataset.GetLayer(0)
    assert layer.GetFeatureCount() == extracted["ROAD_COUNT"]
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "4326"
    # the tile is 400 m across with 38 labelled roads: a road network of that order, not noise
    assert 1.0 < extracted["ROAD_LENGTH_KM"] < 10.0
    node_dataset = ogr.Open(str(nodes))
    assert node_dataset.GetLayer(0).GetFeatureCount() > extracted["ROAD_COUNT"] / 2

    report = tmp_path / "apls.html"
    scored = results_of(qgis_process(
        "--json", "run", "spacenet:scoreapls", f"--TRUTH={fixtures / VEGAS / 'AOI_2_Vegas_img0.geojson'}",
        f"--PROPOSALS={roads}", f"--OUTPUT_HTML={report}",
    ))
    # the model trained on the top half of this tile: it must find most of its network (the held-out half's
    # score is on the model card, from make eval)
    assert scored["APLS"] > 0.3
    assert 0 < scored["APLS_GT_TO_PROP"] <= 1 and 0 < scored["APLS_PROP_TO_GT"] <= 1
    # the report names the model that drew the proposals, from the fields extractroads wrote
    assert re.search(r"<td>Model of the proposals</td><td>roads_effnet_lite0 \d+\.\d+\.\d+</td>", report.read_text())


def test_a_polygon_layer_is_refused_by_the_roads_scorer(qgis_process_factory, plugin_path, fixtures, tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    bad = qgis_process("run", "spacenet:scoreapls", f"--TRUTH={fixtures / VEGAS / 'AOI_2_Vegas_img0.geojson'}",
                       f"--PROPOSALS={fixtures / 'f1_oracle' / 'gt.geojson'}")
    assert bad.returncode != 0
    assert "choose a line layer" in bad.stdout + bad.stderr
