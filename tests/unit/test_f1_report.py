"""The HTML report: every group appears, charts are inline SVG, the file appears whole or not at all."""

import numpy as np

from spacenet_toolkit.core.score import f1, f1_report
from spacenet_toolkit.core.score.f1 import Counts, F1Result


def make_result():
    return F1Result(
        groups={"AOI_2_Vegas_img1": Counts(3, 1, 0), "AOI_2_Vegas_img2": Counts(1, 0, 2), "AOI_5_Khartoum_img9":
                Counts(0, 2, 2)},
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


def test_iou_histogram_ignores_nan_and_counts_every_value():
    labels, counts = f1_report.iou_histogram(np.array([0.0, 0.5, 0.51, 1.0, np.nan]), bins=4)
    assert labels[0] == "0.00–0.25" and sum(counts) == 4 and counts[2] == 2


def test_write_replaces_atomically(tmp_path):
    target = tmp_path / "report.html"
    f1_report.write(target, "<html>one</html>")
    f1_report.write(target, "<html>two</html>")
    assert target.read_text() == "<html>two</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
