"""spacenet:scoref1 through qgis_process on a few thousand synthetic footprints in GeoPackages (issue 20): the run that
reads and writes in bulk gives the numbers, scored layer and table of the feature-by-feature run
(``SPACENET_BULK_IO=0``), and its scored layer carries a spatial index SQLite accepts."""

import json
import sqlite3

import footprint_files  # tests/support
import pytest

pytestmark = pytest.mark.e2e


def run(qgis_process, folder, truth, proposals, bulk):
    folder.mkdir()
    if not bulk:
        qgis_process.env["SPACENET_BULK_IO"] = "0"
    completed = qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={truth}", f"--PROPOSALS={proposals}", "--GROUP_FIELD=tile",
        "--ORDER_FIELD=confidence", f"--OUTPUT={folder / 'scored.gpkg'}", f"--OUTPUT_TABLE={folder / 'table.csv'}",
        f"--OUTPUT_HTML={folder / 'report.html'}")
    qgis_process.env.pop("SPACENET_BULK_IO", None)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def test_bulk_and_feature_by_feature_runs_agree(qgis_process_factory, plugin_path, tmp_path):
    truth, proposals = footprint_files.scene(3000)
    truth_path = footprint_files.write(tmp_path / "truth.gpkg", truth)
    proposals_path = footprint_files.write(tmp_path / "proposals.gpkg", proposals)
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")

    bulk = run(qgis_process, tmp_path / "bulk", truth_path, proposals_path, bulk=True)
    features = run(qgis_process, tmp_path / "features", truth_path, proposals_path, bulk=False)

    numbers = ("TP", "FP", "FN", "PRECISION", "RECALL", "F1")
    assert {key: bulk[key] for key in numbers} == {key: features[key] for key in numbers}
    assert bulk["TP"] > 1500 and bulk["FP"] > 300 and bulk["FN"] > 300  # a real mix of outcomes
    scored, expected = (tmp_path / "bulk" / "scored.gpkg"), (tmp_path / "features" / "scored.gpkg")
    assert footprint_files.layer_facts(scored) == footprint_files.layer_facts(expected)
    rows = footprint_files.features(scored)
    assert rows == footprint_files.features(expected)
    assert len(rows) == bulk["TP"] + bulk["FP"] + bulk["FN"]
    assert (tmp_path / "bulk" / "table.csv").read_text() == (tmp_path / "features" / "table.csv").read_text()
    connection = sqlite3.connect(scored)
    assert connection.execute("SELECT rtreecheck('rtree_scored_geom')").fetchone() == ("ok",)
    assert connection.execute("SELECT count(*) FROM rtree_scored_geom").fetchone() == (len(rows),)
    assert sorted(p.name for p in (tmp_path / "bulk").iterdir()) == ["report.html", "scored.gpkg", "table.csv"]
