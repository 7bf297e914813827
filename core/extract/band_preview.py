"""What a mapper needs to choose the bands that feed a model: per-band summaries, presets, checks, a composite.

Everything about the raster's values comes from ONE decimated read (at most ``PREVIEW_SIZE`` pixels across,
overviews when present), so a preview costs the same on a 200 MB scene as on a tile. The composite thumbnail
is stretched the way the engine stretches the model's input (``core.extract.raster``: per-band percentiles, or the
card's divisor), before the card's mean/std standardisation, so it shows what the model will see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import rasterio

from . import raster
from .modelcard import ModelCardError, Normalisation

PREVIEW_SIZE = 256  # the decimated read (and so the thumbnail) is at most this many pixels across
HISTOGRAM_BINS = 32
DEFAULT_MODEL_BANDS = ("red", "green", "blue")  # what the shipped models take; assumed while no model is known
AUTOMATIC = "automatic"
CUSTOM = "custom"


class PreviewError(ValueError):
    """The raster or the model cannot be previewed; the message says why."""


@dataclass(frozen=True)
class BandSummary:
    index: int  # 1-based
    description: str  # "" where the raster has none
    colour: str  # GDAL colour interpretation, lowercase ("red", "gray", "alpha", "undefined", ...)
    dtype: str
    minimum: float | None  # of the decimated read; None where it holds no valid pixel
    maximum: float | None
    histogram: tuple  # HISTOGRAM_BINS bin heights from minimum to maximum, the fullest bin 1.0

    @property
    def label(self) -> str:
        """How a band is named in lists: its number, then its description or colour when it has one."""
        name = self.description or (self.colour if self.colour not in ("", "undefined") else "")
        return f"{self.index}: {name}" if name else str(self.index)


@dataclass(frozen=True)
class RasterPreview:
    info: raster.RasterInfo
    bands: tuple  # BandSummary per raster band
    sample: np.ma.MaskedArray  # [count, height, width] decimated read; masked where invalid (nodata, alpha, NaN)


def _histogram(values: np.ndarray, low: float, high: float) -> tuple:
    counts, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high if high > low else low + 1))
    peak = counts.max()
    return tuple(float(c) / peak for c in counts) if peak else (0.0,) * HISTOGRAM_BINS


def preview(path, size: int = PREVIEW_SIZE) -> RasterPreview:
    """The raster's description, per-band summaries and a decimated sample of every band."""
    info = raster.describe(path)
    scale = max(1.0, max(info.width, info.height) / size)
    shape = (info.count, max(1, round(info.height / scale)), max(1, round(info.width / scale)))
    try:
        with rasterio.open(info.path) as src:
            sample = src.read(out_shape=shape, masked=True)
            dtypes = src.dtypes
    except rasterio.RasterioIOError as error:
        raise raster.RasterError(f"Cannot read {path}: {error}") from error
    if np.issubdtype(sample.dtype, np.floating):
        sample = np.ma.masked_where(~np.isfinite(sample.filled(0)), sample)
    summaries = []
    for index in range(info.count):
        values = sample[index].compressed()
        if values.size:
            low, high = float(values.min()), float(values.max())
            histogram = _histogram(values.astype(np.float64), low, high)
        else:
            low = high = None
            histogram = (0.0,) * HISTOGRAM_BINS
        summaries.append(BandSummary(
            index=index + 1,
            description=info.descriptions[index] if index < len(info.descriptions) else "",
            colour=info.colorinterp[index] if index < len(info.colorinterp) else "undefined",
            dtype=dtypes[index],
            minimum=low,
            maximum=high,
            histogram=histogram,
        ))
    return RasterPreview(info=info, bands=tuple(summaries), sample=sample)


@dataclass(frozen=True)
class ModelInputs:
    """What the band selection needs from a model's card."""

    name: str
    bands: tuple  # names of the model's input channels, in order
    normalisation: Normalisation
    summary: str


def model_inputs(model_path) -> ModelInputs:
    """The inputs of the model in ``model_path`` (its card is read through the CPU session onnxruntime caches)."""
    from . import runtime  # onnxruntime is imported only where a model is really opened

    try:
        card = runtime.load(model_path, device="cpu").card
    except OSError as error:
        raise PreviewError(f"Cannot open the model {model_path}: {error.strerror or error}") from error
    except (runtime.RuntimeUnavailableError, ModelCardError) as error:
        raise PreviewError(str(error)) from error
    return ModelInputs(name=card.name, bands=tuple(card.bands), normalisation=card.normalisation,
                       summary=card.summary())


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    bands: tuple | None  # raster bands, one for every input when a single one; None: as the engine chooses


PRESETS = (
    Preset("worldview", "True colour (WorldView 8-band 5,3,2)", raster.WORLDVIEW_8_BAND_RGB),
    Preset("panchromatic", "Panchromatic to gray (band 1 to every input)", (1,)),
    Preset("rgb", "RGB as is (1,2,3)", (1, 2, 3)),
    Preset(AUTOMATIC, "Automatic (as the engine chooses)", None),
)
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}


@dataclass(frozen=True)
class PresetOption:
    """A preset as it applies to one raster and model."""

    preset: Preset
    bands: tuple  # the raster band for each model input; () where the preset does not fit
    reason: str  # why it does not fit; "" where it does

    @property
    def available(self) -> bool:
        return not self.reason


def _data_band_count(info: raster.RasterInfo) -> int:
    return info.count - (1 if info.alpha_band else 0)


