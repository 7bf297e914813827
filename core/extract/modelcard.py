"""Model cards: what an ONNX model expects and produces, read from its metadata.

Our own models carry a JSON card under the ``spacenet_model_card`` key (schema 1, see models/README.md).
Models made for the Deepness QGIS plugin carry loose keys instead (``model_type``, ``class_names``,
``resolution`` in cm/px, ``tile_size``, ``tiles_overlap`` in %, ``standardization_parameters``,
``seg_thresh``), each value JSON-encoded; they are read with Deepness' conventions (pixels / 255).
A model with no metadata at all is read the Deepness way with the sizes of its input tensor.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CARD_KEY = "spacenet_model_card"
DEFAULT_TILE_SIZE = 512
DEFAULT_THRESHOLD = 0.5


# What each task's output channel is called; a card that states no task is placed by these names.
TASK_CLASSES = {"buildings": "building", "roads": "road"}


class ModelCardError(ValueError):
    """The model's metadata or tensors do not describe something this engine can run."""


class WrongTaskError(ModelCardError):
    """The model does another task than the one it was asked to run for."""


@dataclass(frozen=True)
class Normalisation:
    """How raster values become model inputs: a stretch to [0, 1], then (x - mean) / std per band.

    ``stretch`` is "percentile" (low/high percentiles of each band over the whole run's extent map to 0/1)
    or "divide" (values / ``divisor``, Deepness' convention for 8-bit imagery).
    """

    stretch: str = "percentile"
    low_percentile: float = 2.0
    high_percentile: float = 98.0
    divisor: float = 255.0
    mean: tuple = ()
    std: tuple = ()


@dataclass(frozen=True)
class ModelCard:
    name: str
    task: str  # "buildings", "roads", ...; "" when neither the card nor its channel names say
    bands: tuple  # names of the model's input channels, in order
    input_name: str
    output_name: str
    tile_size: int
    overlap: int  # pixels shared by neighbouring tiles
    size_multiple: int  # tile sizes must be a multiple of this (fully convolutional models)
    fixed_size: bool  # the input tensor has fixed height and width
    max_batch: int | None  # 1 when the batch axis is fixed to 1
    gsd_m: float | None  # metres per pixel the model was trained at; None: run at the raster's own resolution
    normalisation: Normalisation
    channels: tuple  # meaning of each output channel
    activation: str  # what to apply to the output: "none" (already probabilities), "sigmoid" or "softmax"
    threshold: float
    min_area_m2: float
    interior_threshold: float
    source: str  # "spacenet" (our card), "deepness" or "none"
    min_score: float = 0.0  # footprints of a lower mean building probability are dropped
    raw: dict = field(default_factory=dict, compare=False)

    @property
    def foreground_channel(self) -> int:
        """The output channel holding the object probability (building or road)."""
        for name in ("building", "road"):
            if name in self.channels:
                return self.channels.index(name)
        # Deepness: one channel is the class itself; with several, channel 0 is the background.
        return 0 if len(self.channels) == 1 else 1

    @property
    def interior_channel(self) -> int | None:
        return self.channels.index("interior") if "interior" in self.channels else None

    def summary(self) -> str:
        gsd = f"{self.gsd_m:g} m" if self.gsd_m else "the raster's own resolution"
        return (
            f"{self.name} ({self.task or 'task not stated'}; {len(self.bands)} input bands {', '.join(self.bands)}; "
            f"{self.tile_size} px tiles at {gsd}; outputs {', '.join(self.channels)})"
        )


