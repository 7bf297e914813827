"""An extent parameter with no area (a point, a line, or corners typed twice) is refused: it ran the whole layer."""

import re

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsProcessingContext, QgsProcessingException

CRS = QgsCoordinateReferenceSystem("EPSG:32616")


@pytest.mark.parametrize("algorithm_id", ["extractbuildings", "extractroads", "calibrate", "adaptmodel"])
def test_an_extent_without_area_is_refused_and_an_empty_one_means_the_whole_layer(provider, algorithm_id):
    algorithm, context = provider.algorithm(algorithm_id), QgsProcessingContext()
    line = "733800,733800,3724900,3724950 [EPSG:32616]"
    with pytest.raises(QgsProcessingException, match=re.escape(f"EXTENT: the extent given ({line}) has no area")):
        algorithm.given_extent({"EXTENT": line}, "EXTENT", context, CRS)
    for empty in (None, ""):
        assert algorithm.given_extent({"EXTENT": empty}, "EXTENT", context, CRS) is None
    assert algorithm.given_extent({"EXTENT": "733800,733900,3724900,3724950 [EPSG:32616]"}, "EXTENT", context,
                                  CRS) == pytest.approx((733800, 3724900, 733900, 3724950))
