"""Option sets spelled once: what each option of an extraction is, beside its default.

An option set (``core.extract.building_options.BuildingOptions``, ``core.extract.road_options.RoadOptions``) is a frozen
dataclass whose fields are made with :func:`option`, which says where else the option travels: whether the model card
holds its default, whether the run's settings (layer metadata, logs) record it, and under which metadata tag a
probability raster keeps it. :class:`Options` gives every set its round trips from those marks, so that a new option
is one field here and the widget or parameter that exposes it.

No QGIS here, and nothing heavy: the plugin reads the defaults at QGIS start.
"""

from __future__ import annotations

import contextlib
from dataclasses import field, fields, replace


def option(default, *, card: bool = False, setting: bool = True, tag: str | None = None):
    """A field of an option set. ``card``: the model card holds its default (a ModelCard attribute of the same
    name); ``setting``: the run's settings record it; ``tag``: the probability raster's metadata tag that keeps it
    (stable: rasters written before are read with it)."""
    return field(default=default, metadata={"card": card, "setting": setting, "tag": tag})


class Options:
    """The round trips of an option set (a frozen dataclass of :func:`option` fields)."""

    @classmethod
    def of_card(cls, card, base=None, **given):
        """``base`` (default: the set's defaults) with the model card's defaults for the options it holds, then the
        ``given`` options that are not None (None: the card's, or the base's)."""
        values = {f.name: getattr(card, f.name) for f in fields(cls) if f.metadata["card"]}
        values.update({name: value for name, value in given.items() if value is not None})
        return replace(cls() if base is None else base, **values)

    def settings(self) -> dict:
        """The run's settings: the options it records, by name, in the set's order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["setting"]}

    def tags(self, leave_out=()) -> dict:
        """The probability raster's metadata for the options it keeps, but those named in ``leave_out``."""
        return {f.metadata["tag"]: repr(float(getattr(self, f.name))) for f in fields(self)
                if f.metadata["tag"] and f.name not in leave_out}

    @classmethod
    def from_tags(cls, tags: dict) -> dict:
        """The options a raster's metadata ``tags`` record, by name (floats); absent or not a number: left out."""
        recorded = {}
        for f in fields(cls):
            if f.metadata["tag"]:
                with contextlib.suppress(KeyError, ValueError):  # absent, or not a number: not the engine's
                    recorded[f.name] = float(tags[f.metadata["tag"]])
        return recorded
