"""core.extract.band_preview on real SpaceNet rasters: summaries, presets, checks and the composite."""

import re

import numpy as np
import pytest
import rasterio
from affine import Affine

from spacenet_toolkit.core.extract import band_preview, raster
from spacenet_toolkit.core.extract.band_preview import AUTOMATIC, CUSTOM, BandChoice
from spacenet_toolkit.core.extract.modelcard import Normalisation

ATLANTA_PAN = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"  # 900 x 900, 1 band uint16, nodata 0
VEGAS_RGBA = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"  # 1300 x 1300 uint8 RGBA
ROTTERDAM_MS = "spacenet/sn6_rotterdam_ms_pan/ms1.tif"  # 300 x 300, 4 bands float64
RGB = ("red", "green", "blue")


@pytest.fixture(scope="module")
def atlanta(fixtures):
    return band_preview.preview(fixtures / ATLANTA_PAN)


@pytest.fixture(scope="module")
def vegas(fixtures):
    return band_preview.preview(fixtures / VEGAS_RGBA)


@pytest.fixture(scope="module")
def rotterdam(fixtures):
    return band_preview.preview(fixtures / ROTTERDAM_MS)


@pytest.fixture(scope="module")
def worldview(tmp_path_factory):
    """An 8-band uint16 raster whose band b holds the value 100 * b, with nodata (0) in a corner and NaN-free."""
    path = tmp_path_factory.mktemp("wv") / "wv8.tif"
    data = np.stack([np.full((40, 60), 100 * b, np.uint16) for b in range(1, 9)])
    data[:, 0, 0] = np.arange(1, 9) * 1000  # one bright pixel per band, so min and max differ
    data[:, 30:, 50:] = 0
    with rasterio.open(path, "w", driver="GTiff", width=60, height=40, count=8, dtype="uint16", nodata=0,
                       crs="EPSG:32611", transform=Affine(0.5, 0, 500000, 0, -0.5, 4000000)) as dst:
        dst.write(data)
    return band_preview.preview(path)


def test_summaries_of_a_panchromatic_uint16_band_ignore_nodata(atlanta, fixtures):
    assert atlanta.sample.shape == (1, 256, 256)  # decimated from 900 x 900
    (band,) = atlanta.bands
    assert (band.index, band.colour, band.dtype, band.label) == (1, "gray", "uint16", "1: gray")
    with rasterio.open(fixtures / ATLANTA_PAN) as src:
        full = src.read(1, masked=True)
    assert full.min() <= band.minimum < band.maximum <= full.max()
    assert band.minimum > 0  # 0 is nodata
    assert len(band.histogram) == band_preview.HISTOGRAM_BINS and max(band.histogram) == 1.0


def test_summaries_of_an_rgba_raster_name_the_colours(vegas):
    assert [b.label for b in vegas.bands] == ["1: red", "2: green", "3: blue", "4: alpha"]
    assert {b.dtype for b in vegas.bands} == {"uint8"}
    assert all(0 <= b.minimum <= b.maximum <= 255 for b in vegas.bands[:3])
    # the alpha band masks the other bands: its transparent pixels are not in their summaries
    assert np.ma.getmaskarray(vegas.sample[0]).any() or vegas.bands[3].minimum == 255


def test_summaries_of_float64_multispectral(rotterdam):
    assert rotterdam.sample.shape == (4, 256, 256)
    assert [b.dtype for b in rotterdam.bands] == ["float64"] * 4
    assert [b.label for b in rotterdam.bands] == ["1: gray", "2", "3", "4"]
    assert all(b.minimum < b.maximum for b in rotterdam.bands)


