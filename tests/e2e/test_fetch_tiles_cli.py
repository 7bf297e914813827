"""spacenet:fetchtiles from the command line, against the loopback bucket, with the plain names scripts use."""

import json

import pytest

pytestmark = pytest.mark.e2e


def test_qgis_process_fetches_tiles_by_name_and_prints_the_count(qgis_process_factory, plugin_path, bucket,
                                                                 tmp_path):
    keys = bucket.manifest.keys(dataset="SN3_roads")
    rgb = next(key for key in keys if "/PS-RGB/" in key)
    west, south, east, north = bucket.manifest.footprints[rgb]
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    result = qgis_process(
        "--json", "run", "spacenet:fetchtiles", "--DATASET=SN3_roads", "--AOI=AOI_2_Vegas", "--SPLIT=train",
        "--PRODUCTS=PS-RGB", "--PRODUCTS=labels", f"--ENDPOINT={bucket.endpoint}",
        f"--EXTENT={west},{east},{south},{north} [EPSG:4326]", "--LOAD_OUTPUTS=false",
        f"--OUTPUT_FOLDER={tmp_path / 'tiles'}", f"--TILE_INDEX={tmp_path / 'index.gpkg'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(result.stdout[result.stdout.index("{"):])["results"]
    assert results["TILE_COUNT"] == 1
    fetched = sorted(p.relative_to(tmp_path / "tiles").as_posix() for p in (tmp_path / "tiles").rglob("*.*"))
    # img0 has PS-RGB and labels; img1 (PAN only, elsewhere) is not in the extent
    assert ["spacenet/" + relative for relative in fetched] == sorted(
        [rgb, next(key for key in keys if "geojson_roads" in key and key.endswith("img0.geojson"))])
    for relative in fetched:
        assert (tmp_path / "tiles" / relative).read_bytes() == bucket.manifest.objects["spacenet/" + relative]
    assert (tmp_path / "index.gpkg").is_file()


def test_a_wrong_name_is_refused_with_the_choices(qgis_process_factory, plugin_path, bucket, tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    result = qgis_process("run", "spacenet:fetchtiles", "--DATASET=SN3_roads", "--AOI=AOI_6_Atlanta",
                          f"--ENDPOINT={bucket.endpoint}", f"--OUTPUT_FOLDER={tmp_path / 'tiles'}")
    assert result.returncode != 0
    assert "SN3_roads has no AOI 'AOI_6_Atlanta'" in result.stdout + result.stderr
