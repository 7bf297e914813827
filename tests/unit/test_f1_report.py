"""The HTML report: what was scored, every group appears (and no group row in a run without groups), charts are
inline SVG, the file appears whole or not at all."""

import numpy as np
import pytest

from spacenet_toolkit.core.run_facts import InputFacts, ModelFacts, RunFacts
from spacenet_toolkit.core.score import f1, f1_report
from spacenet_toolkit.core.score.f1 import Counts, F1Result

GROUPS = {"AOI_2_Vegas_img1": Counts(3, 1, 0), "AOI_2_Vegas_img2": Counts(1, 0, 2),
          "AOI_5_Khartoum_img9": Counts(0, 2, 2)}


def make_result(groups=None):
    return F1Result(
        groups=GROUPS if groups is None else groups,
        total=Counts(4, 3, 4),
        proposal_status=np.array(["TP", "TP", "FP", ""], dtype=object),
        proposal_iou=np.array([0.9, 0.55, 0.1, np.nan]),
        proposal_match=np.array([0, 1, -1, -1]),
        truth_status=np.array(["TP", "TP", "FN"], dtype=object),
        truth_iou=np.array([0.9, 0.55, 0.0]),
        truth_match=np.array([0, 1, -1]),
    )


def test_report_shows_totals_groups_aois_and_charts():
    text = f1_report.render(make_result(), f1.F1Options(), notes=["2 empty proposals skipped"])
    for group in ("AOI_2_Vegas_img1", "AOI_2_Vegas_img2", "AOI_5_Khartoum_img9", "AOI_2_Vegas", "AOI_5_Khartoum"):
        assert f"<td>{group}</td>" in text
    assert text.count("<svg") == 2
    assert "2 empty proposals skipped" in text
    assert f"<td>{Counts(4, 3, 4).f1:.4f}</td>" in text


def test_the_report_opens_with_what_was_scored():
    facts = RunFacts(algorithm="spacenet:scoref1", started="2024-05-01T14:03:22+02:00", plugin_version="0.1.0",
                     inputs=(InputFacts("Truth", "labels", "/data/labels.gpkg", 43, "EPSG:32616 - UTM"),
                             InputFacts("Proposals", "found <1>", "/data/found.gpkg", 51, "EPSG:4326 - WGS 84")),
                     compared_in="EPSG:32616 - UTM", group_field="tile",
                     models=(ModelFacts("buildings_unet_small", "0.4.1"),))
    text = f1_report.render(make_result(), f1.F1Options(), facts=facts)
    assert text.index("What was scored") < text.index("Summary")
    for expected in ("/data/labels.gpkg", "<td>43</td>", "<td>51</td>", "EPSG:4326 - WGS 84", "found &lt;1&gt;",
                     "2024-05-01T14:03:22+02:00", "SpaceNet Toolkit 0.1.0", "buildings_unet_small 0.4.1"):
        assert expected in text, expected
    assert "What was scored" not in f1_report.render(make_result(), f1.F1Options())  # no facts, no header


def test_a_run_without_groups_has_no_per_group_rows():
    text = f1_report.render(make_result({"": Counts(4, 3, 4)}), f1.F1Options())
    assert "Per group" not in text and "F1 per group" not in text and "Per AOI" not in text
    assert "<td></td>" not in text  # no row with a blank name repeating the summary
    assert text.count(f"<td>{Counts(4, 3, 4).f1:.4f}</td>") == 1
    assert "one group: no group field" in text
    assert text.count("<svg") == 1  # the IoU histogram only


def test_group_names_are_escaped_and_an_empty_one_is_labelled():
    text = f1_report.render(make_result({"<b>tile</b>": Counts(1, 0, 0), "": Counts(3, 3, 4)}), f1.F1Options())
    assert "&lt;b&gt;tile&lt;/b&gt;" in text and "<b>tile" not in text
    assert "<td>(empty value)</td>" in text


def test_iou_histogram_ignores_nan_and_counts_every_value():
    labels, counts = f1_report.iou_histogram(np.array([0.0, 0.5, 0.51, 1.0, np.nan]), bins=4)
    assert labels[0] == "0.00–0.25" and sum(counts) == 4 and counts[2] == 2


def test_write_replaces_atomically(tmp_path):
    target = tmp_path / "report.html"
    f1_report.write(target, "<html>one</html>")
    f1_report.write(target, "<html>two</html>")
    assert target.read_text() == "<html>two</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_report_that_cannot_be_written_leaves_no_part_file(tmp_path):
    from spacenet_toolkit.core import html_report

    (tmp_path / "report.html").mkdir()
    with pytest.raises(OSError):
        html_report.write(tmp_path / "report.html", "<html></html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
