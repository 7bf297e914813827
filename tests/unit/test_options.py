"""Option sets spelled once: each BuildingOptions / RoadOptions field says where it travels, and the round trips
(model card, run settings, probability raster tags) follow from that alone."""

from types import SimpleNamespace

import pytest

from spacenet_toolkit.core.extract.building_options import EXTRACTION, BuildingOptions
from spacenet_toolkit.core.extract.road_options import RoadOptions

CARD = SimpleNamespace(threshold=0.4, interior_threshold=0.6, min_area_m2=5.0, min_score=0.7)


def test_the_card_gives_the_defaults_it_holds_and_what_is_given_wins():
    options = BuildingOptions.of_card(CARD, EXTRACTION, min_area_m2=2.0, min_score=None, regularize=True)
    assert options == BuildingOptions(threshold=0.4, interior_threshold=0.6, min_area_m2=2.0, min_score=0.7,
                                      simplify_m=EXTRACTION.simplify_m, regularize=True)
    assert RoadOptions.of_card(CARD, max_gap_m=0) == RoadOptions(threshold=0.4, max_gap_m=0)
    with pytest.raises(TypeError):
        BuildingOptions.of_card(CARD, no_such_option=1)


def test_the_run_records_the_settings_it_always_did():
    assert list(BuildingOptions().settings()) == ["threshold", "min_area_m2", "min_score", "simplify_m", "regularize"]
    assert list(RoadOptions().settings()) == ["threshold", "min_spur_length_m", "max_gap_m", "simplify_m"]


def test_the_probability_raster_tags_keep_their_names_and_read_back():
    options = BuildingOptions(threshold=0.45, interior_threshold=0.55, min_area_m2=3.0, min_score=0.25)
    tags = options.tags()
    assert tags == {"SPACENET_THRESHOLD": "0.45", "SPACENET_INTERIOR_THRESHOLD": "0.55",
                    "SPACENET_MIN_AREA_M2": "3.0", "SPACENET_MIN_SCORE": "0.25"}  # rasters written before load
    assert BuildingOptions.from_tags(tags) == {"threshold": 0.45, "interior_threshold": 0.55, "min_area_m2": 3.0,
                                               "min_score": 0.25}
    assert "SPACENET_INTERIOR_THRESHOLD" not in options.tags(leave_out=("interior_threshold",))
    assert BuildingOptions.from_tags({"SPACENET_THRESHOLD": "high", "OTHER": "1"}) == {}  # not the engine's
    assert RoadOptions().tags() == {}
