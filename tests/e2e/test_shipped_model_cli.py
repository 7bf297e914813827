"""The shipped graphical model spacenet:fetchextractscore through qgis_process, against the loopback bucket:
fetch a tile and its labels, extract buildings with the shipped model, score them."""

import json

import pytest
from osgeo import ogr

pytestmark = pytest.mark.e2e


def feature_count(path) -> int:
    dataset = ogr.Open(str(path))
    assert dataset is not None, path
    return dataset.GetLayer(0).GetFeatureCount()


def test_the_model_fetches_extracts_and_scores_one_tile(qgis_process_factory, plugin_path, bucket, tmp_path):
    pan = next(key for key in bucket.manifest.keys("SN4_buildings", "train", "AOI_6_Atlanta", "PAN"))
    labels = next(key for key in bucket.manifest.keys("SN4_buildings", "train", "AOI_6_Atlanta", "geojson_buildings"))
    west, south, east, north = bucket.manifest.footprints[pan]
    tiles, footprints, scored = tmp_path / "tiles", tmp_path / "footprints.gpkg", tmp_path / "scored.gpkg"
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")

    # Model inputs by number (DATASET 2: SN4_buildings, AOI 5: AOI_6_Atlanta, as `help` lists them) or by name;
    # its outputs are named <step>:<output>, as in every QGIS model.
    run = qgis_process(
        "--json", "run", "spacenet:fetchextractscore", "--DATASET=2", "--AOI=5",
        "--IMAGERY=PAN", f"--EXTENT={west},{east},{south},{north} [EPSG:4326]", f"--ENDPOINT={bucket.endpoint}",
        f"--fetch:TILES={tiles}", f"--extract:FOOTPRINTS={footprints}", f"--score:SCORED={scored}",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]

    # The shipped ONNX model ran on the fetched tile (its default: the model input MODEL was not given).
    assert "buildings_unet_small" in run.stdout + run.stderr
    fetched_labels = tiles / labels.removeprefix("spacenet/")
    assert (tiles / pan.removeprefix("spacenet/")).read_bytes() == bucket.manifest.objects[pan]
    assert fetched_labels.read_bytes() == bucket.manifest.objects[labels]
    assert results["extract:FOOTPRINTS"] == str(footprints) and results["score:SCORED"] == str(scored)
    proposals = feature_count(footprints)
    assert proposals > 0

    # Scored against the fetched labels: every label is a TP or an FN, every footprint a TP or an FP.
    f1, tp, fp, fn = (results[f"score:{name}"] for name in ("F1", "TP", "FP", "FN"))
    assert isinstance(f1, float) and 0.0 <= f1 <= 1.0
    assert tp + fn == feature_count(fetched_labels) == bucket.manifest.label_features[labels]
    assert tp + fp == proposals
    assert feature_count(scored) == proposals + fn  # proposals, plus the missed labels

    # The toolbox's copy of the model (what help, tooltips and the modeler read) has its outputs too: they come
    # from its steps, which the registry resolves only once the provider is in it.
    help_text = qgis_process("help", "spacenet:fetchextractscore").stdout
    assert "Fetch, extract and score buildings" in help_text
    for output in ("extract:FOOTPRINTS: <outputVector>", "score:SCORED: <outputVector>", "fetch:TILES"):
        assert output in help_text
