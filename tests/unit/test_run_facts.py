"""What a report says was scored: the run's facts as plain values, rendered escaped."""

import re
from datetime import datetime, timedelta, timezone

from spacenet_toolkit.core import html_report
from spacenet_toolkit.core.run_facts import (
    InputFacts,
    ModelFacts,
    RunFacts,
    local_time,
    models_from,
    plugin_version,
)


def facts(**overrides):
    values = dict(
        algorithm="spacenet:scoref1", started="2024-05-01T14:03:22+02:00", plugin_version="0.1.0",
        inputs=(InputFacts("Truth", "labels <AOI 1>", "/data/a&b/labels.gpkg|layername=x", 43, "EPSG:32616 - UTM"),
                InputFacts("Proposals", "buildings", "/data/buildings.gpkg", None, "")),
        compared_in="EPSG:32616 - UTM", group_field="tile",
    )
    values.update(overrides)
    return RunFacts(**values)


def test_local_time_has_the_offset_of_its_zone():
    moment = datetime(2024, 5, 1, 12, 3, 22, 500, tzinfo=timezone(timedelta(hours=2)))
    written = datetime.fromisoformat(local_time(moment))
    assert written == moment.replace(microsecond=0)  # the same instant, to the second
    assert written.utcoffset() == moment.astimezone().utcoffset()  # told in this machine's zone
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", local_time())


def test_plugin_version_is_metadata_txt(repo_root, tmp_path):
    text = (repo_root / "metadata.txt").read_text(encoding="utf-8")
    expected = re.search(r"^version=(.+)$", text, re.MULTILINE).group(1).strip()
    assert plugin_version() == expected
    assert plugin_version(tmp_path / "missing.txt") == ""


def test_models_are_distinct_named_and_sorted():
    pairs = [("buildings_unet_small", "0.4.1"), ("buildings_unet_small", "0.4.1"), (None, "1"), ("", None),
             ("old_model", None)]
    assert models_from(pairs) == (ModelFacts("buildings_unet_small", "0.4.1"), ModelFacts("old_model", ""))
    assert [m.label() for m in models_from(pairs)] == ["buildings_unet_small 0.4.1", "old_model"]
    assert models_from([]) == ()


def test_the_section_says_what_when_and_with_which_versions():
    text = html_report.run_section(facts(models=(ModelFacts("buildings_unet_small", "0.4.1"),)))
    for expected in ("spacenet:scoref1", "2024-05-01T14:03:22+02:00", "SpaceNet Toolkit 0.1.0", "<td>43</td>",
                     "EPSG:32616 - UTM", "<td>tile</td>", "buildings_unet_small 0.4.1", "<td>unknown</td>"):
        assert expected in text, expected
    # every text is escaped: names and paths are the user's
    assert "labels &lt;AOI 1&gt;" in text and "/data/a&amp;b/labels.gpkg" in text and "<AOI" not in text


def test_no_model_line_unless_the_proposals_say_which():
    text = html_report.run_section(facts())
    assert "Model" not in text and "model" not in text
    assert html_report.run_section(None) == ""


def test_an_ungrouped_run_says_so():
    assert "none: everything is one group" in html_report.run_section(facts(group_field=""))