def test_presets_say_which_fit_and_why_not(atlanta, vegas, rotterdam, worldview):
    def options(preview):
        return {o.preset.key: o for o in band_preview.preset_options(preview.info, RGB)}

    pan = options(atlanta)
    assert pan["panchromatic"].bands == (1, 1, 1) and pan[AUTOMATIC].bands == (1, 1, 1)
    assert "8-band WorldView" in pan["worldview"].reason and "1 data band" in pan["worldview"].reason
    assert not pan["rgb"].available and "Band(s) 2, 3 do not exist" in pan["rgb"].reason

    rgba = options(vegas)
    assert rgba["rgb"].bands == (1, 2, 3) and rgba[AUTOMATIC].bands == (1, 2, 3)
    assert "3 data band(s)" in rgba["worldview"].reason  # the alpha band is not a data band

    ms = options(rotterdam)
    assert not ms["worldview"].available and ms["rgb"].available and ms[AUTOMATIC].bands == (1, 2, 3)

    wv = options(worldview)
    assert all(o.available for o in wv.values())
    assert wv["worldview"].bands == (5, 3, 2) and wv[AUTOMATIC].bands == (5, 3, 2)


def test_a_model_with_other_inputs_changes_what_fits(vegas):
    four = ("red", "green", "blue", "nir")
    options = {o.preset.key: o for o in band_preview.preset_options(vegas.info, four)}
    assert "3 band(s) were chosen (1, 2, 3) but the model takes 4" in options["rgb"].reason
    assert options["panchromatic"].bands == (1, 1, 1, 1)


def test_choices_are_checked_as_the_engine_checks_them(atlanta, vegas):
    check = band_preview.check_choice(BandChoice(AUTOMATIC), atlanta.info, RGB)
    assert (check.value, check.bands, check.valid) == (None, (1, 1, 1), True)

    check = band_preview.check_choice(BandChoice(CUSTOM, (4,)), atlanta.info, RGB)
    assert not check.valid and check.error == "Band(s) 4, 4, 4 do not exist: the raster has bands 1 to 1."
    with pytest.raises(raster.BandMappingError, match=re.escape(check.error)):
        raster.check_bands((4,) * 3, atlanta.info, RGB)

    check = band_preview.check_choice(BandChoice("worldview"), vegas.info, RGB)
    assert check.value == (5, 3, 2) and "Band(s) 5 do not exist" in check.error

    check = band_preview.check_choice(BandChoice(CUSTOM, (3, 2)), vegas.info, RGB)
    assert check.bands == () and "2 band(s) were chosen (3, 2) but the model takes 3" in check.error

    check = band_preview.check_choice(BandChoice(CUSTOM, (3, 2, 1)), vegas.info, RGB)
    assert check.valid and check.value == check.bands == (3, 2, 1)


def test_an_automatic_choice_the_engine_cannot_make_is_refused(fixtures, tmp_path):
    path = tmp_path / "two.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=2, dtype="uint8", crs="EPSG:32611",
                       transform=Affine(1, 0, 0, 0, -1, 0)) as dst:
        dst.write(np.ones((2, 8, 8), np.uint8))
    info = raster.describe(path)
    check = band_preview.check_choice(BandChoice(AUTOMATIC), info, RGB)
    assert check.value is None and "has 2 data band(s) but the model needs 3" in check.error
    assert not {o.preset.key: o for o in band_preview.preset_options(info, RGB)}[AUTOMATIC].available


def test_a_band_value_is_shown_as_the_preset_that_gives_it(vegas, atlanta, worldview):
    assert band_preview.choice_for([], vegas.info, RGB) == BandChoice(AUTOMATIC)
    assert band_preview.choice_for(None, None, RGB) == BandChoice(AUTOMATIC)
    assert band_preview.choice_for([1, 2, 3], vegas.info, RGB) == BandChoice("rgb")
    assert band_preview.choice_for([1], atlanta.info, RGB) == BandChoice("panchromatic")
    assert band_preview.choice_for([1, 1, 1], vegas.info, RGB) == BandChoice("panchromatic")
    assert band_preview.choice_for([5, 3, 2], worldview.info, RGB) == BandChoice("worldview")
    assert band_preview.choice_for([5, 3, 2], vegas.info, RGB) == BandChoice(CUSTOM, (5, 3, 2))  # does not fit
    assert band_preview.choice_for(["3", "2", "1"], vegas.info, RGB) == BandChoice(CUSTOM, (3, 2, 1))


