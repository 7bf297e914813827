"""An extent without data: the extraction gives an empty result and says why, it does not fail (issue 19)."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from spacenet_toolkit.core.extract import extract, raster
from spacenet_toolkit.core.extract.modelcard import ModelCardError, Normalisation

PIXEL_M = 0.5  # the brightness model's card: no resampling
SIZE = 300
NO_DATA = "The raster holds no data in the extent"


def write(path, data, nodata=None):
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, crs="EPSG:32611", transform=from_origin(500_000, 4_000_000, PIXEL_M, PIXEL_M),
                   nodata=nodata)
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return str(path)


def all_nodata(path):
    """Every pixel is the declared nodata value (a fetched tile the scene does not reach)."""
    return write(path, np.full((3, SIZE, SIZE), 65535, np.uint16), nodata=65535)


def all_zero(path):
    """0 in every band and no nodata declared: the engine takes it as nodata (RasterInfo.zero_is_nodata)."""
    return write(path, np.zeros((3, SIZE, SIZE), np.uint8))


def half_covered(path):
    """Bright squares on dark ground in the left half, nodata (0 declared) in the right half."""
    data = np.full((3, SIZE, SIZE), 40, np.uint8)
    for row in range(20, SIZE - 40, 60):
        data[:, row : row + 30, 20:50] = 220
        data[:, row : row + 30, 80:110] = 220
    data[:, :, SIZE // 2 :] = 0
    return write(path, data, nodata=0)


@pytest.fixture(scope="module")
def road_model(tmp_path_factory):
    import onnx_models

    card = onnx_models.card(name="bright_roads", task="roads", input={"tile_size": 256, "overlap": 96},
                            outputs={"channels": ["road", "context"]}, defaults={"threshold": 0.5})
    return str(onnx_models.brightness_model(tmp_path_factory.mktemp("models") / "roads.onnx", card, context=3))


@pytest.mark.parametrize(("make", "blank"), [(all_nodata, "every pixel is nodata)"),
                                             (all_zero, "every pixel is nodata or 0 in every band)")])
def test_a_raster_without_data_gives_no_buildings_a_blank_probability_and_a_warning(brightness_model, tmp_path,
                                                                                      make, blank):
    probability = tmp_path / "probability.tif"
    result = extract.extract_buildings(extract.ExtractRequest(make(tmp_path / "blank.tif"), brightness_model,
                                                              probability_path=str(probability)))
    assert result.footprints == [] and result.tiles_run == 0 and result.tiles_skipped >= 1
    assert NO_DATA in result.note and blank in result.note
    with rasterio.open(probability) as src:
        assert (src.width, src.height, src.count, src.dtypes[0]) == (SIZE, SIZE, 2, "float32")
        assert src.crs.to_epsg() == 32611 and not src.read().any()
        assert src.tags()  # the run's settings, as for any probability raster
    assert not list(tmp_path.glob(".*partial"))


def test_a_raster_without_data_gives_no_roads_and_a_warning(road_model, tmp_path):
    result = extract.extract_roads(extract.RoadRequest(all_nodata(tmp_path / "blank.tif"), road_model,
                                                       probability_path=str(tmp_path / "p.tif")))
    assert result.network.edges == [] and result.network.nodes == [] and result.tiles_run == 0
    assert NO_DATA in result.note
    with rasterio.open(tmp_path / "p.tif") as src:
        assert src.count == 1 and not src.read().any()


def test_an_extent_inside_the_blank_of_a_raster_with_data(brightness_model, tmp_path):
    image = half_covered(tmp_path / "half.tif")
    left, bottom, right, top = raster.describe(image).bounds
    middle = (left + right) / 2
    blank = extract.extract_buildings(extract.ExtractRequest(image, brightness_model,
                                                             extent=(middle + 5, bottom, right, top)))
    covered = extract.extract_buildings(extract.ExtractRequest(image, brightness_model,
                                                               extent=(left, bottom, middle, top)))
    assert blank.footprints == [] and NO_DATA in blank.note
    assert len(covered.footprints) > 5 and NO_DATA not in covered.note


def test_a_model_that_divides_its_input_warns_as_well(tmp_path):
    """Its stretch measures nothing, so the tiles are what find no data: the same empty result and warning."""
    import onnx_models

    card = onnx_models.card(input={"normalisation": {"stretch": "divide", "divisor": 255.0}})
    model = str(onnx_models.brightness_model(tmp_path / "divide.onnx", card))
    result = extract.extract_buildings(extract.ExtractRequest(all_zero(tmp_path / "blank.tif"), model))
    assert result.footprints == [] and result.tiles_run == 0 and NO_DATA in result.note


def test_the_stretch_of_an_extent_without_data_is_a_raster_error(tmp_path):
    """NoDataError is a RasterError: a caller that refuses unusable rasters still does."""
    info = raster.describe(all_nodata(tmp_path / "blank.tif"))
    grid = raster.model_grid(info, None, PIXEL_M)
    with pytest.raises(raster.NoDataError, match=NO_DATA) as raised:
        raster.measure_stretch(info, (1, 2, 3), grid, Normalisation())
    assert isinstance(raised.value, raster.RasterError)


def nan_half(path, nodata=None):
    """half_covered's imagery as float32 with NaN for its blank, declared as nodata or not."""
    with rasterio.open(half_covered(path.with_name("bytes.tif"))) as src:
        data = src.read().astype(np.float32)
    data[:, :, SIZE // 2 :] = np.nan
    return write(path, data, nodata=nodata)


def test_nan_is_no_data_in_a_float_raster_that_does_not_declare_it(brightness_model, tmp_path):
    """NaN made the stretch NaN, and with it every probability: no building anywhere, and no word of why."""
    declared = extract.extract_buildings(extract.ExtractRequest(nan_half(tmp_path / "d.tif", np.nan), brightness_model))
    undeclared = extract.extract_buildings(extract.ExtractRequest(nan_half(tmp_path / "u.tif"), brightness_model))
    assert len(declared.footprints) > 5
    assert [f.geometry.wkb for f in undeclared.footprints] == [f.geometry.wkb for f in declared.footprints]
    left, _, right, _ = raster.describe(str(tmp_path / "u.tif")).bounds
    assert max(f.geometry.bounds[2] for f in undeclared.footprints) < (left + right) / 2


def test_a_damaged_file_is_a_raster_error_that_says_so(brightness_model, tmp_path):
    image = tmp_path / "cut.tif"
    data = np.random.default_rng(0).integers(0, 255, (3, SIZE, SIZE), dtype=np.uint8)
    complete = write(tmp_path / "whole.tif", data)
    with open(complete, "rb") as whole:
        image.write_bytes(whole.read()[: SIZE * SIZE])  # the header and a third of the pixels
    with pytest.raises(raster.RasterError, match="the file may be damaged or incomplete; download or export it"):
        extract.extract_buildings(extract.ExtractRequest(str(image), brightness_model))


def test_a_model_that_gives_nan_is_said_not_taken_for_no_building(tmp_path):
    import onnx_models

    model = str(onnx_models.brightness_model(tmp_path / "nan.onnx", gain=float("nan")))
    with pytest.raises(ModelCardError, match="The model gave NaN probabilities"):
        extract.extract_buildings(extract.ExtractRequest(half_covered(tmp_path / "half.tif"), model))
