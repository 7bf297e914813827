"""What the scoring algorithms write, through qgis_process on real files (issue 19): the HTML report says what was
scored (inputs, feature counts, CRS, when, plugin and model versions), a run without groups has no blank group
row, CSV tables hold numbers as numbers, and the group field is `group_name` (old layers with `group` still read)."""

import csv
import html
import json
import re
import shutil
from datetime import datetime, timedelta

import pytest
from osgeo import ogr

pytestmark = pytest.mark.e2e

LOCAL_TIME = re.compile(r"<td>Run at \(local time\)</td><td>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)</td>")
IMAGES = {"AOI_2_Vegas_img3457", "AOI_2_Vegas_img5979", "AOI_5_Khartoum_img130", "AOI_5_Khartoum_img1301",
          "AOI_5_Khartoum_img1306", "AOI_5_Khartoum_img463"}


def results_of(completed) -> dict:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def plugin_version(repo_root) -> str:
    text = (repo_root / "metadata.txt").read_text(encoding="utf-8")
    return re.search(r"^version=(.+)$", text, re.MULTILINE).group(1).strip()


def table_rows(path) -> tuple:
    """(the raw text, the rows as dicts) of a CSV table."""
    text = path.read_text(encoding="utf-8")
    with open(path, newline="", encoding="utf-8") as table:
        return text, list(csv.DictReader(table))


def field_names(path) -> list:
    dataset = ogr.Open(str(path))  # kept referenced while its layer is read: GDAL frees the layer with it
    definition = dataset.GetLayer(0).GetLayerDefn()
    return [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]


def values_of(path, field) -> set:
    dataset = ogr.Open(str(path))
    return {feature.GetField(field) for feature in dataset.GetLayer(0)}


def assert_run_time_is_now(report: str) -> None:
    """The report's run time is local time with its offset, and it is the time of this run."""
    written = datetime.fromisoformat(LOCAL_TIME.search(report).group(1))
    assert written.utcoffset() == datetime.now().astimezone().utcoffset()
    assert abs(datetime.now().astimezone() - written) < timedelta(minutes=10)


def test_f1_report_table_and_scored_layer_of_a_grouped_run(qgis_process, oracle, repo_root, tmp_path):
    truth = tmp_path / "truth & <co>.csv"  # the report escapes what the user named
    shutil.copy(oracle / "SN2_sample_truth.csv", truth)
    scored, table, report = tmp_path / "scored.gpkg", tmp_path / "table.csv", tmp_path / "report.html"
    results = results_of(qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={truth}", f"--PROPOSALS={oracle / 'SN2_sample_preds.csv'}",
        "--MATCHING=1", "--MIN_AREA_TRUTH=20", "--MIN_AREA_PROPOSALS=20",
        f"--OUTPUT={scored}", f"--OUTPUT_TABLE={table}", f"--OUTPUT_HTML={report}",
    ))

    text = report.read_text(encoding="utf-8")
    assert text.index("What was scored") < text.index("Summary")
    assert "<td>Truth</td><td>truth &amp; &lt;co&gt;</td>" in text and "<co>" not in text
    assert html.escape(str(truth.resolve())) in text  # where it came from, whatever the working folder
    assert str(oracle.resolve() / "SN2_sample_preds.csv") in text
    assert "<td>172</td>" in text and "<td>145</td>" in text  # the CSVs' rows
    assert "pixel coordinates (challenge CSV)" in text and "<td>ImageId (challenge CSV)</td>" in text
    assert f"<td>SpaceNet Toolkit {plugin_version(repo_root)}</td>" in text
    assert "<td>spacenet:scoref1</td>" in text
    assert_run_time_is_now(text)
    assert "Model of the proposals" not in text  # challenge CSVs do not say: no model is invented
    assert "Per group" in text and "<td>AOI_5_Khartoum_img463</td>" in text

    raw, rows = table_rows(table)
    assert '"' not in raw  # no cell needs quoting: counts and scores are numbers, the names plain text
    assert list(rows[0]) == ["level", "group_name", "tp", "fp", "fn", "precision", "recall", "f1"]
    assert {row["group_name"] for row in rows if row["level"] == "group"} == IMAGES
    total = next(row for row in rows if row["level"] == "total")
    assert (total["tp"], total["fp"], total["fn"]) == (str(results["TP"]), str(results["FP"]), str(results["FN"]))
    for name in ("precision", "recall", "f1"):  # GDAL's 15 significant digits, not "0.604"
        assert float(total[name]) == pytest.approx(results[name.upper()], rel=1e-14, abs=1e-15)
        assert len(total[name]) > 10
    vegas = next(row for row in rows if row["group_name"] == "AOI_2_Vegas_img3457")
    assert float(vegas["f1"]) == 0.875 and vegas["tp"] == "28"

    names = field_names(scored)
    assert "group_name" in names and "group" not in names
    assert values_of(scored, "group_name") == IMAGES - {"AOI_5_Khartoum_img463"}  # that image has no polygon