@pytest.mark.parametrize("text, bands", [("5,3,2", (5, 3, 2)), (" 5 3 2 ", (5, 3, 2)), ("5;3;2", (5, 3, 2)),
                                         ("[5, 3, 2]", (5, 3, 2)), ("", ()), (None, ()), ("1", (1,))])
def test_band_lists_are_parsed_from_text(text, bands):
    assert band_preview.parse_band_list(text) == bands


@pytest.mark.parametrize("text", ["red", "5,x", "0,1,2", "-1"])
def test_text_that_is_not_a_band_list_is_refused(text):
    with pytest.raises(raster.BandMappingError, match="is not a list of band numbers"):
        band_preview.parse_band_list(text)


def test_the_composite_is_stretched_as_the_engine_stretches(vegas):
    image = band_preview.composite(vegas, (1, 2, 3), RGB)
    assert image.shape == (256, 256, 4) and image.dtype == np.uint8
    valid = image[..., 3] == 255
    assert valid.mean() > 0.5
    for channel in range(3):
        values = image[..., channel][valid]
        # 2-98 percentile stretch: about 2 % of the valid pixels at each end
        assert 0.005 < (values == 0).mean() < 0.05 and 0.005 < (values == 255).mean() < 0.05
    assert (image[..., :3][~valid] == 0).all()


def test_the_composite_follows_the_mapping_and_the_models_colours(vegas, atlanta, worldview):
    rgb = band_preview.composite(vegas, (1, 2, 3), RGB)
    bgr = band_preview.composite(vegas, (3, 2, 1), RGB)
    assert (rgb[..., 0] == bgr[..., 2]).all()
    # a model whose inputs are in another order still shows red as red
    assert (band_preview.composite(vegas, (3, 2, 1), ("blue", "green", "red"))[..., :3] == rgb[..., :3]).all()
    pan = band_preview.composite(atlanta, (1, 1, 1), RGB)
    assert (pan[..., 0] == pan[..., 1]).all() and (pan[..., 1] == pan[..., 2]).all()
    wv = band_preview.composite(worldview, (5, 3, 2), RGB, Normalisation(stretch="divide", divisor=1000.0))
    assert np.abs(wv[5, 5].astype(int) - (128, 77, 51, 255)).max() <= 1  # 500, 300, 200 / 1000 of 255
    assert (wv[30:, 50:] == 0).all() and (wv[:30, :, 3] == 255).all()  # nodata is transparent


def test_nodata_and_nan_stay_out_of_the_summaries(worldview, tmp_path):
    assert [(b.minimum, b.maximum) for b in worldview.bands[:2]] == [(100, 1000), (200, 2000)]
    path = tmp_path / "nan.tif"
    data = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    data[0, :2] = np.nan
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32", crs="EPSG:32611",
                       transform=Affine(1, 0, 500000, 0, -1, 4000000)) as dst:
        dst.write(data)
    preview = band_preview.preview(path)
    assert (preview.bands[0].minimum, preview.bands[0].maximum) == (16, 63)
    image = band_preview.composite(preview, (1, 1, 1), RGB)
    assert (image[:2, :, 3] == 0).all() and (image[2:, :, 3] == 255).all()


def test_model_inputs_come_from_the_card(repo_root):
    inputs = band_preview.model_inputs(repo_root / "models" / "buildings_unet_small.onnx")
    assert inputs.bands == RGB and inputs.name == "buildings_unet_small"
    assert inputs.normalisation.stretch == "percentile" and "3 input bands" in inputs.summary
    with pytest.raises(band_preview.PreviewError, match="Cannot open the model"):
        band_preview.model_inputs(repo_root / "models" / "no_such_model.onnx")