def _resolve(preset: Preset, info: raster.RasterInfo, model_bands) -> tuple:
    """The preset's band per model input; raises BandMappingError where the raster or model cannot take it."""
    if preset.bands is None:
        return raster.check_bands(raster.default_bands(info, model_bands), info, model_bands)
    return raster.check_bands(preset.bands, info, model_bands)


def preset_options(info: raster.RasterInfo, model_bands) -> tuple:
    """Every preset, with the bands it gives this raster and model, or the reason it does not fit."""
    options = []
    for preset in PRESETS:
        reason, bands = "", ()
        if preset.key == "worldview" and _data_band_count(info) != 8:
            reason = (f"Needs 8-band WorldView-2/3 imagery (red, green, blue are bands 5, 3, 2); "
                      f"this raster has {_data_band_count(info)} data band(s).")
        else:
            try:
                bands = _resolve(preset, info, model_bands)
            except raster.BandMappingError as error:
                reason = str(error)
        options.append(PresetOption(preset, bands, reason))
    return tuple(options)


@dataclass(frozen=True)
class BandChoice:
    """What the mapper chose: a preset, or one raster band per model input ("custom")."""

    preset: str = AUTOMATIC  # a key of PRESETS_BY_KEY or CUSTOM
    bands: tuple = ()  # the custom mapping; ignored for presets


@dataclass(frozen=True)
class MappingCheck:
    value: tuple | None  # what the BANDS parameter gets: a raster band per model input; None: automatic
    bands: tuple  # the raster band that feeds each model input, automatic resolved; () where that is unknown
    error: str  # why the model cannot take it (BandMappingError's message); "" where it can

    @property
    def valid(self) -> bool:
        return not self.error


def choice_value(choice: BandChoice, model_bands) -> tuple | None:
    """What the BANDS parameter gets for a choice, unchecked: a raster band per model input, None for automatic."""
    chosen = tuple(int(b) for b in choice.bands) if choice.preset == CUSTOM else PRESETS_BY_KEY[choice.preset].bands
    if chosen is not None and len(chosen) == 1:
        chosen = chosen * len(model_bands)  # one band to every input, as the engine reads it
    return chosen


def check_choice(choice: BandChoice, info: raster.RasterInfo, model_bands) -> MappingCheck:
    """The bands a choice gives, checked as the engine checks them (core.extract.raster.check_bands)."""
    chosen = choice_value(choice, model_bands)
    if chosen is None:
        try:
            return MappingCheck(None, _resolve(PRESETS_BY_KEY[AUTOMATIC], info, model_bands), "")
        except raster.BandMappingError as error:
            return MappingCheck(None, (), str(error))
    try:
        bands = raster.check_bands(chosen, info, model_bands)
    except raster.BandMappingError as error:
        return MappingCheck(chosen, chosen if len(chosen) == len(model_bands) else (), str(error))
    return MappingCheck(bands, bands, "")


def choice_for(bands, info: raster.RasterInfo | None, model_bands) -> BandChoice:
    """The choice that stands for a BANDS value: automatic when empty, the preset that gives the same bands
    on this raster, or a custom mapping."""
    bands = tuple(int(b) for b in (bands or ()))
    if not bands:
        return BandChoice(AUTOMATIC)
    if info is not None:
        expanded = bands * len(model_bands) if len(bands) == 1 else bands
        for option in preset_options(info, model_bands):
            if option.preset.bands is not None and option.available and option.bands == expanded:
                return BandChoice(option.preset.key)
    return BandChoice(CUSTOM, bands)


def parse_band_list(text) -> tuple:
    """Band numbers from text as typed or saved ("5,3,2", "5 3 2", "5;3;2", "[5, 3, 2]"); () for empty."""
    pieces = [p for p in re.split(r"[\s,;\[\]()]+", str(text or "")) if p]
    if not all(p.isdigit() and int(p) > 0 for p in pieces):
        raise raster.BandMappingError(
            f"'{text}' is not a list of band numbers: give 1-based band numbers separated by commas, e.g. 5,3,2."
        )
    return tuple(int(p) for p in pieces)


def display_inputs(model_bands) -> tuple:
    """Which model inputs show as red, green and blue in the composite: those named so, else the first three,
    else the first one as gray."""
    names = [name.lower() for name in model_bands]
    if all(colour in names for colour in ("red", "green", "blue")):
        return tuple(names.index(colour) for colour in ("red", "green", "blue"))
    return (0, 1, 2) if len(names) >= 3 else (0, 0, 0)


def composite(preview_: RasterPreview, bands, model_bands, normalisation: Normalisation | None = None) -> np.ndarray:
    """The thumbnail of a mapping: RGBA uint8 [height, width, 4] from the decimated read, each shown band
    stretched as the engine stretches it (the card's normalisation, without its mean/std), invalid pixels
    transparent."""
    norm = normalisation or Normalisation()
    shown = [bands[i] for i in display_inputs(model_bands)]
    values = preview_.sample[[b - 1 for b in shown]]
    low, high = [], []
    for channel in values:
        if norm.stretch == "divide":
            low.append(0.0)
            high.append(norm.divisor)
            continue
        valid = channel.compressed()
        lo, hi = np.percentile(valid, [norm.low_percentile, norm.high_percentile]) if valid.size else (0.0, 1.0)
        low.append(lo)
        high.append(hi if hi > lo else lo + 1)
    ones = np.ones(3, np.float32)
    stretch = raster.Stretch(np.array(low, np.float32), np.array(high, np.float32), np.zeros(3, np.float32), ones)
    scaled = stretch.apply(values.filled(0))
    rgb = np.round(scaled * 255).astype(np.uint8).transpose(1, 2, 0)
    alpha = np.where(np.ma.getmaskarray(values).any(axis=0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([rgb, alpha]))