def test_a_run_without_groups_has_one_total_row_and_no_group_table(qgis_process, oracle, tmp_path):
    table, report = tmp_path / "table.csv", tmp_path / "report.html"
    results = results_of(qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={oracle / 'gt.geojson'}",
        f"--PROPOSALS={oracle / 'pred.geojson'}", f"--OUTPUT_TABLE={table}", f"--OUTPUT_HTML={report}",
    ))
    raw, rows = table_rows(table)
    assert len(rows) == 1 and rows[0]["level"] == "total" and rows[0]["group_name"] == ""
    assert raw.splitlines()[1].startswith("total,,8,20,20,0.28571428571428")
    assert float(rows[0]["f1"]) == pytest.approx(results["F1"], rel=1e-14)

    text = report.read_text(encoding="utf-8")
    assert "Per group" not in text and "F1 per group" not in text
    assert "none: everything is one group" in text
    assert text.count("<td>28</td>") == 2  # both inputs' feature counts
    assert text.count("EPSG:32616 - WGS 84 / UTM zone 16N") == 3  # each input's CRS and the one compared in


def test_footprints_from_our_extraction_name_their_model_in_the_report(qgis_process, fixtures, repo_root, tmp_path):
    import onnx_models

    model = onnx_models.brightness_model(tmp_path / "brightness.onnx")  # its card: brightness_test_model 0.0.1
    buildings, report = tmp_path / "buildings.gpkg", tmp_path / "report.html"
    extracted = results_of(qgis_process(
        "--json", "run", "spacenet:extractbuildings",
        f"--INPUT={fixtures / 'spacenet/sn4_atlanta_pan/sample_geotiff.tif'}", f"--MODEL={model}", "--DEVICE=cpu",
        f"--OUTPUT={buildings}",
    ))
    assert values_of(buildings, "model_version") == {"0.0.1"}
    results_of(qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={repo_root / 'sample_data/sn4_atlanta_buildings.geojson'}",
        f"--PROPOSALS={buildings}", f"--OUTPUT_HTML={report}",
    ))
    text = report.read_text(encoding="utf-8")
    assert "<td>Model of the proposals</td><td>brightness_test_model 0.0.1</td>" in text
    assert f"<td>{extracted['BUILDING_COUNT']}</td>" in text and "<td>43</td>" in text


def test_old_layers_with_a_group_field_are_still_read(qgis_process, oracle, tmp_path):
    """A truth layer that still has `group` (as scored layers of older versions) against one with `group_name`."""
    def with_field(source, field, target):
        collection = json.loads(source.read_text())
        for feature in collection["features"]:
            feature["properties"][field] = "tile 1"
        target.write_text(json.dumps(collection))
        return target

    truth = with_field(oracle / "gt.geojson", "group", tmp_path / "old_truth.geojson")
    proposals = with_field(oracle / "pred.geojson", "group_name", tmp_path / "new_proposals.geojson")
    scored, table, report = tmp_path / "scored.gpkg", tmp_path / "table.csv", tmp_path / "report.html"
    results = results_of(qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={truth}", f"--PROPOSALS={proposals}",
        "--GROUP_FIELD=group_name", f"--OUTPUT={scored}", f"--OUTPUT_TABLE={table}", f"--OUTPUT_HTML={report}",
    ))
    assert (results["TP"], results["FP"], results["FN"]) == (8, 20, 20)
    _raw, rows = table_rows(table)
    assert [(row["level"], row["group_name"]) for row in rows] == [("group", "tile 1"), ("total", "")]
    assert values_of(scored, "group_name") == {"tile 1"}
    assert "<td>group (truth), group_name (proposals)</td>" in report.read_text(encoding="utf-8")


def test_apls_report_and_table(qgis_process, fixtures, tmp_path):
    tile = "AOI_2_Vegas_img99"
    truth = fixtures / "apls_oracle" / "spacenet" / f"{tile}.geojson"
    table, report = tmp_path / "apls.csv", tmp_path / "apls.html"
    results = results_of(qgis_process(
        "--json", "run", "spacenet:scoreapls", f"--TRUTH={truth}",
        f"--PROPOSALS={fixtures / 'apls_oracle' / 'osm' / f'{tile}.geojson'}",
        f"--OUTPUT_TABLE={table}", f"--OUTPUT_HTML={report}",
    ))
    raw, rows = table_rows(table)
    assert '"' not in raw and len(rows) == 1  # one run, one labelled row: no blank group, no mean of one
    row = rows[0]
    assert row["level"] == "total" and row["group_name"] == ""
    assert float(row["apls"]) == pytest.approx(results["APLS"], rel=1e-14)
    assert row["control_points_truth"].isdigit() and float(row["truth_km"]) > 0.1

    text = report.read_text(encoding="utf-8")
    assert "<td>spacenet:scoreapls</td>" in text and str(truth.resolve()) in text
    assert "EPSG:4326 - WGS 84" in text and "UTM zone of each group" in text
    assert "Per group" not in text and "<td>all lines (no group field)</td>" in text
    assert_run_time_is_now(text)