def _shape_dims(shape) -> list:
    """Tensor dimensions with symbolic (dynamic) axes as None."""
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _decode(value: str):
    """Deepness stores every value JSON-encoded (strings in quotes); tolerate plain strings."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def read_card(metadata: dict, inputs, outputs) -> ModelCard:
    """The card of a model from its custom metadata and its input/output tensors (name, shape) lists."""
    if not inputs or not outputs:
        raise ModelCardError("The model has no input or no output tensor.")
    if len(inputs) > 1:
        raise ModelCardError(f"The model takes {len(inputs)} inputs ({', '.join(name for name, _ in inputs)}); only "
                             "models with one image input run here.")
    input_name, input_shape = inputs[0]
    output_name, output_shape = outputs[0]
    dims = _shape_dims(input_shape)
    if len(dims) != 4:
        raise ModelCardError(
            f"The model's input '{input_name}' has shape {list(input_shape)}; expected 4 dimensions "
            "(batch, bands, height, width)."
        )
    batch, channels_in, height, width = dims
    if _shape_dims(output_shape)[:1] == [1]:
        batch = 1  # an output fixed to one item means the model runs one tile at a time
    if batch is not None and batch > 1:
        raise ModelCardError(f"The model's input '{input_name}' fixes its batch at {batch} tiles; export it with a "
                             "dynamic batch axis (or a batch of 1).")
    if channels_in is None:
        raise ModelCardError(f"The model's input '{input_name}' does not fix its number of bands.")
    fixed_size = height is not None and width is not None
    if fixed_size and height != width:
        raise ModelCardError(f"The model's input tiles are {width} x {height} px; only square tiles are supported.")

    out_dims = _shape_dims(output_shape)
    _check_output_shape(output_name, out_dims, height)
    try:
        if CARD_KEY in metadata:
            card = _our_card(metadata[CARD_KEY], input_name, output_name, channels_in, batch, height, fixed_size)
        else:
            card = _deepness_card(metadata, input_name, output_name, output_shape, channels_in, batch, height,
                                  fixed_size)
    except ModelCardError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        raise ModelCardError(f"The model's metadata has a value of the wrong kind ({error}): fix its card.") from error
    return _checked(card, out_dims)


def _check_output_shape(output_name: str, out_dims: list, height) -> None:
    """Refuse the outputs this engine would misread: channels last, or a coarser grid than the input's."""
    if len(out_dims) == 4 and None not in out_dims[1:] and out_dims[1] == out_dims[2] and out_dims[1] > 16 \
            and out_dims[3] <= 16:
        raise ModelCardError(f"The model's output '{output_name}' has shape {out_dims}: channels last (N, H, W, C); "
                             "export it channels first (N, C, H, W).")
    out_height = out_dims[-2] if len(out_dims) >= 3 else None
    if height is not None and out_height is not None and out_height * 2 <= height:
        raise ModelCardError(f"The model's output '{output_name}' is {out_height} px across for {height} px tiles: "
                             "outputs at a coarser resolution than the input are not supported.")


def _checked(card: ModelCard, out_dims: list) -> ModelCard:
    """``card``, once its values make sense: each problem named with the value."""
    problems = []
    if card.gsd_m is not None and not card.gsd_m > 0:
        problems.append(f"its resolution is {card.gsd_m:g} m per pixel (more than 0 is needed)")
    if card.tile_size < 1:
        problems.append(f"its tile size is {card.tile_size} px")
    if card.size_multiple < 1:
        problems.append(f"its size multiple is {card.size_multiple}")
    if card.overlap < 0:
        problems.append(f"its tile overlap is {card.overlap} px")
    declared = out_dims[1] if len(out_dims) == 4 else 1 if len(out_dims) == 3 else None
    if declared is not None and declared != len(card.channels):
        problems.append(f"it names {len(card.channels)} output channels ({', '.join(card.channels)}) but its "
                        f"output has {declared}")
    if problems:
        raise ModelCardError(f"The model's card cannot be used: {'; '.join(problems)}.")
    return card


