"""make eval's Kampala z21 figure as a user measures it (issue 17): which geometries lie on a chip, and the
whole measurement (gdalbuildvrt, qgis_process spacenet:extractbuildings, core.score.f1) on the real chips."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # training/ is imported as a top-level package, as `make eval` runs it
    sys.path.insert(0, str(REPO))

from training import engine_eval  # noqa: E402


def write_chip(path: Path, left: float, top: float, size: int = 10) -> Path:
    """A 1-band chip of size x size one-unit pixels whose upper-left corner is (left, top), in EPSG:32636."""
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", crs="EPSG:32636",
                   transform=Affine(1, 0, left, 0, -1, top))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, size, size), 100, np.uint8))
    return path


def test_only_centroids_on_a_chip_count_not_the_gap_inside_the_bounding_box(tmp_path):
    # two chips, (0, 0)-(10, 10) and (20, 0)-(30, 10): the gap between them lies inside their bounding box
    chips = [write_chip(tmp_path / "a.tif", 0, 10), write_chip(tmp_path / "b.tif", 20, 10)]
    boxes, crs = engine_eval.chip_footprints(chips)
    assert crs.to_epsg() == 32636 and [b.bounds for b in boxes] == [(0, 0, 10, 10), (20, 0, 30, 10)]
    geometries = [
        shapely.box(2, 2, 4, 4),  # on chip a
        shapely.box(12, 2, 18, 4),  # in the gap: inside the bounding box, on no chip
        shapely.box(8, 2, 14, 4),  # overlaps chip a, centroid (11, 3) in the gap
        shapely.box(16, 2, 26, 4),  # overlaps chip b, centroid (21, 3) on it
        shapely.box(9, 2, 11, 4),  # centroid (10, 3) on chip a's edge: on the chip
        shapely.box(40, 2, 42, 4),  # outside both
        None,
        shapely.Polygon(),
    ]
    assert engine_eval.on_chips(geometries, boxes).tolist() == [True, False, False, True, True, False, False, False]
    assert engine_eval.on_chips([], boxes).tolist() == []
    assert engine_eval.on_chips(geometries[:2], []).tolist() == [False, False]


KAMPALA_CHIPS = Path(engine_eval.DATA_ROOT) / "ramp_hotosm" / "chips"
SHIPPED_MODEL = REPO / "models" / "buildings_unet_small.onnx"


@pytest.mark.e2e
@pytest.mark.skipif(not KAMPALA_CHIPS.is_dir(), reason=f"the oam_buildings dataset is not at {KAMPALA_CHIPS}")
@pytest.mark.skipif(not os.path.exists(engine_eval.QGIS_PROCESS), reason="no qgis_process.bin")
def test_the_figure_through_qgis_process_on_the_real_chips(tmp_path):
    """The shipped model through the real qgis_process (about 20 s): every count adds up. The figure itself
    depends on the model (F1 0.553, TP 91, FP 55, FN 92 for buildings_unet_small 0.4.1)."""
    result = engine_eval.kampala_z21_qgis_process(str(SHIPPED_MODEL), tmp_path)
    assert (tmp_path / "kampala_z21.vrt").exists() and (tmp_path / "kampala_z21_qgis_process.gpkg").exists()
    assert result["truth_on_chips"] == 183  # of the 206 labels, those whose centroid lies on a z21 chip
    assert result["tp"] + result["fn"] == result["truth_on_chips"]
    assert result["tp"] + result["fp"] == result["footprints_on_chips"] <= result["building_count"]
    assert result["tp"] > 0
    assert result["f1"] == pytest.approx(2 * result["tp"] / (2 * result["tp"] + result["fp"] + result["fn"]), abs=1e-4)
