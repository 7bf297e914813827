"""spacenet:scoref1 from the command line: `qgis_process.bin run ... --json` prints the numbers."""

import json

import pytest

pytestmark = pytest.mark.e2e


def test_qgis_process_run_prints_the_scores_as_json(qgis_process_factory, plugin_path, oracle, tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    result = qgis_process(
        "--json", "run", "spacenet:scoref1",
        f"--TRUTH={oracle / 'SN2_sample_truth.csv'}", f"--PROPOSALS={oracle / 'SN2_sample_preds.csv'}",
        "--MATCHING=1", "--MIN_AREA_TRUTH=20", "--MIN_AREA_PROPOSALS=20",
        f"--OUTPUT={tmp_path / 'scored.gpkg'}", f"--OUTPUT_HTML={tmp_path / 'report.html'}",
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout[result.stdout.index("{"):])["results"]
    # The oracle's two AOIs summed: Vegas 35/2/7 and Khartoum 52/55/75.
    assert (results["TP"], results["FP"], results["FN"]) == (35 + 52, 2 + 55, 7 + 75)
    assert (tmp_path / "scored.gpkg").is_file() and (tmp_path / "report.html").is_file()


def test_a_line_layer_is_refused_with_a_message(qgis_process_factory, plugin_path, tmp_path):
    lines = tmp_path / "lines.geojson"
    lines.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]}))
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    result = qgis_process("run", "spacenet:scoref1", f"--TRUTH={lines}", f"--PROPOSALS={lines}",
                          f"--OUTPUT={tmp_path / 'out.gpkg'}")
    assert result.returncode != 0
    assert "must be a polygon layer" in result.stdout + result.stderr
    assert not (tmp_path / "out.gpkg").exists()


def test_a_numbers_only_run_writes_nothing(qgis_process_factory, plugin_path, oracle, tmp_path):
    """OUTPUT is optional: without any output parameter the run returns the numbers and writes no file."""
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    result = qgis_process(
        "--json", "run", "spacenet:scoref1",
        f"--TRUTH={oracle / 'SN2_sample_truth.csv'}", f"--PROPOSALS={oracle / 'SN2_sample_preds.csv'}",
        "--MATCHING=1", "--MIN_AREA_TRUTH=20", "--MIN_AREA_PROPOSALS=20",
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout[result.stdout.index("{"):])["results"]
    assert (results["TP"], results["FP"], results["FN"]) == (35 + 52, 2 + 55, 7 + 75)
    assert "OUTPUT" not in results
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "profile" not in p.relative_to(tmp_path).parts[0]]
