"""The APLS report: what was scored, the summary, and per-group rows only when there are groups."""

from spacenet_toolkit.core.run_facts import InputFacts, RunFacts
from spacenet_toolkit.core.score import apls_report
from spacenet_toolkit.core.score.apls import AplsGroups, AplsResult
from spacenet_toolkit.core.score.apls_options import AplsOptions


def result(value):
    return AplsResult(apls=value, gt_to_prop=value, prop_to_gt=value, control_points_truth=12,
                      control_points_proposal=9, length_truth_m=1234.0, length_proposal_m=1100.0)


def test_groups_get_a_row_each_a_chart_and_their_mean():
    text = apls_report.render(AplsGroups({"img99": result(0.8), "img<998>": result(0.6)}), AplsOptions())
    assert "Per group" in text and "APLS per group" in text and "<svg" in text
    assert "<td>img99</td>" in text and "<td>img&lt;998&gt;</td>" in text
    assert "<td>0.7000</td>" in text  # the mean of the groups


def test_a_run_without_groups_is_one_labelled_summary_row():
    text = apls_report.render(AplsGroups({"": result(0.75)}), AplsOptions())
    assert "Per group" not in text and "<svg" not in text and "<td></td>" not in text
    assert "<td>all lines (no group field)</td>" in text
    assert text.count("<td>0.7500</td>") == 3  # APLS and its halves, once each
    assert "<td>12</td>" in text and "<td>1.234</td>" in text  # the details the per-group row used to hold


def test_the_report_opens_with_what_was_scored():
    facts = RunFacts(algorithm="spacenet:scoreapls", started="2024-05-01T14:03:22+02:00", plugin_version="0.1.0",
                     inputs=(InputFacts("Truth", "labels", "/data/roads & tracks.geojson", 7, "EPSG:4326 - WGS 84"),),
                     compared_in="EPSG:4326 - WGS 84")
    text = apls_report.render(AplsGroups({"": result(0.5)}), AplsOptions(), facts=facts)
    assert text.index("What was scored") < text.index("Summary")
    assert "/data/roads &amp; tracks.geojson" in text and "<td>7</td>" in text and "spacenet:scoreapls" in text