def _our_card(text, input_name, output_name, channels_in, batch, height, fixed_size) -> ModelCard:
    try:
        card = json.loads(text)
        spec_in, spec_out = card["input"], card["outputs"]
        norm = spec_in.get("normalisation", {})
        bands = tuple(spec_in["bands"])
        channels = tuple(spec_out["channels"])
    except (TypeError, ValueError, KeyError) as error:
        raise ModelCardError(f"The model card in '{CARD_KEY}' is not valid: {error!r}") from error
    if len(bands) != channels_in:
        raise ModelCardError(f"The model card lists {len(bands)} input bands but the model takes {channels_in}.")
    defaults = card.get("defaults", {})
    tile_size = height if fixed_size else int(spec_in.get("tile_size", DEFAULT_TILE_SIZE))
    return ModelCard(
        name=str(card.get("name", "model")),
        task=str(card.get("task") or task_of_channels(channels)),
        bands=bands,
        input_name=input_name,
        output_name=output_name,
        tile_size=tile_size,
        overlap=int(spec_in.get("overlap", tile_size // 8)),
        size_multiple=int(spec_in.get("size_multiple", 32)),
        fixed_size=fixed_size,
        max_batch=batch,
        gsd_m=float(spec_in["gsd_m"]) if spec_in.get("gsd_m") else None,
        normalisation=Normalisation(
            stretch=norm.get("stretch", "percentile"),
            low_percentile=float(norm.get("low_percentile", 2.0)),
            high_percentile=float(norm.get("high_percentile", 98.0)),
            divisor=float(norm.get("divisor", 255.0)),
            mean=tuple(float(v) for v in norm.get("mean", ())),
            std=tuple(float(v) for v in norm.get("std", ())),
        ),
        channels=channels,
        activation=str(spec_out.get("activation", "none")),
        threshold=float(defaults.get("threshold", DEFAULT_THRESHOLD)),
        min_area_m2=float(defaults.get("min_area_m2", 0.0)),
        interior_threshold=float(defaults.get("interior_threshold", 0.5)),
        source="spacenet",
        min_score=float(defaults.get("min_score", 0.0)),
        raw=card,
    )


def _deepness_card(metadata, input_name, output_name, output_shape, channels_in, batch, height, fixed_size):
    values = {key: _decode(value) for key, value in metadata.items()}
    model_type = str(values.get("model_type") or "Segmentor")
    if model_type.lower() != "segmentor":
        raise ModelCardError(f"This is a Deepness '{model_type}' model; only segmentation models (model_type "
                             "Segmentor) extract footprints or roads here.")
    standard = values.get("standardization_parameters") or {}
    if not isinstance(standard, dict):
        raise ModelCardError(f"The model's standardization_parameters is {standard!r}; Deepness writes "
                             '{"mean": [...], "std": [...]}.')
    out_dims = _shape_dims(output_shape)
    # [N, C, H, W] has a channel axis; [N, H, W] is one sigmoid channel.
    out_channels = out_dims[1] if len(out_dims) == 4 else 1
    if out_channels is None:
        raise ModelCardError(f"The model's output '{output_name}' does not fix its number of channels.")
    names = _class_names(values.get("class_names"), out_channels)
    tile_size = height if fixed_size else int(values.get("tile_size", DEFAULT_TILE_SIZE))
    overlap_percent = float(values.get("tiles_overlap", 15))
    resolution_cm = values.get("resolution")
    return ModelCard(
        name=str(values.get("model_name", "model")),
        task=task_of_channels(names),
        bands=tuple(["red", "green", "blue", "alpha"][:channels_in] if channels_in <= 4 else [
            f"band {i + 1}" for i in range(channels_in)
        ]),
        input_name=input_name,
        output_name=output_name,
        tile_size=tile_size,
        overlap=int(round(tile_size * overlap_percent / 100)),
        size_multiple=32,
        fixed_size=fixed_size,
        max_batch=batch,
        gsd_m=float(resolution_cm) / 100 if resolution_cm else None,
        normalisation=Normalisation(
            stretch="divide",
            divisor=255.0,
            mean=tuple(float(v) for v in standard.get("mean", ())),
            std=tuple(float(v) for v in standard.get("std", ())),
        ),
        channels=names,
        # Deepness: one channel is a sigmoid probability, several are softmax classes (already applied).
        activation="none",
        threshold=float(values.get("seg_thresh", DEFAULT_THRESHOLD)),
        min_area_m2=0.0,
        interior_threshold=0.5,
        source="deepness" if values else "none",
        raw=values,
    )


def _class_names(class_names, out_channels: int) -> tuple:
    """Channel names from Deepness' class_names ({"0": "name"} or a list of them, one per output)."""
    if isinstance(class_names, list):
        class_names = class_names[0] if class_names else None
    if isinstance(class_names, dict) and class_names:
        names = [str(class_names.get(str(i), f"class {i}")) for i in range(out_channels)]
        if out_channels > 1 and len(class_names) == out_channels - 1:
            # names given for the foreground classes only, numbered from 0 or by their channel (from 1)
            first = 0 if "0" in {str(key) for key in class_names} else 1
            names = ["background"] + [str(class_names.get(str(i + first), f"class {i + 1}"))
                                      for i in range(out_channels - 1)]
        return tuple(names)
    return tuple(f"class {i}" for i in range(out_channels))


def task_of_channels(channels) -> str:
    """The task that the output channel names point to ("Road", "buildings" ...), or "" when they name none or
    several: Deepness models and cards without a task say what they find only there."""
    named = {task for task, word in TASK_CLASSES.items()
             for name in channels if re.search(rf"\b{word}s?\b", str(name), re.IGNORECASE)}
    return named.pop() if len(named) == 1 else ""


def check_task(card: ModelCard, task: str, algorithms: dict | None = None, models=()) -> None:
    """Raise WrongTaskError, in one sentence, when ``card`` says its model does something else than ``task``.

    A model whose card states no task and whose channels name none (a generic Deepness model) is let through:
    nothing says it does not fit. ``algorithms`` (task -> what runs models of that task) and ``models`` (the
    models of ``task`` to choose from) name what to use instead."""
    check_model_task(card.name, card.task, task, card.channels, algorithms, models)


def check_model_task(name: str, model_task: str, task: str, channels=(), algorithms: dict | None = None,
                     models=()) -> None:
    """check_task for a model known by its name and task only (a registered model not downloaded yet)."""
    if not model_task or model_task == task:
        return
    outputs = f" (its output channels: {', '.join(map(str, channels))})" if channels else ""
    other = (algorithms or {}).get(model_task)
    run_it = f"run it with {other}" if other else f"nothing here extracts {model_task}"
    choose = f"choose a {task} model" + (f" ({', '.join(models)})" if models else "")
    raise WrongTaskError(
        f"The model '{name}' is made for {model_task}{outputs}, not for {task}: {run_it}, or {choose} for this "
        "algorithm."
    )
